/**
 * Entry numbers come from Redis in Redis mode and from SQL in SQL mode. A Redis join whose
 * token was still being written when the fleet switched to SQL mode used to share its number
 * with the first SQL-mode joiner: two fans, one entry row. Now Redis gives out only numbers SQL
 * has reserved (queue_state.seq_ceiling), and SQL mode numbers above them, so the two never meet.
 * A Redis join is acknowledged once Redis has its place; its record (written behind) still claims
 * the number in SQL, so that if the two did meet, SQL would never give the number to the second.
 */
import { expect, test } from 'bun:test';
import { randomUUID } from 'node:crypto';
import { applyEvents } from '../src/jobs/write-behind.apply.ts';
import { ENTRY_NUMBER_BLOCK } from '../src/modules/queue/queue.redis.ts';
import { reserveEntryNumbers } from '../src/modules/queue/queue-state.repo.ts';
import { keys } from '../src/redis/keys.ts';
import { describeEach, enterMode, newConcert, newUserId } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

const seqOf = (token: string): number => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).seq;

describeEach('one entry number, one fan', { modes: ['redis'] }, (h) => {
  const ceilingInSql = async (concertId: number) => Number((await h.svc.database.db.selectFrom('queue_state').select('seq_ceiling')
    .where('concert_id', '=', concertId).executeTakeFirstOrThrow()).seq_ceiling);

  test('a Redis join recorded after the switch to SQL mode keeps its number: SQL mode numbers above the reserved ceiling', async () => {
    const c = await newConcert(h);
    const a = newUserId();
    const b = newUserId();
    const redisStore = h.svc.ctx.backends.current.queue;
    const jtiA = randomUUID();
    // A's join ran in Redis, which first reserved its numbers in SQL; A's token is not written yet when Redis goes away.
    const placeA = await redisStore.join(c.id, a, jtiA, h.clock.now());
    expect(placeA.seq).toBe(1);
    const ceiling = await ceilingInSql(c.id);
    expect(ceiling).toBeGreaterThanOrEqual(ENTRY_NUMBER_BLOCK);

    await enterMode(h.svc, 'sql');
    const joinB = await join(h.app, c.id, await userToken(h.app, b));
    expect(joinB.status).toBe(201);
    expect(seqOf(joinB.body.token)).toBe(ceiling + 1);

    // A's token write arrives late and is recorded under A's own number.
    const late = await h.svc.ctx.tokens.recordQueueToken({ userId: a, jti: jtiA, concertId: c.id, seq: 1, expiresAt: h.clock.now() + 60_000 },
      [], h.clock.now(), h.svc.ctx.backends.redis);
    expect(late.seq).toBe(1);
    const entries = await h.svc.database.db.selectFrom('queue_entries').select(['seq', 'user_id', 'status'])
      .where('concert_id', '=', c.id).orderBy('seq').execute();
    expect(entries).toEqual([{ seq: 1, user_id: a, status: 'waiting' }, { seq: ceiling + 1, user_id: b, status: 'waiting' }]);
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: late.token })).status).toBe(200);
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: joinB.body.token })).status).toBe(200);

    // A reservation made while the fleet is in SQL mode is refused: SQL mode may be numbering above the ceiling.
    await expect(reserveEntryNumbers(h.svc.database.db, c.id, ceiling + 10 * ENTRY_NUMBER_BLOCK)).rejects.toMatchObject({ status: 503 });
    expect(await ceilingInSql(c.id)).toBe(ceiling);
    await enterMode(h.svc, 'redis');
  });

  test('the join events of a number SQL mode gave to someone else do not touch that fan', async () => {
    const c = await newConcert(h);
    const a = newUserId();
    const b = newUserId();
    await enterMode(h.svc, 'sql');
    const joinB = await join(h.app, c.id, await userToken(h.app, b));
    expect(joinB.status).toBe(201);
    const seqB = seqOf(joinB.body.token);
    // A stream entry naming B's number for another user (as a Redis that lost its reservation could write).
    await applyEvents(h.svc.database.db, c.id, [
      { e: 'join', u: String(a), s: String(seqB), t: String(h.clock.now()) },
      { e: 'leave', u: String(a), s: String(seqB), t: String(h.clock.now()) },
    ], h.clock.now());
    const row = await h.svc.database.db.selectFrom('queue_entries').select(['user_id', 'status']).where('concert_id', '=', c.id)
      .where('seq', '=', seqB).executeTakeFirstOrThrow();
    expect(row).toEqual({ user_id: b, status: 'waiting' });
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: joinB.body.token })).status).toBe(200);
    await enterMode(h.svc, 'redis');
  });

  test('Redis gives out only reserved numbers: the SQL ceiling stays at or above every number, the block renewed ahead of need', async () => {
    const c = await newConcert(h);
    const n = ENTRY_NUMBER_BLOCK * 2 + 7;
    for (let i = 0; i < n; i++) {
      const r = await join(h.app, c.id, await userToken(h.app, newUserId()));
      expect(r.status).toBe(201);
      expect(seqOf(r.body.token)).toBe(i + 1);
      const inRedis = Number(await h.svc.ctx.redis.hget(keys.queueMeta(c.id), 'seqCeiling'));
      expect(inRedis).toBeGreaterThanOrEqual(i + 1);
      expect(await ceilingInSql(c.id)).toBeGreaterThanOrEqual(inRedis);
    }
  });

  test('a burst of joins far larger than a block: every join gets a number, one reservation sized for the waiting ones', async () => {
    const c = await newConcert(h);
    const store = h.svc.ctx.backends.current.queue;
    const n = ENTRY_NUMBER_BLOCK * 15;
    const users = Array.from({ length: n }, () => newUserId());
    const places = await Promise.all(users.map((u) => store.join(c.id, u, randomUUID(), h.clock.now())));
    expect(new Set(places.map((p) => p.seq)).size).toBe(n);
    expect(Math.max(...places.map((p) => p.seq))).toBe(n);
    expect(await ceilingInSql(c.id)).toBeGreaterThanOrEqual(n);
  });

  test('a queue loaded again from SQL (a Redis that lost it) starts above the ceiling', async () => {
    const c = await newConcert(h);
    const first = await join(h.app, c.id, await userToken(h.app, newUserId()));
    expect(seqOf(first.body.token)).toBe(1);
    const ceiling = await ceilingInSql(c.id);
    // Every key of the concert gone (a restart without persistence, a failover to an empty replica).
    const lost = await h.svc.ctx.redis.keys(`{c:${c.id}}*`);
    expect(lost).toContain(keys.queueMeta(c.id));
    await h.svc.ctx.redis.del(...lost);
    const next = await join(h.app, c.id, await userToken(h.app, newUserId()));
    expect(next.status).toBe(201);
    expect(seqOf(next.body.token)).toBe(ceiling + 1);
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: first.body.token })).status).toBe(200);
  });

  test("a Redis join's record never takes a number SQL holds for another fan (a state the ceiling rules out, forced here)", async () => {
    const c = await newConcert(h);
    const a = newUserId();
    const other = newUserId();
    await h.svc.database.db.insertInto('queue_entries').values({
      concert_id: c.id, seq: 1, user_id: other, status: 'waiting', joined_at: h.clock.now(), admitted_at: null,
      active_until: null, last_seen_at: h.clock.now(), updated_at: h.clock.now(),
    }).execute();
    const joined = await join(h.app, c.id, await userToken(h.app, a));
    expect(joined.status).toBe(201);
    expect(seqOf(joined.body.token)).toBe(1);
    await h.svc.ctx.writeBehind.drainConcertFully(c.id);
    const jti = JSON.parse(Buffer.from(joined.body.token.split('.')[1]!, 'base64url').toString()).jti as string;
    const row = await h.svc.database.db.selectFrom('tokens').select(['seq', 'revoked_at']).where('jti', '=', jti).executeTakeFirstOrThrow();
    expect(row).toEqual({ seq: 1, revoked_at: expect.any(Number) });
    const entry = await h.svc.database.db.selectFrom('queue_entries').select('user_id').where('concert_id', '=', c.id).where('seq', '=', 1)
      .executeTakeFirstOrThrow();
    expect(entry.user_id).toBe(other);
  });
});
