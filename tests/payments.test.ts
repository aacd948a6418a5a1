/**
 * GET /v1/me/balance, POST /v1/me/balance/charge and POST /v1/payments: answers, error codes,
 * Idempotency-Key, concurrent payments, and SQL as the last word on a double sale. Redis mode
 * and SQL mode, on SQLite and PostgreSQL.
 */
import { expect, test } from 'bun:test';
import { randomUUID } from 'node:crypto';
import { keys } from '../src/redis/keys.ts';
import { describeEach, newUserId, queueStats } from './helpers/harness.ts';
import { call, createConcert, join, userToken } from './helpers/http.ts';
import {
  admit, charge, errorCode, expectLedgerMatchesBalances, fund, hold, HOLD_TTL_MS, pay, readmit, SALES_ENV, type Buyer,
} from './helpers/sales.ts';

describeEach('balance and payments', { env: SALES_ENV }, (h) => {
  const balanceOf = async (token: string) => (await call(h.app, 'GET', '/v1/me/balance', { token })).body.balance as number;
  const db = () => h.svc.database.db;
  const paymentsOf = (reservationId: string) => db().selectFrom('payments').selectAll().where('reservation_id', '=', reservationId).execute();
  const ledgerOf = (userId: number) => db().selectFrom('ledger').selectAll().where('user_id', '=', userId).orderBy('id').execute();

  /** A concert, an admitted buyer with money, and a live hold of seat 1. */
  async function heldSeat(price = 30_000, money = 100_000) {
    const c = await createConcert(h.app, [{ seats: 4, price }]);
    const [buyer] = await admit(h, c.id, 1);
    if (money) await fund(h.app, buyer!, money);
    const r = await hold(h.app, buyer!, c.schedules[0]!.id, 1);
    expect(r.status).toBe(201);
    return { c, scheduleId: c.schedules[0]!.id, buyer: buyer!, rid: r.body.reservationId as string };
  }

  test('balance: 200 with any live token; a new user has 0; no or revoked token 401', async () => {
    const userId = newUserId();
    const t = await userToken(h.app, userId);
    const r = await call(h.app, 'GET', '/v1/me/balance', { token: t });
    expect([r.status, r.body]).toEqual([200, { userId, balance: 0 }]);
    const c = await createConcert(h.app);
    const q = (await join(h.app, c.id, t)).body.token;
    expect(await balanceOf(q)).toBe(0);
    // Joining revoked the user token.
    const old = await call(h.app, 'GET', '/v1/me/balance', { token: t });
    expect([old.status, errorCode(old)]).toEqual([401, 'UNAUTHENTICATED']);
    const none = await call(h.app, 'GET', '/v1/me/balance');
    expect([none.status, errorCode(none)]).toEqual([401, 'UNAUTHENTICATED']);
  });

  test('charge: 200 with the new balance, one ledger row each; bounds 1..10,000,000', async () => {
    const userId = newUserId();
    const t = await userToken(h.app, userId);
    expect((await charge(h.app, t, 1)).body).toEqual({ userId, balance: 1 });
    const r = await charge(h.app, t, 10_000_000);
    expect([r.status, r.body]).toEqual([200, { userId, balance: 10_000_001 }]);
    expect((await ledgerOf(userId)).map((l) => [l.amount, l.kind])).toEqual([[1, 'charge'], [10_000_000, 'charge']]);
    for (const body of [{ amount: 0 }, { amount: -5 }, { amount: 10_000_001 }, { amount: 1.5 }, { amount: '100' }, {}, { amount: 5, x: 1 }, null]) {
      const bad = await call(h.app, 'POST', '/v1/me/balance/charge', { token: t, body });
      expect({ body, status: bad.status, code: errorCode(bad) }).toEqual({ body, status: 400, code: 'VALIDATION_FAILED' });
    }
    const malformed = await call(h.app, 'POST', '/v1/me/balance/charge', { token: t, raw: '{"amount":' });
    expect([malformed.status, errorCode(malformed)]).toEqual([400, 'VALIDATION_FAILED']);
    const none = await call(h.app, 'POST', '/v1/me/balance/charge', { body: { amount: 5 } });
    expect([none.status, errorCode(none)]).toEqual([401, 'UNAUTHENTICATED']);
    expect(await balanceOf(t)).toBe(10_000_001);
  });

  test('charge with an Idempotency-Key: a retry returns the first answer and moves no money; another body is 422', async () => {
    const userId = newUserId();
    const t = await userToken(h.app, userId);
    const first = await charge(h.app, t, 700, 'topup-1');
    await charge(h.app, t, 5);
    const retry = await charge(h.app, t, 700, 'topup-1');
    expect([retry.status, retry.body]).toEqual([200, { userId, balance: 700 }]);
    expect(retry.body).toEqual(first.body);
    const reused = await charge(h.app, t, 701, 'topup-1');
    expect([reused.status, errorCode(reused)]).toEqual([422, 'IDEMPOTENCY_KEY_REUSED']);
    // Keys are per user: another user's same key is a different request.
    const other = await userToken(h.app, newUserId());
    expect((await charge(h.app, other, 701, 'topup-1')).status).toBe(200);
    // Concurrent retries: one charge.
    const burst = await Promise.all(Array.from({ length: 10 }, () => charge(h.app, t, 50, 'topup-2')));
    expect(new Set(burst.map((r) => `${r.status}:${JSON.stringify(r.body)}`)).size).toBe(1);
    expect(burst[0]!.body.balance).toBe(755);
    expect(await balanceOf(t)).toBe(755);
    expect((await ledgerOf(userId)).length).toBe(3);
    // Keys last a day; then the same key is a new request, and the sweeper drops the old row.
    h.clock.advance(86_400_000 + 1);
    const keyRow = () => db().selectFrom('idempotency_keys').select('created_at')
      .where('user_id', '=', userId).where('key', '=', 'topup-2').executeTakeFirst();
    expect(await keyRow()).toBeDefined();
    expect((await h.svc.ctx.sweeper.sweepOnce(h.clock.now())).idempotencyKeys).toBeGreaterThanOrEqual(2);
    expect(await keyRow()).toBeUndefined();
    const later = await charge(h.app, t, 700, 'topup-1');
    expect(later.body.balance).toBe(1455);
  });

  test('a bad Idempotency-Key is 400 and changes nothing', async () => {
    const t = await userToken(h.app, newUserId());
    for (const key of ['', 'x'.repeat(201), 'tab\there', 'caf\u00e9']) {
      const r = await call(h.app, 'POST', '/v1/me/balance/charge', {
        token: t, raw: JSON.stringify({ amount: 5 }), headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key },
      }).catch(() => null);
      if (!r) continue; // the client itself refused to send this header value
      expect({ key, status: r.status, code: errorCode(r) }).toEqual({ key, status: 400, code: 'VALIDATION_FAILED' });
    }
    expect((await charge(h.app, t, 5, 'x'.repeat(200))).status).toBe(200);
    expect(await balanceOf(t)).toBe(5);
  });

  test('payment: 201, one debit and ledger row, seat sold, reservation paid, queue slot freed and token revoked', async () => {
    const { c, scheduleId, buyer, rid } = await heldSeat(30_000, 100_000);
    const activeBefore = (await queueStats(h.app, c.id)).active;
    const r = await pay(h.app, buyer, rid);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ reservationId: rid, amount: 30_000, status: 'paid', balance: 70_000, seatNumber: 1, scheduleId });
    expect(r.body.paymentId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await paymentsOf(rid)).map((p) => [p.id, p.amount, p.user_id])).toEqual([[r.body.paymentId, 30_000, buyer.userId]]);
    expect((await ledgerOf(buyer.userId)).map((l) => l.amount)).toEqual([100_000, -30_000]);
    const seat = await db().selectFrom('seats').selectAll().where('schedule_id', '=', scheduleId).where('seat_number', '=', 1).executeTakeFirst();
    expect([seat?.status, seat?.hold_reservation_id]).toEqual(['sold', null]);
    expect((await db().selectFrom('reservations').select('status').where('id', '=', rid).executeTakeFirst())?.status).toBe('paid');
    expect((await queueStats(h.app, c.id)).active).toBe(activeBefore - 1);
    const me = await call(h.app, 'GET', '/v1/queue/me', { token: buyer.token });
    expect([me.status, errorCode(me)]).toEqual([401, 'UNAUTHENTICATED']);
    const token = await db().selectFrom('tokens').select('revoked_at').where('jti', '=', JSON.parse(Buffer.from(buyer.token.split('.')[1]!, 'base64url').toString()).jti).executeTakeFirst();
    expect(token?.revoked_at).not.toBeNull();
    if (h.mode === 'redis') {
      expect(await h.svc.redis.sismember(keys.sold(c.id, scheduleId), 1)).toBe(1);
      expect(await h.svc.redis.exists(keys.hold(c.id, scheduleId, 1))).toBe(0);
      expect(await h.svc.redis.hget(keys.reservation(c.id, rid), 'st')).toBe('paid');
    }
    const fresh = await userToken(h.app, buyer.userId);
    expect((await call(h.app, 'GET', `/v1/reservations/${rid}`, { token: fresh })).body.status).toBe('paid');
    await expectLedgerMatchesBalances(h.svc);
  });

  test('payment errors: 402 keeps the hold; 403 NOT_ADMITTED, 403 FORBIDDEN, 404, 409 HOLD_EXPIRED, 409 ALREADY_PAID, 400, 401', async () => {
    const { c, scheduleId, buyer, rid } = await heldSeat(30_000, 0);
    const poor = await pay(h.app, buyer, rid);
    expect([poor.status, errorCode(poor)]).toEqual([402, 'INSUFFICIENT_BALANCE']);
    expect((await call(h.app, 'GET', `/v1/reservations/${rid}`, { token: buyer.token })).body.status).toBe('held');
    expect((await ledgerOf(buyer.userId)).length).toBe(0);

    const asUser = await call(h.app, 'POST', '/v1/payments', { token: await userToken(h.app, buyer.userId), body: { reservationId: rid } });
    expect([asUser.status, errorCode(asUser)]).toEqual([403, 'NOT_ADMITTED']);
    const otherConcert = await createConcert(h.app);
    const [stranger] = await admit(h, otherConcert.id, 1);
    const wrongConcert = await pay(h.app, stranger!, rid);
    expect([wrongConcert.status, errorCode(wrongConcert)]).toEqual([403, 'NOT_ADMITTED']);
    const [rival] = await admit(h, c.id, 1);
    await fund(h.app, rival!, 100_000);
    const foreign = await pay(h.app, rival!, rid);
    expect([foreign.status, errorCode(foreign)]).toEqual([403, 'FORBIDDEN']);
    const unknown = await pay(h.app, buyer, `${c.id}-${randomUUID()}`);
    expect([unknown.status, errorCode(unknown)]).toEqual([404, 'NOT_FOUND']);
    for (const body of [{}, { reservationId: 'x' }, { reservationId: 5 }, { reservationId: rid, extra: 1 }]) {
      const bad = await call(h.app, 'POST', '/v1/payments', { token: buyer.token, body });
      expect({ body, status: bad.status, code: errorCode(bad) }).toEqual({ body, status: 400, code: 'VALIDATION_FAILED' });
    }
    const badKey = await pay(h.app, buyer, rid, 'k'.repeat(201));
    expect([badKey.status, errorCode(badKey)]).toEqual([400, 'VALIDATION_FAILED']);
    const none = await call(h.app, 'POST', '/v1/payments', { body: { reservationId: rid } });
    expect([none.status, errorCode(none)]).toEqual([401, 'UNAUTHENTICATED']);

    // Released, then expired holds cannot be paid.
    await fund(h.app, buyer, 100_000);
    expect((await call(h.app, 'DELETE', `/v1/reservations/${rid}`, { token: buyer.token })).status).toBe(204);
    const released = await pay(h.app, buyer, rid);
    expect([released.status, errorCode(released)]).toEqual([409, 'HOLD_EXPIRED']);
    const rid2 = (await hold(h.app, buyer, scheduleId, 2)).body.reservationId;
    h.clock.advance(HOLD_TTL_MS);
    const expired = await pay(h.app, buyer, rid2);
    expect([expired.status, errorCode(expired)]).toEqual([409, 'HOLD_EXPIRED']);

    // Paid, then paid again with a new place: 409 ALREADY_PAID.
    const rid3 = (await hold(h.app, buyer, scheduleId, 3)).body.reservationId;
    expect((await pay(h.app, buyer, rid3)).status).toBe(201);
    const again = await readmit(h, c.id, buyer);
    const twice = await pay(h.app, again, rid3);
    expect([twice.status, errorCode(twice)]).toEqual([409, 'ALREADY_PAID']);
    expect(await balanceOf(again.token)).toBe(70_000);
    expect((await paymentsOf(rid3)).length).toBe(1);
    await expectLedgerMatchesBalances(h.svc);
  });

  test('payment with an Idempotency-Key: a retry after success returns the first answer, even with the spent token; another body 422', async () => {
    const { c, scheduleId, buyer, rid } = await heldSeat(10_000, 50_000);
    const first = await pay(h.app, buyer, rid, 'pay-1');
    expect(first.status).toBe(201);
    const retry = await pay(h.app, buyer, rid, 'pay-1');
    expect([retry.status, retry.body]).toEqual([201, first.body]);
    const again = await readmit(h, c.id, buyer);
    const rid2 = (await hold(h.app, again, scheduleId, 2)).body.reservationId;
    const reused = await pay(h.app, again, rid2, 'pay-1');
    expect([reused.status, errorCode(reused)]).toEqual([422, 'IDEMPOTENCY_KEY_REUSED']);
    // A refused payment stores nothing: its retry is judged afresh.
    const rid3 = (await hold(h.app, again, scheduleId, 3)).body.reservationId;
    const [rival] = await admit(h, c.id, 1);
    const foreign = await pay(h.app, rival!, rid3, 'pay-2');
    expect(foreign.status).toBe(403);
    expect((await pay(h.app, again, rid3, 'pay-2')).status).toBe(201);
    expect(await balanceOf(rival!.token)).toBe(0);
    expect(await balanceOf((await readmit(h, c.id, again)).token)).toBe(30_000);
    await expectLedgerMatchesBalances(h.svc);
  });

  for (const withKey of [false, true]) {
    test(`10 parallel payments of one hold ${withKey ? 'with the same Idempotency-Key' : 'without a key'}: one payment, one debit`, async () => {
      const { buyer, rid } = await heldSeat(25_000, 100_000);
      const replies = await Promise.all(Array.from({ length: 10 }, () => pay(h.app, buyer, rid, withKey ? 'same-key' : undefined)));
      const ok = replies.filter((r) => r.status === 201);
      if (withKey) {
        expect(ok.length).toBe(10);
        expect(new Set(ok.map((r) => r.body.paymentId)).size).toBe(1);
      } else {
        expect(ok.length).toBe(1);
        // The others lose the race on the reservation, or arrive after the sale spent the token.
        for (const r of replies.filter((x) => x.status !== 201)) {
          expect(['409 ALREADY_PAID', '401 UNAUTHENTICATED']).toContain(`${r.status} ${errorCode(r)}`);
        }
      }
      expect((await paymentsOf(rid)).length).toBe(1);
      expect((await ledgerOf(buyer.userId)).map((l) => l.amount)).toEqual([100_000, -25_000]);
      expect((await db().selectFrom('users').select('balance').where('id', '=', buyer.userId).executeTakeFirst())?.balance).toBe(75_000);
    });
  }

  test('a sold marker and hold removed by hand never lead to a double sale: the second payment is 409 and the money stays', async () => {
    const { c, scheduleId, buyer, rid } = await heldSeat(40_000, 40_000);
    expect((await pay(h.app, buyer, rid)).status).toBe(201);
    // Lose the sale in the fast store: the seat looks free again.
    if (h.mode === 'redis') {
      await h.svc.redis.srem(keys.sold(c.id, scheduleId), 1);
      await h.svc.redis.del(keys.hold(c.id, scheduleId, 1));
      await h.svc.redis.zrem(keys.holds(c.id, scheduleId), 1);
    } else {
      await db().updateTable('seats').set({ status: 'available' }).where('schedule_id', '=', scheduleId).where('seat_number', '=', 1).execute();
    }
    const [second] = await admit(h, c.id, 1);
    await fund(h.app, second!, 100_000);
    const r = await hold(h.app, second!, scheduleId, 1);
    if (h.mode === 'redis') {
      // Redis was fooled, but holds are written through and SQL knows the seat is sold.
      expect([r.status, errorCode(r)]).toEqual([409, 'SEAT_UNAVAILABLE']);
      expect(await h.svc.redis.exists(keys.hold(c.id, scheduleId, 1))).toBe(0);
    } else {
      expect(r.status).toBe(201); // the gate was fooled
      const sale = await pay(h.app, second!, r.body.reservationId);
      expect([sale.status, errorCode(sale)]).toEqual([409, 'SEAT_UNAVAILABLE']);
    }
    expect(await balanceOf(second!.token)).toBe(100_000);
    expect((await ledgerOf(second!.userId)).length).toBe(1);
    expect((await db().selectFrom('payments').select('id').where('schedule_id', '=', scheduleId).where('seat_number', '=', 1).execute()).length).toBe(1);
    await expectLedgerMatchesBalances(h.svc);
  });

  test('a hold whose Redis key vanished (a failover lost it) stays its holder\'s: a rival is refused and the holder pays', async () => {
    if (h.mode !== 'redis') return;
    const { c, scheduleId, buyer, rid } = await heldSeat(5_000, 5_000);
    await h.svc.redis.del(keys.hold(c.id, scheduleId, 1));
    await h.svc.redis.zrem(keys.holds(c.id, scheduleId), 1);
    const [rival]: Buyer[] = await admit(h, c.id, 1);
    await fund(h.app, rival!, 5_000);
    const taken = await hold(h.app, rival!, scheduleId, 1);
    expect([taken.status, errorCode(taken)]).toEqual([409, 'SEAT_UNAVAILABLE']);
    const read = await call(h.app, 'GET', `/v1/reservations/${rid}`, { token: buyer.token });
    expect(read.body.status).toBe('held');
    const mine = await pay(h.app, buyer, rid);
    expect(mine.status).toBe(201);
    expect(await balanceOf(rival!.token)).toBe(5_000);
  });
});
