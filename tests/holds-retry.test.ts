/**
 * Holds for clients that retry: holding a seat you already hold, Idempotency-Key on
 * POST /v1/reservations, GET /v1/me/reservations, and MAX_TICKETS_PER_USER (with its race).
 * Redis mode and SQL mode, on SQLite and PostgreSQL.
 */
import { expect, test } from 'bun:test';
import { randomUUID } from 'node:crypto';
import { reloadConcert, syncSoldSeats } from '../src/modules/catalog/load-concert.ts';
import { keys } from '../src/redis/keys.ts';
import { releaseHold } from '../src/redis/script-calls.ts';
import { describeEach, newUserId } from './helpers/harness.ts';
import { call, createConcert, userToken } from './helpers/http.ts';
import { admit, errorCode, fund, hold, HOLD_TTL_MS, pay, readmit, SALES_ENV, type Buyer } from './helpers/sales.ts';

const holdWithKey = (h: { app: Parameters<typeof call>[0] }, b: Buyer, scheduleId: number, seatNumber: number, key: string) =>
  call(h.app, 'POST', '/v1/reservations', { token: b.token, body: { scheduleId, seatNumber }, headers: { 'Idempotency-Key': key } });

describeEach('holds for clients that retry', { env: SALES_ENV }, (h) => {
  const db = () => h.svc.database.db;
  const get = (token: string, id: string) => call(h.app, 'GET', `/v1/reservations/${id}`, { token });
  const mine = (token: string) => call(h.app, 'GET', '/v1/me/reservations', { token });
  const rowsOf = (userId: number) => db().selectFrom('reservations').select(['id', 'status']).where('user_id', '=', userId).execute();
  const payMany = (b: Buyer, reservationIds: string[]) => call(h.app, 'POST', '/v1/payments', { token: b.token, body: { reservationIds } });

  test('holding a seat I already hold: 200 with the same reservation and expiry; nothing changes; others still 409', async () => {
    const c = await createConcert(h.app, [{ seats: 4, price: 500 }]);
    const s = c.schedules[0]!.id;
    const [a, b] = await admit(h, c.id, 2);
    const first = await hold(h.app, a!, s, 2);
    expect(first.status).toBe(201);
    h.clock.advance(10_000);
    const again = await hold(h.app, a!, s, 2);
    expect([again.status, again.body]).toEqual([200, first.body]);
    expect(await rowsOf(a!.userId)).toEqual([{ id: first.body.reservationId, status: 'held' }]);
    const seats = (await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules/${s}/seats`, { token: a!.token })).body.seats;
    expect(seats.filter((x: { status: string }) => x.status === 'held').length).toBe(1);
    if (h.mode === 'redis') {
      expect(await h.svc.redis.zcard(keys.userHolds(c.id, a!.userId))).toBe(1);
      expect(Number(await h.svc.redis.zscore(keys.holds(c.id, s), 2))).toBe(Date.parse(first.body.expiresAt));
    }
    const rival = await hold(h.app, b!, s, 2);
    expect([rival.status, errorCode(rival)]).toEqual([409, 'SEAT_UNAVAILABLE']);
    // At the hold limit my own seat still answers 200; a new one is refused.
    for (const n of [1, 3, 4]) expect((await hold(h.app, a!, s, n)).status).toBe(201);
    expect((await hold(h.app, a!, s, 2)).status).toBe(200);
    // Once lapsed it is a new hold with a new reservation.
    h.clock.advance(HOLD_TTL_MS);
    const fresh = await hold(h.app, a!, s, 2);
    expect(fresh.status).toBe(201);
    expect(fresh.body.reservationId).not.toBe(first.body.reservationId);
    expect((await get(a!.token, first.body.reservationId)).body.status).toBe('expired');
  });

  test('my hold that Redis lost (a failover) but SQL keeps: holding it again is 200 with it; a rival is still 409', async () => {
    if (h.mode !== 'redis') return;
    const c = await createConcert(h.app, [{ seats: 2, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a, b] = await admit(h, c.id, 2);
    const first = await hold(h.app, a!, s, 1);
    await h.svc.redis.del(keys.hold(c.id, s, 1));
    await h.svc.redis.zrem(keys.holds(c.id, s), 1);
    const again = await hold(h.app, a!, s, 1);
    expect([again.status, again.body]).toEqual([200, first.body]);
    expect(await rowsOf(a!.userId)).toEqual([{ id: first.body.reservationId, status: 'held' }]);
    const rival = await hold(h.app, b!, s, 1);
    expect([rival.status, errorCode(rival)]).toEqual([409, 'SEAT_UNAVAILABLE']);
    expect((await get(a!.token, first.body.reservationId)).body.status).toBe('held');
  });

  test('a hold Redis gave back (its write-through answered 503 after SQL committed) is not handed out as mine: the seat is taken afresh and stays mine', async () => {
    if (h.mode !== 'redis') return;
    const c = await createConcert(h.app, [{ seats: 2, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    await fund(h.app, a!, 1_000);
    // The state a refused write-through leaves: SQL has the hold, Redis released it, and the
    // release is queued in the stream for SQL.
    const lost = await hold(h.app, a!, s, 1);
    expect(lost.status).toBe(201);
    const rid = lost.body.reservationId;
    const released = await releaseHold.raw(h.svc.redis, {
      concertId: c.id, scheduleId: s, seatNumber: 1, reservationId: rid, userId: a!.userId, now: h.clock.now(),
    });
    expect(Number(released[0])).toBe(0);
    expect((await rowsOf(a!.userId))).toEqual([{ id: rid, status: 'held' }]);
    // The retry gets a hold of its own that the queued release cannot end.
    const again = await hold(h.app, a!, s, 1);
    expect(again.status).toBe(201);
    expect(again.body.reservationId).not.toBe(rid);
    await h.svc.ctx.writeBehind.drainOnce();
    expect((await get(a!.token, again.body.reservationId)).body.status).toBe('held');
    expect((await get(a!.token, rid)).body.status).toBe('released');
    const seats = (await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules/${s}/seats`, { token: a!.token })).body.seats;
    expect(seats.find((x: { seatNumber: number }) => x.seatNumber === 1).status).toBe('held');
    expect((await pay(h.app, a!, again.body.reservationId)).status).toBe(201);
  });

  test('10 concurrent holds of one seat by its user: one 201, nine 200, all the same reservation', async () => {
    const c = await createConcert(h.app, [{ seats: 3, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    const replies = await Promise.all(Array.from({ length: 10 }, () => hold(h.app, a!, s, 3)));
    expect(replies.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(replies.map((r) => JSON.stringify(r.body))).size).toBe(1);
    expect((await rowsOf(a!.userId)).length).toBe(1);
  });

  test('Idempotency-Key: a retry gets the first answer and does nothing twice, even once the hold is gone; another body 422', async () => {
    const c = await createConcert(h.app, [{ seats: 4, price: 900 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    const first = await holdWithKey(h, a!, s, 1, 'hold-1');
    expect(first.status).toBe(201);
    const retry = await holdWithKey(h, a!, s, 1, 'hold-1');
    expect([retry.status, retry.body]).toEqual([201, first.body]);
    const reused = await holdWithKey(h, a!, s, 2, 'hold-1');
    expect([reused.status, errorCode(reused)]).toEqual([422, 'IDEMPOTENCY_KEY_REUSED']);
    // Released: the retry still answers the first answer and takes nothing.
    expect((await call(h.app, 'DELETE', `/v1/reservations/${first.body.reservationId}`, { token: a!.token })).status).toBe(204);
    const late = await holdWithKey(h, a!, s, 1, 'hold-1');
    expect([late.status, late.body]).toEqual([201, first.body]);
    expect(await rowsOf(a!.userId)).toEqual([{ id: first.body.reservationId, status: 'released' }]);
    expect((await get(a!.token, first.body.reservationId)).body.status).toBe('released');
    // A refused hold stores nothing: the retry is judged afresh.
    const [b] = await admit(h, c.id, 1);
    expect((await hold(h.app, b!, s, 3)).status).toBe(201);
    const refused = await holdWithKey(h, a!, s, 3, 'hold-2');
    expect([refused.status, errorCode(refused)]).toEqual([409, 'SEAT_UNAVAILABLE']);
    expect((await holdWithKey(h, a!, s, 4, 'hold-2')).status).toBe(201);
    // A bad key is 400 and takes nothing.
    const bad = await holdWithKey(h, a!, s, 2, 'k'.repeat(201));
    expect([bad.status, errorCode(bad)]).toEqual([400, 'VALIDATION_FAILED']);
    expect((await rowsOf(a!.userId)).length).toBe(2);
  });

  test('Idempotency-Key: 10 concurrent copies of one hold get one answer and one reservation', async () => {
    const c = await createConcert(h.app, [{ seats: 2, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    const replies = await Promise.all(Array.from({ length: 10 }, () => holdWithKey(h, a!, s, 1, 'burst')));
    expect(new Set(replies.map((r) => `${r.status} ${JSON.stringify(r.body)}`)).size).toBe(1);
    expect([200, 201]).toContain(replies[0]!.status);
    expect((await rowsOf(a!.userId)).length).toBe(1);
  });

  test('Idempotency-Key: one key sent with two seats at once takes one seat; the other answer is 422 and its seat stays free', async () => {
    const c = await createConcert(h.app, [{ seats: 4, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    const [x, y] = await Promise.all([holdWithKey(h, a!, s, 1, 'two-seats'), holdWithKey(h, a!, s, 2, 'two-seats')]);
    const outcomes = [x, y].map((r) => (r.status === 201 ? '201' : `${r.status} ${errorCode(r)}`)).sort();
    expect(outcomes).toEqual(['201', '422 IDEMPOTENCY_KEY_REUSED']);
    const won = x.status === 201 ? x : y;
    const live = await db().selectFrom('reservations').select('id').where('user_id', '=', a!.userId).where('status', '=', 'held').execute();
    expect(live).toEqual([{ id: won.body.reservationId }]);
    const seats = (await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules/${s}/seats`, { token: a!.token })).body.seats;
    expect(seats.filter((z: { status: string }) => z.status === 'held').map((z: { seatNumber: number }) => z.seatNumber)).toEqual([won.body.seatNumber]);
  });

  test('Idempotency-Key: a retry after the hold was paid (token spent) gets the first answer', async () => {
    const c = await createConcert(h.app, [{ seats: 2, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    await fund(h.app, a!, 100);
    const first = await holdWithKey(h, a!, s, 1, 'then-paid');
    expect((await pay(h.app, a!, first.body.reservationId)).status).toBe(201);
    const retry = await holdWithKey(h, a!, s, 1, 'then-paid');
    expect([retry.status, retry.body]).toEqual([201, first.body]);
    // Without the key the spent token is refused as before.
    expect((await hold(h.app, a!, s, 1)).status).toBe(401);
  });

  test('GET /v1/me/reservations: newest first, statuses as GET /v1/reservations/:id says, any live token', async () => {
    const c = await createConcert(h.app, [{ seats: 6, price: 300 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    await fund(h.app, a!, 1_000);
    const empty = await mine(await userToken(h.app, newUserId()));
    expect([empty.status, empty.body]).toEqual([200, { reservations: [] }]);
    const ids: string[] = [];
    for (const n of [1, 2, 3, 4]) {
      ids.push((await hold(h.app, a!, s, n)).body.reservationId);
      h.clock.advance(1_000);
    }
    expect((await call(h.app, 'DELETE', `/v1/reservations/${ids[1]}`, { token: a!.token })).status).toBe(204);
    expect((await pay(h.app, a!, ids[2]!)).status).toBe(201);
    h.clock.advance(HOLD_TTL_MS - 3_500); // the first hold (taken 4 s earlier) lapses, the last does not
    const list = await mine(a!.token);
    expect(list.status).toBe(200);
    expect(list.headers.get('Cache-Control')).toBe('no-store');
    expect(list.body.reservations.map((r: { reservationId: string }) => r.reservationId)).toEqual([...ids].reverse());
    expect(list.body.reservations.map((r: { status: string }) => r.status)).toEqual(['held', 'paid', 'released', 'expired']);
    const other = await userToken(h.app, a!.userId);
    for (const r of list.body.reservations) {
      const one = await get(other, r.reservationId);
      expect(one.body).toEqual(r);
      expect(Object.keys(r).sort()).toEqual(['concertId', 'expiresAt', 'price', 'reservationId', 'scheduleId', 'seatNumber', 'status']);
    }
    expect((await mine(other)).body).toEqual(list.body);
    const none = await call(h.app, 'GET', '/v1/me/reservations');
    expect([none.status, errorCode(none)]).toEqual([401, 'UNAUTHENTICATED']);
  });

  test('GET /v1/me/reservations is bounded to the newest 100', async () => {
    const userId = newUserId();
    const t = await userToken(h.app, userId);
    const c = await createConcert(h.app, [{ seats: 1, price: 1 }]);
    const base = h.clock.now() - 1_000_000;
    const rows = Array.from({ length: 105 }, (_, i) => ({
      id: `${c.id}-${randomUUID()}`, user_id: userId, concert_id: c.id, schedule_id: c.schedules[0]!.id, seat_number: 1,
      price: 1, status: 'released' as const, expires_at: base + i, created_at: base + i, updated_at: base + i,
    }));
    await db().insertInto('reservations').values(rows).execute();
    const list = (await mine(t)).body.reservations as { reservationId: string }[];
    expect(list.map((r) => r.reservationId)).toEqual(rows.slice(5).reverse().map((r) => r.id));
  });

  test('MAX_TICKETS_PER_USER counts held + paid seats of the concert, across rejoins: 409 TICKET_LIMIT_REACHED', async () => {
    const max = h.svc.config.maxTicketsPerUser;
    expect(max).toBe(4);
    const c = await createConcert(h.app, [{ seats: 10, price: 100 }]);
    const s = c.schedules[0]!.id;
    let [a] = await admit(h, c.id, 1);
    await fund(h.app, a!, 10_000);
    const paid = [(await hold(h.app, a!, s, 1)).body.reservationId, (await hold(h.app, a!, s, 2)).body.reservationId];
    expect((await payMany(a!, paid)).status).toBe(201);
    a = await readmit(h, c.id, a!);
    const r3 = (await hold(h.app, a, s, 3)).body.reservationId as string;
    expect((await hold(h.app, a, s, 4)).status).toBe(201);
    const over = await hold(h.app, a, s, 5);
    expect([over.status, errorCode(over)]).toEqual([409, 'TICKET_LIMIT_REACHED']);
    // My own hold still answers 200 at the limit; a released hold gives its ticket back.
    expect((await hold(h.app, a, s, 3)).status).toBe(200);
    expect((await call(h.app, 'DELETE', `/v1/reservations/${r3}`, { token: a.token })).status).toBe(204);
    expect((await hold(h.app, a, s, 5)).status).toBe(201);
    expect(errorCode(await hold(h.app, a, s, 6))).toBe('TICKET_LIMIT_REACHED');
    // Another concert has its own count.
    const other = await createConcert(h.app, [{ seats: 2, price: 100 }]);
    const [a2] = await admit(h, other.id, 1, [a.userId]);
    expect((await hold(h.app, a2!, other.schedules[0]!.id, 1)).status).toBe(201);
    if (h.mode === 'redis') {
      expect((await h.svc.redis.smembers(keys.userPaid(c.id, a.userId))).sort()).toEqual([...paid].sort());
      // Redis loses the count (a failover); the concert load rebuilds it from SQL.
      await h.svc.redis.del(keys.userPaid(c.id, a.userId));
      await reloadConcert(db(), h.svc.redis, c.id, h.clock.now());
      expect((await h.svc.redis.smembers(keys.userPaid(c.id, a.userId))).sort()).toEqual([...paid].sort());
      const b = await readmit(h, c.id, { userId: a.userId, token: '' });
      expect(errorCode(await hold(h.app, b, s, 7))).toBe('TICKET_LIMIT_REACHED');
      // The catch-up after SQL mode (sales made while Redis was out) adds them too.
      await h.svc.redis.del(keys.userPaid(c.id, a.userId));
      await syncSoldSeats(db(), h.svc.redis, c.id);
      expect((await h.svc.redis.smembers(keys.userPaid(c.id, a.userId))).sort()).toEqual([...paid].sort());
      expect(await h.svc.redis.pttl(keys.userPaid(c.id, a.userId))).toBeGreaterThan(0);
    }
  });

  test('race: 5 fans with 2 paid seats each rejoin and fire 10 holds each at once: exactly 2 more each', async () => {
    const c = await createConcert(h.app, [{ seats: 80, price: 10 }]);
    const s = c.schedules[0]!.id;
    const fans = await admit(h, c.id, 5);
    const again = await Promise.all(fans.map(async (f, i) => {
      await fund(h.app, f, 1_000);
      const ids = [(await hold(h.app, f, s, i * 16 + 1)).body.reservationId, (await hold(h.app, f, s, i * 16 + 2)).body.reservationId];
      expect((await payMany(f, ids)).status).toBe(201);
      return readmit(h, c.id, f);
    }));
    const replies = await Promise.all(again.flatMap((f, i) => Array.from({ length: 10 }, (_, k) => hold(h.app, f, s, i * 16 + 3 + k))));
    for (const [i, f] of again.entries()) {
      const own = replies.slice(i * 10, i * 10 + 10).map((r) => (r.status === 201 ? '201' : `${r.status} ${errorCode(r)}`));
      expect({ user: f.userId, won: own.filter((x) => x === '201').length }).toEqual({ user: f.userId, won: 2 });
      expect(new Set(own.filter((x) => x !== '201'))).toEqual(new Set(['409 TICKET_LIMIT_REACHED']));
      const live = await db().selectFrom('reservations').select('id').where('user_id', '=', f.userId)
        .where('concert_id', '=', c.id).where('status', 'in', ['held', 'paid']).execute();
      expect(live.length).toBe(4);
    }
  }, 60_000);
});
