/**
 * POST /v1/payments {"reservationIds": [...]}: all or nothing in one transaction, and the queue
 * place that ends only with the buyer's last live hold. Redis mode and SQL mode, on SQLite and
 * PostgreSQL.
 */
import { expect, test } from 'bun:test';
import { keys } from '../src/redis/keys.ts';
import { describeEach, queueStats } from './helpers/harness.ts';
import { call, createConcert, userToken } from './helpers/http.ts';
import { admit, errorCode, expectLedgerMatchesBalances, fund, hold, HOLD_TTL_MS, pay, SALES_ENV, type Buyer } from './helpers/sales.ts';

describeEach('payments of several holds', { env: SALES_ENV }, (h) => {
  const db = () => h.svc.database.db;
  const payMany = (b: Buyer, reservationIds: string[], key?: string) =>
    call(h.app, 'POST', '/v1/payments', { token: b.token, body: { reservationIds }, headers: key ? { 'Idempotency-Key': key } : {} });
  const balanceOf = async (token: string) => (await call(h.app, 'GET', '/v1/me/balance', { token })).body.balance as number;
  /** Read with a fresh user token: the buyer's queue token may have ended with the payment. */
  const statusOf = async (b: Buyer, id: string) =>
    (await call(h.app, 'GET', `/v1/reservations/${id}`, { token: await userToken(h.app, b.userId) })).body.status;
  const ledgerOf = (userId: number) => db().selectFrom('ledger').select('amount').where('user_id', '=', userId).orderBy('id').execute();
  const paymentsOf = (userId: number) => db().selectFrom('payments').select(['id', 'reservation_id', 'amount']).where('user_id', '=', userId).execute();
  const placeLive = async (b: Buyer) => (await call(h.app, 'GET', '/v1/queue/me', { token: b.token })).status === 200;

  /** A buyer with `money` and live holds of seats 1..n of a fresh concert (prices 1000, 2000, ...). */
  async function holdsOf(n: number, money: number) {
    const c = await createConcert(h.app, [{ seats: 6, price: 1000 }, { seats: 6, price: 2000 }]);
    const [buyer] = await admit(h, c.id, 1);
    if (money) await fund(h.app, buyer!, money);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await hold(h.app, buyer!, c.schedules[i % 2]!.id, i + 1);
      expect(r.status).toBe(201);
      ids.push(r.body.reservationId);
    }
    return { c, buyer: buyer!, ids };
  }

  test('three holds paid at once: 201 with the total charged once, every seat sold, the place ended', async () => {
    const { c, buyer, ids } = await holdsOf(3, 10_000);
    const activeBefore = (await queueStats(h.app, c.id)).active;
    const r = await payMany(buyer, [ids[2]!, ids[0]!, ids[1]!]);
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      reservationId: ids[2], reservationIds: [ids[2], ids[0], ids[1]], amount: 4_000, status: 'paid', balance: 6_000,
    });
    expect(r.body.paymentId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await ledgerOf(buyer.userId)).map((l) => l.amount)).toEqual([10_000, -4_000]);
    expect((await paymentsOf(buyer.userId)).map((p) => p.reservation_id).sort()).toEqual([...ids].sort());
    for (const id of ids) expect(await statusOf(buyer, id)).toBe('paid');
    const seats = await db().selectFrom('seats').select('status').where('concert_id', '=', c.id).where('status', '=', 'sold').execute();
    expect(seats.length).toBe(3);
    expect((await queueStats(h.app, c.id)).active).toBe(activeBefore - 1);
    expect(await placeLive(buyer)).toBe(false);
    if (h.mode === 'redis') {
      expect((await h.svc.redis.smembers(keys.userPaid(c.id, buyer.userId))).sort()).toEqual([...ids].sort());
      expect(await h.svc.redis.sismember(keys.sold(c.id, c.schedules[0]!.id), 3)).toBe(1);
    }
    await expectLedgerMatchesBalances(h.svc);
  });

  test('hold 2, pay 1: the token stays for the other; paying it with the same token ends the place', async () => {
    const { c, buyer, ids } = await holdsOf(2, 10_000);
    const activeBefore = (await queueStats(h.app, c.id)).active;
    expect((await pay(h.app, buyer, ids[0]!)).status).toBe(201);
    expect(await placeLive(buyer)).toBe(true);
    expect((await queueStats(h.app, c.id)).active).toBe(activeBefore);
    const second = await pay(h.app, buyer, ids[1]!);
    expect([second.status, second.body.reservationIds]).toEqual([201, [ids[1]]]);
    expect((await queueStats(h.app, c.id)).active).toBe(activeBefore - 1);
    expect(await placeLive(buyer)).toBe(false);
    const after = await hold(h.app, buyer, c.schedules[0]!.id, 5);
    expect([after.status, errorCode(after)]).toEqual([401, 'UNAUTHENTICATED']);
  });

  test('a hold that lapsed or was released leaves the place to end with the last live one', async () => {
    const { c, buyer, ids } = await holdsOf(3, 10_000);
    expect((await call(h.app, 'DELETE', `/v1/reservations/${ids[1]}`, { token: buyer.token })).status).toBe(204);
    expect((await pay(h.app, buyer, ids[0]!)).status).toBe(201);
    expect(await placeLive(buyer)).toBe(true);
    h.clock.advance(HOLD_TTL_MS);
    // The last live hold lapsed: nothing is left to pay, and the place lives until its own end.
    const late = await pay(h.app, buyer, ids[2]!);
    expect([late.status, errorCode(late)]).toEqual([409, 'HOLD_EXPIRED']);
    expect((await queueStats(h.app, c.id)).active).toBeGreaterThanOrEqual(1);
  });

  test('all or nothing: expired, someone else\'s, already paid, or too little money for the total changes nothing', async () => {
    const { c, buyer, ids } = await holdsOf(3, 3_500);
    const [rival] = await admit(h, c.id, 1);
    const foreignId = (await hold(h.app, rival!, c.schedules[0]!.id, 6)).body.reservationId as string;
    const unchanged = async () => {
      expect(await balanceOf(buyer.token)).toBe(3_500);
      expect((await ledgerOf(buyer.userId)).length).toBe(1);
      expect(await paymentsOf(buyer.userId)).toEqual([]);
      for (const id of ids) expect(await statusOf(buyer, id)).toBe('held');
      expect(await placeLive(buyer)).toBe(true);
    };
    const poor = await payMany(buyer, ids); // 4,000 due, 3,500 there; each alone would fit
    expect([poor.status, errorCode(poor)]).toEqual([402, 'INSUFFICIENT_BALANCE']);
    await unchanged();
    const foreign = await payMany(buyer, [ids[0]!, foreignId]);
    expect([foreign.status, errorCode(foreign)]).toEqual([403, 'FORBIDDEN']);
    await unchanged();
    expect(await statusOf(rival!, foreignId)).toBe('held');
    // Seat 2 (2,000) paid alone; then a list with it in is ALREADY_PAID and pays nothing else.
    expect((await pay(h.app, buyer, ids[1]!)).status).toBe(201);
    const twice = await payMany(buyer, [ids[0]!, ids[1]!]);
    expect([twice.status, errorCode(twice)]).toEqual([409, 'ALREADY_PAID']);
    expect(await balanceOf(buyer.token)).toBe(1_500);
    expect(await statusOf(buyer, ids[0]!)).toBe('held');
    // One has lapsed (taken earlier than the fresh one): the list is HOLD_EXPIRED and the live one stays held.
    const fresh = (await hold(h.app, buyer, c.schedules[0]!.id, 5)).body.reservationId as string;
    h.clock.advance(HOLD_TTL_MS - 1);
    const expired = await payMany(buyer, [fresh, ids[0]!]);
    expect([expired.status, errorCode(expired)]).toEqual([409, 'HOLD_EXPIRED']);
    expect(await statusOf(buyer, fresh)).toBe('held');
    expect(await balanceOf(buyer.token)).toBe(1_500);
    expect((await payMany(buyer, [fresh])).status).toBe(201);
    expect(await balanceOf(await userToken(h.app, buyer.userId))).toBe(500);
    await expectLedgerMatchesBalances(h.svc);
  });

  test('bad lists are 400 (empty, repeated, too long, mixed forms, mixed concerts); another concert\'s is 403', async () => {
    const { c, buyer, ids } = await holdsOf(2, 10_000);
    const other = await holdsOf(1, 0);
    const max = h.svc.config.maxHoldsPerUser;
    const tooMany = Array.from({ length: max + 1 }, (_, i) => `${c.id}-00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    for (const body of [
      { reservationIds: [] }, { reservationIds: [ids[0], ids[0]] }, { reservationIds: tooMany }, { reservationIds: ids[0] },
      { reservationIds: [ids[0], 'x'] }, { reservationIds: ids, reservationId: ids[0] }, { reservationIds: [ids[0], other.ids[0]] },
    ]) {
      const r = await call(h.app, 'POST', '/v1/payments', { token: buyer.token, body });
      expect({ body, status: r.status, code: errorCode(r) }).toEqual({ body, status: 400, code: 'VALIDATION_FAILED' });
      expect(r.body.error.details.length).toBeGreaterThan(0);
    }
    const dup = await payMany(buyer, [ids[0]!, ids[0]!]);
    expect(dup.body.error.details).toEqual([{ field: 'reservationIds', problem: 'must not list a reservation id twice' }]);
    const both = await call(h.app, 'POST', '/v1/payments', { token: buyer.token, body: { reservationIds: ids, reservationId: ids[0] } });
    expect(both.body.error.details[0].problem).toContain('not both');
    const wrong = await payMany(buyer, other.ids);
    expect([wrong.status, errorCode(wrong)]).toEqual([403, 'NOT_ADMITTED']);
    expect(await paymentsOf(buyer.userId)).toEqual([]);
    expect(await balanceOf(buyer.token)).toBe(10_000);
  });

  test('Idempotency-Key: a retry of a list payment gets the first answer; another list with the key is 422', async () => {
    const { buyer, ids } = await holdsOf(3, 10_000);
    const first = await payMany(buyer, ids.slice(0, 2), 'multi-1');
    expect(first.status).toBe(201);
    expect(await placeLive(buyer)).toBe(true);
    const retry = await payMany(buyer, ids.slice(0, 2), 'multi-1');
    expect([retry.status, retry.body]).toEqual([201, first.body]);
    const reused = await payMany(buyer, [ids[2]!], 'multi-1');
    expect([reused.status, errorCode(reused)]).toEqual([422, 'IDEMPOTENCY_KEY_REUSED']);
    // The single form is another body for the same key.
    const single = await pay(h.app, buyer, ids[0]!, 'multi-1');
    expect([single.status, errorCode(single)]).toEqual([422, 'IDEMPOTENCY_KEY_REUSED']);
    const burst = await Promise.all(Array.from({ length: 5 }, () => payMany(buyer, [ids[2]!], 'multi-2')));
    expect(new Set(burst.map((r) => `${r.status} ${JSON.stringify(r.body)}`)).size).toBe(1);
    expect(burst[0]!.status).toBe(201);
    expect((await ledgerOf(buyer.userId)).map((l) => l.amount)).toEqual([10_000, -3_000, -1_000]);
    expect(await placeLive(buyer)).toBe(false);
  });

  test('race: two lists sharing a reservation, fired together: exactly one is paid, the other 409 ALREADY_PAID', async () => {
    const { buyer, ids } = await holdsOf(3, 10_000);
    const [x, y] = await Promise.all([payMany(buyer, [ids[0]!, ids[1]!]), payMany(buyer, [ids[1]!, ids[2]!])]);
    const outcomes = [x, y].map((r) => (r.status === 201 ? '201' : `${r.status} ${errorCode(r)}`)).sort();
    expect(outcomes).toEqual(['201', '409 ALREADY_PAID']);
    const won = x.status === 201 ? x : y;
    expect((await paymentsOf(buyer.userId)).length).toBe(2);
    expect((await ledgerOf(buyer.userId)).map((l) => l.amount)).toEqual([10_000, -won.body.amount]);
    // The reservation outside the winning list is still held, and the token still pays it.
    const left = ids.find((id) => !won.body.reservationIds.includes(id))!;
    expect(await statusOf(buyer, left)).toBe('held');
    expect((await pay(h.app, buyer, left)).status).toBe(201);
    await expectLedgerMatchesBalances(h.svc);
  });
});
