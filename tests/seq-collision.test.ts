/**
 * Entry numbers come from Redis in Redis mode and from SQL in SQL mode. A Redis join whose
 * token was still being written when the fleet switched to SQL mode used to share its number
 * with the first SQL-mode joiner: two fans, one entry row. When one of them paid, the row
 * became `done` and the other (unpaid) fan lost the place after recovery. Now a number is
 * claimed in SQL with the token; the later claimant is refused before anything is acknowledged.
 */
import { expect, test } from 'bun:test';
import { randomUUID } from 'node:crypto';
import { applyEvents } from '../src/jobs/write-behind.apply.ts';
import { describeEach, enterMode, newConcert, newUserId } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

describeEach('one entry number, one fan', { modes: ['redis'] }, (h) => {
  test('a Redis join recorded after SQL mode gave its number away is refused, and never touches the other fan', async () => {
    const c = await newConcert(h);
    const a = newUserId();
    const b = newUserId();
    const redisStore = h.svc.ctx.backends.current.queue;
    const jtiA = randomUUID();
    // A's join ran in Redis; its token is not written yet when Redis goes away.
    const placeA = await redisStore.join(c.id, a, jtiA, h.clock.now());
    expect(placeA.seq).toBe(1);

    await enterMode(h.svc, 'sql');
    const joinB = await join(h.app, c.id, await userToken(h.app, b));
    expect(joinB.status).toBe(201);
    const seqB = JSON.parse(Buffer.from(joinB.body.token.split('.')[1], 'base64url').toString()).seq;
    expect(seqB).toBe(1);

    // A's token write arrives late: refused, nothing recorded for A.
    const late = h.svc.ctx.tokens.recordQueueToken({ userId: a, jti: jtiA, concertId: c.id, seq: 1, expiresAt: h.clock.now() + 60_000 },
      [], h.clock.now(), h.svc.ctx.backends.redis);
    await expect(late).rejects.toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    const tokensOfA = await h.svc.database.db.selectFrom('tokens').select('jti').where('user_id', '=', a).where('typ', '=', 'queue').execute();
    expect(tokensOfA).toEqual([]);

    // A's join and leave events (the stream outlived the switch) do not touch B's entry.
    await applyEvents(h.svc.database.db, c.id, [
      { e: 'join', u: String(a), s: '1', t: String(h.clock.now()) },
      { e: 'leave', u: String(a), s: '1', t: String(h.clock.now()) },
    ], h.clock.now());
    const row = await h.svc.database.db.selectFrom('queue_entries').select(['user_id', 'status']).where('concert_id', '=', c.id)
      .where('seq', '=', 1).executeTakeFirstOrThrow();
    expect(row).toEqual({ user_id: b, status: 'waiting' });
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: joinB.body.token })).status).toBe(200);

    // A joins again and gets a number of its own.
    const again = await join(h.app, c.id, await userToken(h.app, a));
    expect(again.status).toBe(201);
    expect(JSON.parse(Buffer.from(again.body.token.split('.')[1], 'base64url').toString()).seq).toBe(2);
    await enterMode(h.svc, 'redis');
  });

  test('a Redis-mode join whose number is taken answers 503 and leaves no place behind, so the retry gets a new one', async () => {
    const c = await newConcert(h);
    const a = newUserId();
    // SQL already gave entry 1 to someone else (e.g. during an outage Redis did not see).
    await h.svc.database.db.insertInto('queue_entries').values({
      concert_id: c.id, seq: 1, user_id: newUserId(), status: 'waiting', joined_at: h.clock.now(), admitted_at: null,
      active_until: null, last_seen_at: h.clock.now(), updated_at: h.clock.now(),
    }).execute();
    const token = await userToken(h.app, a);
    const refused = await join(h.app, c.id, token);
    expect([refused.status, refused.body.error.code]).toEqual([503, 'UNAVAILABLE']);
    const retry = await join(h.app, c.id, token);
    expect(retry.status).toBe(201);
    expect(JSON.parse(Buffer.from(retry.body.token.split('.')[1], 'base64url').toString()).seq).toBe(2);
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: retry.body.token })).status).toBe(200);
  });
});
