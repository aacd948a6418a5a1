/**
 * POST /v1/reservations, GET and DELETE /v1/reservations/:id: every answer and error code, in
 * Redis mode and SQL mode, on SQLite and PostgreSQL.
 */
import { expect, test } from 'bun:test';
import { randomUUID } from 'node:crypto';
import { describeEach, newUserId, queueStats } from './helpers/harness.ts';
import { call, createConcert, join, userToken } from './helpers/http.ts';
import { admit, errorCode, fund, hold, HOLD_TTL_MS, pay, readmit, SALES_ENV } from './helpers/sales.ts';

const RID = /^\d+-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describeEach('reservations', { env: SALES_ENV }, (h) => {
  const get = (token: string, id: string) => call(h.app, 'GET', `/v1/reservations/${id}`, { token });
  const release = (token: string, id: string) => call(h.app, 'DELETE', `/v1/reservations/${id}`, { token });
  const seatMap = async (token: string, concertId: number, scheduleId: number) =>
    (await call(h.app, 'GET', `/v1/concerts/${concertId}/schedules/${scheduleId}/seats`, { token })).body.seats as
      { seatNumber: number; status: string }[];
  const available = async (token: string, concertId: number) =>
    (await call(h.app, 'GET', `/v1/concerts/${concertId}/schedules`, { token })).body.schedules[0].available as number;

  test('a hold answers 201 with the reservation, and the seat map and counts show it', async () => {
    const c = await createConcert(h.app, [{ seats: 5, price: 42_000 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    const before = h.clock.now();
    const r = await hold(h.app, a!, s, 3);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ status: 'held', price: 42_000, scheduleId: s, seatNumber: 3, concertId: c.id });
    expect(r.body.reservationId).toMatch(RID);
    expect(r.body.reservationId.startsWith(`${c.id}-`)).toBe(true);
    const expiresAt = Date.parse(r.body.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + HOLD_TTL_MS);
    expect(expiresAt).toBeLessThanOrEqual(h.clock.now() + HOLD_TTL_MS);
    expect((await seatMap(a!.token, c.id, s)).find((x) => x.seatNumber === 3)?.status).toBe('held');
    expect(await available(a!.token, c.id)).toBe(4);
    const g = await get(a!.token, r.body.reservationId);
    expect(g.status).toBe(200);
    expect(g.body).toEqual(r.body);
  });

  test('a seat held or sold by someone is SEAT_UNAVAILABLE; held by me already is 200 with that hold', async () => {
    const c = await createConcert(h.app, [{ seats: 3, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a, b] = await admit(h, c.id, 2);
    const first = await hold(h.app, a!, s, 1);
    expect(first.status).toBe(201);
    const mine = await hold(h.app, a!, s, 1);
    expect([mine.status, mine.body]).toEqual([200, first.body]);
    const rival = await hold(h.app, b!, s, 1);
    expect([rival.status, errorCode(rival)]).toEqual([409, 'SEAT_UNAVAILABLE']);
    const sold = await hold(h.app, b!, s, 2);
    await fund(h.app, b!, 100);
    expect((await pay(h.app, b!, sold.body.reservationId)).status).toBe(201);
    const r = await hold(h.app, a!, s, 2);
    expect([r.status, errorCode(r)]).toEqual([409, 'SEAT_UNAVAILABLE']);
  });

  test('unknown schedule, another concert\'s schedule, or a seat out of range is 404', async () => {
    const c = await createConcert(h.app, [{ seats: 3, price: 100 }]);
    const other = await createConcert(h.app, [{ seats: 3, price: 100 }]);
    const [a] = await admit(h, c.id, 1);
    for (const [scheduleId, seatNumber] of [[999_999, 1], [other.schedules[0]!.id, 1], [c.schedules[0]!.id, 4]] as const) {
      const r = await hold(h.app, a!, scheduleId, seatNumber);
      expect([r.status, errorCode(r)]).toEqual([404, 'NOT_FOUND']);
    }
  });

  test('bad bodies are 400 VALIDATION_FAILED with details and change nothing', async () => {
    const c = await createConcert(h.app, [{ seats: 3, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    const bodies: unknown[] = [
      {}, { scheduleId: s }, { seatNumber: 1 }, { scheduleId: String(s), seatNumber: 1 }, { scheduleId: s, seatNumber: '1' },
      { scheduleId: s, seatNumber: 0 }, { scheduleId: s, seatNumber: -1 }, { scheduleId: s, seatNumber: 1.5 },
      { scheduleId: 0, seatNumber: 1 }, { scheduleId: 1e300, seatNumber: 1 }, { scheduleId: s, seatNumber: 1, extra: true },
      null, [], 'x',
    ];
    for (const body of bodies) {
      const r = await call(h.app, 'POST', '/v1/reservations', { token: a!.token, body });
      expect({ body, status: r.status, code: errorCode(r) }).toEqual({ body, status: 400, code: 'VALIDATION_FAILED' });
      expect(Array.isArray(r.body.error.details)).toBe(true);
    }
    const malformed = await call(h.app, 'POST', '/v1/reservations', { token: a!.token, raw: '{"scheduleId": 1,' });
    expect([malformed.status, errorCode(malformed)]).toEqual([400, 'VALIDATION_FAILED']);
    expect(await available(a!.token, c.id)).toBe(3);
  });

  test('tokens: none or bad is 401, a user token or a waiting queue token is 403 NOT_ADMITTED, a replaced one 401', async () => {
    const c = await createConcert(h.app, [{ seats: 3, price: 100 }]);
    const s = c.schedules[0]!.id;
    const body = { scheduleId: s, seatNumber: 1 };
    const none = await call(h.app, 'POST', '/v1/reservations', { body });
    expect([none.status, errorCode(none)]).toEqual([401, 'UNAUTHENTICATED']);
    const bad = await call(h.app, 'POST', '/v1/reservations', { body, token: 'not.a.jwt' });
    expect([bad.status, errorCode(bad)]).toEqual([401, 'UNAUTHENTICATED']);

    const userId = newUserId();
    const user = await userToken(h.app, userId);
    const asUser = await call(h.app, 'POST', '/v1/reservations', { body, token: user });
    expect([asUser.status, errorCode(asUser)]).toEqual([403, 'NOT_ADMITTED']);

    await call(h.app, 'PATCH', `/admin/concerts/${c.id}/queue`, { admin: true, body: { paused: false, maxActive: 1 } });
    const [first] = await admit(h, c.id, 1);
    const waiting = (await join(h.app, c.id, await userToken(h.app, newUserId()))).body.token;
    const w = await call(h.app, 'POST', '/v1/reservations', { body, token: waiting });
    expect([w.status, errorCode(w)]).toEqual([403, 'NOT_ADMITTED']);

    // Joining again with another user token of the same user hands out a new token and revokes
    // the old one (joining again with the queue token itself keeps it: token lifecycle).
    const again = await join(h.app, c.id, await userToken(h.app, first!.userId));
    expect(again.status).toBe(200);
    const old = await call(h.app, 'POST', '/v1/reservations', { body, token: first!.token });
    expect([old.status, errorCode(old)]).toEqual([401, 'UNAUTHENTICATED']);
    expect((await call(h.app, 'POST', '/v1/reservations', { body, token: again.body.token })).status).toBe(201);
    expect((await queueStats(h.app, c.id)).waiting).toBe(1);
  });

  test('at most MAX_HOLDS_PER_USER live holds: the next is 409 HOLD_LIMIT_REACHED; released or expired ones do not count', async () => {
    const c = await createConcert(h.app, [{ seats: 10, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    const max = h.svc.config.maxHoldsPerUser;
    const ids: string[] = [];
    for (let n = 1; n <= max; n++) ids.push((await hold(h.app, a!, s, n)).body.reservationId);
    const over = await hold(h.app, a!, s, max + 1);
    expect([over.status, errorCode(over)]).toEqual([409, 'HOLD_LIMIT_REACHED']);
    expect((await release(a!.token, ids[0]!)).status).toBe(204);
    expect((await hold(h.app, a!, s, max + 1)).status).toBe(201);
    expect((await hold(h.app, a!, s, max + 2)).status).toBe(409);
    h.clock.advance(HOLD_TTL_MS);
    for (let n = 1; n <= max; n++) expect((await hold(h.app, a!, s, max + 2 + n)).status).toBe(201);
  });

  test('a hold expires by itself: it reads `expired`, the seat is free again, and it cannot be released', async () => {
    const c = await createConcert(h.app, [{ seats: 2, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a, b] = await admit(h, c.id, 2);
    const r = await hold(h.app, a!, s, 1);
    h.clock.advance(HOLD_TTL_MS - 1000);
    expect((await get(a!.token, r.body.reservationId)).body.status).toBe('held');
    expect((await hold(h.app, b!, s, 1)).status).toBe(409);
    h.clock.advance(1000);
    expect((await get(a!.token, r.body.reservationId)).body.status).toBe('expired');
    expect((await seatMap(a!.token, c.id, s))[0]!.status).toBe('available');
    expect(await available(a!.token, c.id)).toBe(2);
    const rel = await release(a!.token, r.body.reservationId);
    expect([rel.status, errorCode(rel)]).toEqual([409, 'HOLD_EXPIRED']);
    const taken = await hold(h.app, b!, s, 1);
    expect(taken.status).toBe(201);
    // The first user's old reservation stays expired even though the seat is held again.
    expect((await get(a!.token, r.body.reservationId)).body.status).toBe('expired');
  });

  test('a show that has started takes no holds (409 SEAT_UNAVAILABLE)', async () => {
    const soon = new Date(h.clock.now() + 120_000).toISOString();
    const later = new Date(h.clock.now() + 30 * 86_400_000).toISOString();
    const r = await call(h.app, 'POST', '/admin/concerts', {
      admin: true, body: { title: 'Matinee', schedules: [{ date: soon, seats: 2, price: 10 }, { date: later, seats: 2, price: 10 }] },
    });
    const [a] = await admit(h, r.body.id, 1);
    h.clock.advance(180_000);
    const late = await hold(h.app, a!, r.body.schedules[0].id, 1);
    expect([late.status, errorCode(late)]).toEqual([409, 'SEAT_UNAVAILABLE']);
    expect((await hold(h.app, a!, r.body.schedules[1].id, 1)).status).toBe(201);
  });

  test('GET: own reservations with any live token of the owner; someone else\'s is 403; unknown 404; bad shape 400', async () => {
    const c = await createConcert(h.app, [{ seats: 3, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a, b] = await admit(h, c.id, 2);
    const rid = (await hold(h.app, a!, s, 2)).body.reservationId as string;
    const fresh = await userToken(h.app, a!.userId);
    const asUser = await get(fresh, rid);
    expect([asUser.status, asUser.body.status, asUser.body.seatNumber]).toEqual([200, 'held', 2]);
    expect(asUser.headers.get('Cache-Control')).toBe('no-store');
    const other = await get(b!.token, rid);
    expect([other.status, errorCode(other)]).toEqual([403, 'FORBIDDEN']);
    const unknown = await get(a!.token, `${c.id}-${randomUUID()}`);
    expect([unknown.status, errorCode(unknown)]).toEqual([404, 'NOT_FOUND']);
    const otherConcert = await get(a!.token, `999-${randomUUID()}`);
    expect([otherConcert.status, errorCode(otherConcert)]).toEqual([404, 'NOT_FOUND']);
    for (const bad of ['abc', '1', `0-${randomUUID()}`, `x-${randomUUID()}`, `${c.id}-${randomUUID().toUpperCase()}`, `${c.id}-1234`, `${c.id}-${randomUUID()}x`]) {
      const r = await get(a!.token, encodeURIComponent(bad));
      expect({ bad, status: r.status, code: errorCode(r) }).toEqual({ bad, status: 400, code: 'VALIDATION_FAILED' });
    }
    const none = await call(h.app, 'GET', `/v1/reservations/${rid}`);
    expect([none.status, errorCode(none)]).toEqual([401, 'UNAUTHENTICATED']);
  });

  test('DELETE: 204 frees the seat at once; again is 409 HOLD_EXPIRED; someone else\'s 403; unknown 404; paid 409 ALREADY_PAID', async () => {
    const c = await createConcert(h.app, [{ seats: 3, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a, b] = await admit(h, c.id, 2);
    const rid = (await hold(h.app, a!, s, 1)).body.reservationId as string;
    const foreign = await release(b!.token, rid);
    expect([foreign.status, errorCode(foreign)]).toEqual([403, 'FORBIDDEN']);
    const gone = await release(a!.token, rid);
    expect(gone.status).toBe(204);
    expect(gone.body).toBeNull();
    expect((await get(a!.token, rid)).body.status).toBe('released');
    const twice = await release(a!.token, rid);
    expect([twice.status, errorCode(twice)]).toEqual([409, 'HOLD_EXPIRED']);
    expect((await hold(h.app, b!, s, 1)).status).toBe(201);

    const unknown = await release(a!.token, `${c.id}-${randomUUID()}`);
    expect([unknown.status, errorCode(unknown)]).toEqual([404, 'NOT_FOUND']);
    const bad = await release(a!.token, 'nope');
    expect([bad.status, errorCode(bad)]).toEqual([400, 'VALIDATION_FAILED']);
    const none = await call(h.app, 'DELETE', `/v1/reservations/${rid}`);
    expect([none.status, errorCode(none)]).toEqual([401, 'UNAUTHENTICATED']);

    const paidRid = (await hold(h.app, a!, s, 2)).body.reservationId as string;
    await fund(h.app, a!, 100);
    expect((await pay(h.app, a!, paidRid)).status).toBe(201);
    const fresh = await userToken(h.app, a!.userId);
    const paid = await release(fresh, paidRid);
    expect([paid.status, errorCode(paid)]).toEqual([409, 'ALREADY_PAID']);
    expect((await get(fresh, paidRid)).body.status).toBe('paid');
  });

  test('the sweeper marks lapsed holds expired in SQL and frees their seat rows; live, paid and released ones stay', async () => {
    const c = await createConcert(h.app, [{ seats: 4, price: 10 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    const lapsing = (await hold(h.app, a!, s, 1)).body.reservationId as string;
    const released = (await hold(h.app, a!, s, 2)).body.reservationId as string;
    expect((await release(a!.token, released)).status).toBe(204);
    const paid = (await hold(h.app, a!, s, 3)).body.reservationId as string;
    await fund(h.app, a!, 10);
    expect((await pay(h.app, a!, paid)).status).toBe(201);
    const [b] = await admit(h, c.id, 1);
    h.clock.advance(HOLD_TTL_MS / 2);
    const live = (await hold(h.app, b!, s, 4)).body.reservationId as string;
    await h.svc.ctx.writeBehind.drainOnce(h.clock.now());
    h.clock.advance(HOLD_TTL_MS / 2);

    const swept = await h.svc.ctx.sweeper.sweepOnce(h.clock.now());
    expect(swept.reservations).toBeGreaterThanOrEqual(1);
    const db = h.svc.database.db;
    const status = async (id: string) => (await db.selectFrom('reservations').select('status').where('id', '=', id).executeTakeFirst())?.status;
    expect([await status(lapsing), await status(released), await status(paid), await status(live)]).toEqual(['expired', 'released', 'paid', 'held']);
    const seats = await db.selectFrom('seats').select(['seat_number', 'status', 'hold_reservation_id']).where('schedule_id', '=', s).orderBy('seat_number').execute();
    expect(seats.map((x) => [x.status, x.hold_reservation_id])).toEqual([['available', null], ['available', null], ['sold', null], ['held', live]]);
    expect((await get(b!.token, live)).body.status).toBe('held');
    expect((await get(await userToken(h.app, a!.userId), lapsing)).body.status).toBe('expired');
  });

  test('a sold-out schedule answers from SQL: every seat sold, nothing available, holds refused', async () => {
    const c = await createConcert(h.app, [{ seats: 2, price: 10 }]);
    const s = c.schedules[0]!.id;
    const [a, b, watcher] = await admit(h, c.id, 3);
    for (const [who, n] of [[a!, 1], [b!, 2]] as const) {
      await fund(h.app, who, 10);
      expect((await pay(h.app, who, (await hold(h.app, who, s, n)).body.reservationId)).status).toBe(201);
    }
    expect((await seatMap(watcher!.token, c.id, s)).map((x) => x.status)).toEqual(['sold', 'sold']);
    expect(await available(watcher!.token, c.id)).toBe(0);
    const again = await hold(h.app, watcher!, s, 1);
    expect([again.status, errorCode(again)]).toEqual([409, 'SEAT_UNAVAILABLE']);
    const outOfRange = await hold(h.app, watcher!, s, 3);
    expect([outOfRange.status, errorCode(outOfRange)]).toEqual([404, 'NOT_FOUND']);
    if (h.mode === 'redis') expect(await h.svc.redis.exists(`{c:${c.id}}:seats:${s}`)).toBe(0);
    // A buyer comes back with a new place and still sees the final map.
    const back = await readmit(h, c.id, a!);
    expect((await seatMap(back.token, c.id, s)).map((x) => x.status)).toEqual(['sold', 'sold']);
  });
});
