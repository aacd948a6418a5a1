/**
 * A place Redis mode numbered and acknowledged whose record never reached SQL is taken back
 * (adoptPlace): in SQL mode (SqlQueueStore.adopt) and on Redis mode's restore path after the
 * concert was loaded again. The signed queue token is the proof, checked against what SQL knows.
 * Each place here is made the way Redis mode makes one (RedisQueueStore.join, which numbers it
 * within the ceiling reserved in SQL) and its token signed without a record, as a join whose
 * record was still to be written when Redis was lost.
 */
import { afterEach, expect, test } from 'bun:test';
import { randomUUID } from 'node:crypto';
import { describeEach, enterMode, newConcert, newUserId } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';
import Redis from 'ioredis';
import { keys } from '../src/redis/keys.ts';
import type { RedisClient } from '../src/redis/connection.ts';
import { unrecordedUpTo } from '../src/modules/queue/place-recovery.ts';

const seqOf = (token: string): number => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).seq;

describeEach('a place whose record Redis lost', { modes: ['redis'] }, (h) => {
  const db = () => h.svc.database.db;
  const ttlMs = () => h.svc.config.queueTokenTtlSeconds * 1000;

  /** A place made in Redis, its token signed and never recorded. */
  const unrecorded = async (concertId: number, userId: number) => {
    const now = h.clock.now();
    const jti = randomUUID();
    const place = await h.svc.ctx.backends.redis.queue.join(concertId, userId, jti, now);
    const token = await h.svc.ctx.tokens.signQueueToken({ userId, jti, concertId, seq: place.seq, createdAt: now, expiresAt: now + ttlMs() });
    return { jti, seq: place.seq, token };
  };
  /** A join through the API whose record has reached SQL (the write-behind drained). */
  const recordedJoin = async (concertId: number, userId: number) => {
    const r = await join(h.app, concertId, await userToken(h.app, userId));
    await h.svc.ctx.writeBehind.drainConcertFully(concertId);
    return r;
  };
  /** A token for any entry number, signed as the service signs (what a lost record leaves a fan holding). */
  const signed = (concertId: number, userId: number, seq: number) => {
    const now = h.clock.now();
    const jti = randomUUID();
    return h.svc.ctx.tokens.signQueueToken({ userId, jti, concertId, seq, createdAt: now, expiresAt: now + ttlMs() })
      .then((token) => ({ jti, seq, token }));
  };
  const tokenRow = (jti: string) => db().selectFrom('tokens').select(['user_id', 'concert_id', 'seq', 'revoked_at', 'expires_at'])
    .where('jti', '=', jti).executeTakeFirst();
  const poll = (token: string) => call(h.app, 'GET', '/v1/queue/me', { token });
  /** queue_places_restored_total of a mode, as /metrics shows it. */
  const restoredCount = async (mode: string) => {
    const text = (await call(h.app, 'GET', '/metrics')).body as string;
    return Number(new RegExp(`queue_places_restored_total\\{mode="${mode}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };
  const ceiling = async (concertId: number) => Number((await db().selectFrom('queue_state').select('seq_ceiling')
    .where('concert_id', '=', concertId).executeTakeFirstOrThrow()).seq_ceiling);
  // Each test switches to SQL mode as Redis is lost; the next starts in Redis mode again.
  afterEach(() => enterMode(h.svc, 'redis'));

  test('is taken back on its first request in SQL mode, at its number, and admitted in entry order', async () => {
    const c = await newConcert(h);
    const a = newUserId();
    const lost = await unrecorded(c.id, a);
    expect(lost.seq).toBe(1);
    await enterMode(h.svc, 'sql');
    // A fan who joins in SQL mode gets a number above the reserved ceiling: behind the lost place.
    const later = await join(h.app, c.id, await userToken(h.app, newUserId()));
    expect(later.status).toBe(201);
    expect(seqOf(later.body.token)).toBe((await ceiling(c.id)) + 1);

    const before = await restoredCount('sql');
    const r = await poll(lost.token);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'waiting', position: 1 });
    expect(await restoredCount('sql')).toBe(before + 1);
    expect(await tokenRow(lost.jti)).toMatchObject({ user_id: a, concert_id: c.id, seq: 1, revoked_at: null });
    expect((await poll(lost.token)).status).toBe(200);

    await h.tick();
    expect((await poll(lost.token)).body).toMatchObject({ status: 'active' });
  });

  test('is refused above the ceiling, on a number someone else holds, past the grace and once admission passed it; admission holds at an unheld number for the grace', async () => {
    const c = await newConcert(h);
    const held = await recordedJoin(c.id, newUserId()); // recorded: number 1
    expect(held.status).toBe(201);
    const passed = await unrecorded(c.id, newUserId()); // number 2, lost
    const kept = await unrecorded(c.id, newUserId()); // number 3, lost
    const late = await unrecorded(c.id, newUserId()); // number 4, lost
    const top = await ceiling(c.id);
    await enterMode(h.svc, 'sql');
    const x = newUserId();
    const above = await signed(c.id, x, top + 1);
    const taken = await signed(c.id, x, seqOf(held.body.token));
    expect((await poll(above.token)).status).toBe(401);
    expect((await poll(taken.token)).status).toBe(401);
    expect(await tokenRow(above.jti)).toBeUndefined();
    expect(await tokenRow(taken.jti)).toBeUndefined();

    // The third place comes back. Admission admits 1, then holds at 2 (no entry holds it, and its
    // fan may still come back within the grace): 3 stays second in line.
    expect((await poll(kept.token)).status).toBe(200);
    await h.tick();
    await h.tick();
    const lastAdmitted = async () => Number((await db().selectFrom('queue_state').select('last_admitted_seq')
      .where('concert_id', '=', c.id).executeTakeFirstOrThrow()).last_admitted_seq);
    expect(await lastAdmitted()).toBe(1);
    expect((await poll(kept.token)).body).toMatchObject({ status: 'waiting', position: 2 });

    // The heartbeat grace counts from the switch: past it, a place never seen since has lapsed,
    // and admission goes on past the numbers nobody came back for.
    const graceMs = h.svc.config.queueGraceSeconds * 1000;
    h.clock.advance(graceMs / 2);
    expect((await poll(kept.token)).status).toBe(200);
    h.clock.advance(graceMs / 2 + 1);
    expect((await poll(late.token)).status).toBe(401);
    expect(await tokenRow(late.jti)).toBeUndefined();
    await h.tick();
    expect(await lastAdmitted()).toBeGreaterThanOrEqual(kept.seq);
    expect((await poll(kept.token)).body).toMatchObject({ status: 'active' });
    // Once admission has passed a number, no token for it is taken back, however fresh.
    const fresh = await h.svc.ctx.tokens.signQueueToken({
      userId: x, jti: passed.jti, concertId: c.id, seq: passed.seq, createdAt: h.clock.now(), expiresAt: h.clock.now() + ttlMs(),
    });
    expect((await poll(fresh)).status).toBe(401);
    expect(await tokenRow(passed.jti)).toBeUndefined();
  });

  test('after a switch that lost nothing (Redis shows its stream drained), SQL mode admits past the unused reserved numbers at once', async () => {
    const c = await newConcert(h);
    const first = await recordedJoin(c.id, newUserId()); // recorded, number 1; 2 up to the ceiling unused
    expect(seqOf(first.body.token)).toBe(1);
    await enterMode(h.svc, 'sql');
    const later = await join(h.app, c.id, await userToken(h.app, newUserId()));
    expect(seqOf(later.body.token)).toBe((await ceiling(c.id)) + 1);
    // The tick comes a second after the switch (Redis-mode instances have followed it by then).
    await h.tick();
    expect((await poll(first.body.token)).body).toMatchObject({ status: 'active' });
    expect((await poll(later.body.token)).body).toMatchObject({ status: 'active' });
  });

  test('while Redis still holds undrained records (a failover before the drain), SQL mode holds only at numbers Redis gave out', async () => {
    const c = await newConcert(h);
    const first = await recordedJoin(c.id, newUserId()); // recorded, number 1
    const lost = await unrecorded(c.id, newUserId()); // number 2, its record still in the stream
    expect(lost.seq).toBe(2);
    await enterMode(h.svc, 'sql');
    const later = await join(h.app, c.id, await userToken(h.app, newUserId()));
    expect(seqOf(later.body.token)).toBe((await ceiling(c.id)) + 1);
    const statuses = async (...tokens: string[]) => Promise.all(tokens.map(async (t) => (await poll(t)).body.status));
    // Number 2 may still come back: admission stops before it, and the one SQL-mode place waits.
    await h.tick();
    expect(await statuses(first.body.token, later.body.token)).toEqual(['active', 'waiting']);
    // Its fan comes back, first in line. Redis gave out no number above 2, so the rest of the
    // reserved block holds nobody up: both are admitted, in entry order.
    expect((await poll(lost.token)).body).toMatchObject({ status: 'waiting', position: 1 });
    await h.tick();
    expect(await statuses(lost.token, later.body.token)).toEqual(['active', 'active']);
  });

  test('what Redis shows may lack its record: nothing once drained, its last number while not, everything when it cannot say', async () => {
    const graceMs = h.svc.config.queueGraceSeconds * 1000;
    const upTo = (redis: RedisClient, concertId: number) => unrecordedUpTo(redis, concertId, h.clock.now(), graceMs);
    const c = await newConcert(h);
    await recordedJoin(c.id, newUserId());
    expect(await upTo(h.svc.ctx.redis, c.id)).toBe(0);
    const lost = await unrecorded(c.id, newUserId());
    expect(await upTo(h.svc.ctx.redis, c.id)).toBe(lost.seq);
    await h.svc.ctx.writeBehind.drainConcertFully(c.id);
    expect(await upTo(h.svc.ctx.redis, c.id)).toBe(0);
    // A concert Redis has no queue of (lost, or never loaded), and a Redis that does not answer.
    expect(await upTo(h.svc.ctx.redis, c.id + 1_000_000)).toBe(Infinity);
    const gone = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    gone.on('error', () => {});
    try {
      expect(await upTo(gone, c.id)).toBe(Infinity);
    } finally {
      gone.disconnect();
    }
  });

  test('one place a user: a later place of the user wins, and the refused token stays refused', async () => {
    const c = await newConcert(h);
    const u = newUserId();
    const lost = await unrecorded(c.id, u);
    await enterMode(h.svc, 'sql');
    // The user joins again in SQL mode (with a user token): a new place, later than the lost one.
    const again = await join(h.app, c.id, await userToken(h.app, u));
    expect(again.status).toBe(201);
    expect((await poll(lost.token)).status).toBe(401);
    expect(await tokenRow(lost.jti)).toMatchObject({ seq: lost.seq, revoked_at: expect.any(Number) });
    // Even once the later place has ended, the replaced token is not taken back.
    expect((await call(h.app, 'DELETE', '/v1/queue/me', { token: again.body.token })).status).toBe(204);
    expect((await poll(lost.token)).status).toBe(401);
    expect((await poll(again.body.token)).status).toBe(401);
  });

  test('one place per user per concert: a place in another concert is no rival, whichever is later', async () => {
    const c1 = await newConcert(h);
    const c2 = await newConcert(h);
    const u = newUserId();
    const first = await recordedJoin(c1.id, u); // recorded
    expect(first.status).toBe(201);
    h.clock.advance(1000);
    // The user also joined the second concert (with a user token of its own); that record was lost.
    const second = await unrecorded(c2.id, u);
    await enterMode(h.svc, 'sql');
    expect((await poll(first.body.token)).status).toBe(200);
    expect((await poll(second.token)).status).toBe(200);
    expect((await poll(first.body.token)).status).toBe(200);
    expect(await tokenRow(second.jti)).toMatchObject({ concert_id: c2.id, revoked_at: null });
  });

  test('a rejoin that kept its place under a new token: both tokens name the one place', async () => {
    const c = await newConcert(h);
    const u = newUserId();
    const first = await recordedJoin(c.id, u); // recorded, number 1
    expect(first.status).toBe(201);
    // Joining again with a user token keeps the place under a new token id; that record was lost.
    const rejoined = await unrecorded(c.id, u);
    expect(rejoined.seq).toBe(seqOf(first.body.token));
    await enterMode(h.svc, 'sql');
    expect((await poll(rejoined.token)).body).toMatchObject({ status: 'waiting', position: 1 });
    expect((await poll(first.body.token)).body).toMatchObject({ status: 'waiting', position: 1 });
    const entries = await db().selectFrom('queue_entries').select(['seq', 'user_id']).where('concert_id', '=', c.id).execute();
    expect(entries).toEqual([{ seq: rejoined.seq, user_id: u }]);
  });

  test('a leave ends a place whose record has not arrived: in Redis mode it leaves a revoked row, in SQL mode it takes the place back to end it', async () => {
    const c = await newConcert(h);
    const inRedis = await unrecorded(c.id, newUserId());
    const inSql = await unrecorded(c.id, newUserId());
    // Left in Redis mode, then Redis is lost before the record (and the leave) reached SQL.
    expect((await call(h.app, 'DELETE', '/v1/queue/me', { token: inRedis.token })).status).toBe(204);
    expect(await tokenRow(inRedis.jti)).toMatchObject({ seq: inRedis.seq, revoked_at: expect.any(Number) });
    await enterMode(h.svc, 'sql');
    expect((await poll(inRedis.token)).status).toBe(401);
    expect((await call(h.app, 'DELETE', '/v1/queue/me', { token: inSql.token })).status).toBe(204);
    expect(await tokenRow(inSql.jti)).toMatchObject({ seq: inSql.seq, revoked_at: expect.any(Number) });
    expect((await poll(inSql.token)).status).toBe(401);
    const entry = await db().selectFrom('queue_entries').select('status').where('concert_id', '=', c.id).where('seq', '=', inSql.seq)
      .executeTakeFirstOrThrow();
    expect(entry.status).toBe('left');
  });

  /** Every key of the concert gone, its stream too (a restart without persistence, a failover to an empty replica). */
  const loseRedis = async (concertId: number) => {
    const lost = await h.svc.ctx.redis.keys(`{c:${concertId}}*`);
    expect(lost).toContain(keys.queueMeta(concertId));
    await h.svc.ctx.redis.del(...lost);
  };

  test('Redis mode: a place lost with every key of its concert, its record never written, is taken back after the reload', async () => {
    const c = await newConcert(h);
    const a = newUserId();
    const lost = await unrecorded(c.id, a);
    const behind = await recordedJoin(c.id, newUserId()); // recorded, number 2
    expect(seqOf(behind.body.token)).toBe(2);
    await loseRedis(c.id);
    const before = await restoredCount('redis');
    const r = await poll(lost.token);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'waiting', position: 1 });
    expect(await tokenRow(lost.jti)).toMatchObject({ user_id: a, seq: lost.seq, revoked_at: null });
    expect(await restoredCount('redis')).toBe(before + 1);
    expect((await poll(lost.token)).status).toBe(200);
    expect(await restoredCount('redis')).toBe(before + 1);
    expect((await poll(behind.body.token)).body).toMatchObject({ status: 'waiting', position: 2 });
    await h.tick();
    expect((await poll(lost.token)).body).toMatchObject({ status: 'active' });
  });

  test('Redis mode: its grace counts from the reload (the heartbeats the lost Redis saw are unknown), and once it has run out the place is gone', async () => {
    const c = await newConcert(h);
    const graceMs = h.svc.config.queueGraceSeconds * 1000;
    const kept = await unrecorded(c.id, newUserId());
    const late = await unrecorded(c.id, newUserId());
    h.clock.advance(graceMs * 0.6);
    await loseRedis(c.id);
    // The concert is loaded again by the next request that needs it.
    expect((await join(h.app, c.id, await userToken(h.app, newUserId()))).status).toBe(201);
    h.clock.advance(graceMs * 0.6);
    expect((await poll(kept.token)).status).toBe(200);
    h.clock.advance(graceMs * 0.4 + 1);
    expect((await poll(late.token)).status).toBe(401);
    expect(await tokenRow(late.jti)).toBeUndefined();
  });

  test('Redis mode: after the reload, admission holds before the first number no entry holds, for one grace from the reload', async () => {
    const c = await newConcert(h);
    const graceMs = h.svc.config.queueGraceSeconds * 1000;
    const first = await recordedJoin(c.id, newUserId()); // recorded, number 1
    const lost = await unrecorded(c.id, newUserId()); // number 2
    const gone = await unrecorded(c.id, newUserId()); // number 3, its fan never comes back
    expect([lost.seq, gone.seq]).toEqual([2, 3]);
    await loseRedis(c.id);
    const later = await join(h.app, c.id, await userToken(h.app, newUserId())); // loads the concert again
    expect(seqOf(later.body.token)).toBeGreaterThan(gone.seq);
    await h.tick();
    await h.tick();
    expect((await poll(first.body.token)).body).toMatchObject({ status: 'active' });
    expect((await poll(later.body.token)).body).toMatchObject({ status: 'waiting' });
    // The fan of number 2 comes back: taken back, and admitted in its turn; 3 still holds the line.
    expect((await poll(lost.token)).body).toMatchObject({ status: 'waiting', position: 1 });
    await h.tick();
    expect((await poll(lost.token)).body).toMatchObject({ status: 'active' });
    await h.tick();
    expect((await poll(later.body.token)).body).toMatchObject({ status: 'waiting' });
    // One grace after the reload, nobody can take 3 back any more: admission goes on.
    h.clock.advance(graceMs / 2);
    expect((await poll(later.body.token)).status).toBe(200);
    h.clock.advance(graceMs / 2 + 1);
    expect((await poll(later.body.token)).status).toBe(200);
    await h.tick();
    expect((await poll(later.body.token)).body).toMatchObject({ status: 'active' });
    expect((await poll(gone.token)).status).toBe(401);
  });

  test('Redis mode: a place Redis ended, its end still in the stream, is not taken back', async () => {
    const c = await newConcert(h);
    const u = newUserId();
    const ended = await unrecorded(c.id, u);
    // The place ends in Redis alone (as a lapse does): its end waits in the stream.
    await h.svc.ctx.backends.redis.queue.leave(c.id, u, ended.jti, h.clock.now(), 'leave');
    expect((await poll(ended.token)).status).toBe(401);
    expect(await tokenRow(ended.jti)).toBeUndefined();
  });
});
