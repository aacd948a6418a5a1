/**
 * A concert Redis does not have (never loaded, or lost with a restarted Redis) is loaded from
 * SQL on the first request that misses. A load starts by deleting the queue keys it rewrites,
 * so a second load overlapping the first used to wipe the places taken in between: fans were
 * told 201 and then refused (403 NOT_ADMITTED in SQL mode, 401 in Redis mode).
 */
import { expect, test } from 'bun:test';
import { loadConcert, loadConcertIfMissing, withLoadLock } from '../src/modules/catalog/load-concert.ts';
import { readLine } from '../src/modules/queue/line.ts';
import { keys } from '../src/redis/keys.ts';
import { describeEach, enterMode, newUserId } from './helpers/harness.ts';
import { call, createConcert, join, userToken } from './helpers/http.ts';
import { inPool } from './helpers/sales.ts';

describeEach('loading a concert into Redis', { modes: ['redis'] }, (h) => {
  /** A concert created while the fleet served from SQL: Redis has none of its keys. */
  async function unloadedConcert() {
    await enterMode(h.svc, 'sql');
    const c = await createConcert(h.app, [{ seats: 10, price: 1000 }]);
    await enterMode(h.svc, 'redis');
    expect(await h.svc.redis.exists(keys.concert(c.id))).toBe(0);
    return c;
  }

  test('a load waits for the loader at work and then leaves its result (and the places taken since) alone', async () => {
    const c = await unloadedConcert();
    const redis = h.svc.redis;
    let waiter: Promise<boolean> | undefined;
    let loadedBeforeTheLockFreed = false;
    await withLoadLock(redis, c.id, async () => {
      // Another request misses while the first loader still holds the lock.
      waiter = loadConcertIfMissing(h.svc.database.db, redis, c.id, h.clock.now());
      // The first loader finishes (the lock is still held: nothing else may load meanwhile)...
      await loadConcert(h.svc.database.db, redis, c.id, h.clock.now());
      loadedBeforeTheLockFreed = true;
      return null;
    });
    expect(loadedBeforeTheLockFreed).toBe(true);
    // ...a fan takes a place...
    const r = await join(h.app, c.id, await userToken(h.app, newUserId()));
    expect(r.status).toBe(201);
    // ...and the waiting loader, now free to run, finds the concert loaded and wipes nothing.
    expect(await waiter!).toBe(true);
    const poll = await call(h.app, 'GET', '/v1/queue/me', { token: r.body.token });
    expect(poll.status).toBe(200);
    expect(await redis.hget(keys.queueMeta(c.id), 'waiting')).toBe('1');
    expect(await readLine(redis, c.id)).toHaveLength(1);
  });

  test('300 fans joining an unloaded concert at once all keep the place they were given', async () => {
    const c = await unloadedConcert();
    const users = Array.from({ length: 300 }, () => newUserId());
    const tokens = await inPool(users, 32, (u) => userToken(h.app, u));
    const joins = await inPool(tokens, 64, (t) => join(h.app, c.id, t));
    expect(joins.map((j) => j.status).filter((s) => s !== 201)).toEqual([]);
    const polls = await inPool(joins, 64, (j) => call(h.app, 'GET', '/v1/queue/me', { token: j.body.token }));
    expect(polls.filter((p) => p.status !== 200).map((p) => `${p.status} ${JSON.stringify(p.body)}`)).toEqual([]);
    expect(await h.svc.redis.hget(keys.queueMeta(c.id), 'waiting')).toBe('300');
    expect(await readLine(h.svc.redis, c.id)).toHaveLength(300);
  });
});
