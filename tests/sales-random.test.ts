/**
 * 200 users, 50 seats, a few seconds of random holds, releases, charges, payments (with and
 * without retried Idempotency-Keys) and passing time, many at once. Afterwards: every seat sold
 * at most once, every balance equal to its ledger and never negative, and Redis and SQL agree
 * on every seat. Redis mode and SQL mode, on SQLite and PostgreSQL.
 */
import { expect, test } from 'bun:test';
import { mulberry32 } from './helpers/random.ts';
import { describeEach, newConcert } from './helpers/harness.ts';
import { call, type Reply } from './helpers/http.ts';
import {
  admit, admitMany, charge, errorCode, expectLedgerMatchesBalances, hold, inPool, pay, readmit, redisSeatStates, SALES_ENV,
  sqlSeatStates, type Buyer,
} from './helpers/sales.ts';

const USERS = 200;
const SEATS_PER_SCHEDULE = 25;
const PRICES = [30_000, 50_000];
const RUN_MS = Number(process.env.SALES_RANDOM_MS ?? 2500);
const WORKERS = 24;

/** What each call may answer; anything else (a 500 above all) fails the run. */
const ALLOWED: Record<string, string[]> = {
  // 200: a seat the user holds already (that hold again); users buy again after each readmission.
  hold: ['201', '200', '409 SEAT_UNAVAILABLE', '409 HOLD_LIMIT_REACHED', '409 TICKET_LIMIT_REACHED'],
  release: ['204', '409 HOLD_EXPIRED', '409 ALREADY_PAID'],
  pay: ['201', '402 INSUFFICIENT_BALANCE', '409 HOLD_EXPIRED', '409 ALREADY_PAID', '409 SEAT_UNAVAILABLE'],
  charge: ['200'],
  get: ['200'],
};
// A token spent by a concurrent payment of the same user.
const SPENT = '401 UNAUTHENTICATED';

describeEach('randomized sales', { env: SALES_ENV }, (h) => {
  test('seats sold at most once, money conserved, Redis and SQL agree', async () => {
    const seed = Number(process.env.SALES_RANDOM_SEED ?? Date.now() % 1_000_000);
    console.log(`randomized sales seed ${seed} [${h.sql}, ${h.mode}] (SALES_RANDOM_SEED replays it)`);
    const rnd = mulberry32(seed);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const c = await newConcert(h, PRICES.map((price) => ({ seats: SEATS_PER_SCHEDULE, price })));
    const schedules = c.schedules.map((s) => s.id);
    const buyers = await admitMany(h, c.id, USERS);
    await inPool(buyers, 16, (b) => charge(h.app, b.token, Math.floor(rnd() * 4) * 40_000));

    const held = new Map<number, string[]>(buyers.map((b) => [b.userId, []]));
    const refreshing = new Map<number, Promise<Buyer>>();
    const seen: Record<string, Record<string, number>> = {};
    const paymentIds = new Set<string>();
    const unexpected: string[] = [];

    const record = (action: string, r: Reply) => {
      const outcome = r.status < 300 ? String(r.status) : `${r.status} ${errorCode(r)}`;
      (seen[action] ??= {})[outcome] = (seen[action]![outcome] ?? 0) + 1;
      if (!ALLOWED[action]!.includes(outcome) && outcome !== SPENT) unexpected.push(`${action}: ${outcome} ${JSON.stringify(r.body)}`);
      return outcome;
    };
    /** A spent token: one new admitted place per user, however many workers noticed. */
    const refresh = async (i: number) => {
      const b = buyers[i]!;
      let p = refreshing.get(b.userId);
      if (!p) {
        p = readmit(h, c.id, b).finally(() => refreshing.delete(b.userId));
        refreshing.set(b.userId, p);
      }
      buyers[i] = await p;
    };

    const step = async () => {
      const i = Math.floor(rnd() * buyers.length);
      const b = buyers[i]!;
      const mine = held.get(b.userId)!;
      const roll = rnd();
      let action: string;
      let r: Reply;
      if (roll < 0.4) {
        action = 'hold';
        r = await hold(h.app, b, pick(schedules), 1 + Math.floor(rnd() * SEATS_PER_SCHEDULE));
        if (r.status === 201) mine.push(r.body.reservationId);
        if (r.status === 200) expect(mine).toContain(r.body.reservationId);
      } else if (roll < 0.7) {
        if (!mine.length) return;
        action = 'pay';
        const rid = pick(mine);
        const key = rnd() < 0.5 ? `k-${rid}` : undefined;
        const tries = key && rnd() < 0.5 ? 2 : 1;
        const replies = await Promise.all(Array.from({ length: tries }, () => pay(h.app, b, rid, key)));
        for (const x of replies.slice(1)) record(action, x);
        r = replies[0]!;
        for (const x of replies) if (x.status === 201) paymentIds.add(x.body.paymentId);
        if (replies.some((x) => x.status === 201)) {
          // Same key, same answer.
          expect(new Set(replies.filter((x) => x.status === 201).map((x) => x.body.paymentId)).size).toBe(1);
        }
      } else if (roll < 0.8) {
        if (!mine.length) return;
        action = 'release';
        r = await call(h.app, 'DELETE', `/v1/reservations/${pick(mine)}`, { token: b.token });
      } else if (roll < 0.9) {
        action = 'charge';
        r = await charge(h.app, b.token, 1 + Math.floor(rnd() * 60_000));
      } else if (roll < 0.97) {
        if (!mine.length) return;
        action = 'get';
        r = await call(h.app, 'GET', `/v1/reservations/${pick(mine)}`, { token: b.token });
      } else {
        // Time passes (holds expire), but not while a buyer waits to be readmitted: a jump past the
        // heartbeat grace between its join and its first poll would end that waiting place, as it
        // ends the place of any fan who stops polling.
        const jump = Math.floor(rnd() * 20_000);
        if (refreshing.size === 0) h.clock.advance(jump);
        return;
      }
      if (record(action, r) === SPENT) await refresh(i);
    };

    const deadline = performance.now() + RUN_MS;
    await Promise.all(Array.from({ length: WORKERS }, async () => {
      while (performance.now() < deadline) await step();
    }));
    console.log(`seed ${seed} [${h.sql}, ${h.mode}]`, JSON.stringify(seen));
    expect(unexpected).toEqual([]);
    expect(seen.pay?.['201'] ?? 0).toBeGreaterThan(0);

    // --- invariants ---
    // The observer is admitted first: admission moves the test clock, and every state below is
    // read at one instant.
    const [observer] = await admit(h, c.id, 1);
    await h.svc.ctx.writeBehind.drainOnce(h.clock.now());
    const db = h.svc.database.db;
    const now = h.clock.now();
    const payments = await db.selectFrom('payments').selectAll().where('concert_id', '=', c.id).execute();
    expect(new Set(payments.map((p) => p.id))).toEqual(paymentIds);
    expect(new Set(payments.map((p) => `${p.schedule_id}:${p.seat_number}`)).size).toBe(payments.length);
    for (const p of payments) expect(p.amount).toBe(PRICES[schedules.indexOf(p.schedule_id)]!);
    const paidReservations = await db.selectFrom('reservations').select('id').where('concert_id', '=', c.id).where('status', '=', 'paid').execute();
    expect(new Set(paidReservations.map((r) => r.id))).toEqual(new Set(payments.map((p) => p.reservation_id)));

    await expectLedgerMatchesBalances(h.svc);
    const mine = buyers.map((b) => b.userId);
    const totals = await db.selectFrom('ledger').select(['kind', (eb) => eb.fn.sum<number>('amount').as('total')])
      .where('user_id', 'in', mine).groupBy('kind').execute();
    const paidTotal = -Number(totals.find((t) => t.kind === 'payment')?.total ?? 0);
    expect(paidTotal).toBe(payments.reduce((a, p) => a + p.amount, 0));

    const listed = (await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules`, { token: observer!.token })).body.schedules;
    for (const s of schedules) {
      const sqlSeats = await sqlSeatStates(h.svc, s, now);
      const soldInSql = sqlSeats.flatMap((x, n) => (x === 'sold' ? [n + 1] : []));
      const paidSeats = payments.filter((p) => p.schedule_id === s).map((p) => p.seat_number).sort((a, b) => a - b);
      expect(soldInSql).toEqual(paidSeats);
      if (h.mode === 'redis') {
        const soldInRedis = (await h.svc.redis.smembers(`{c:${c.id}}:sold:${s}`)).map(Number).sort((a, b) => a - b);
        expect(soldInRedis).toEqual(paidSeats);
        expect(await redisSeatStates(h.svc, c.id, s, SEATS_PER_SCHEDULE, now)).toEqual(sqlSeats);
      }
      // What clients see agrees too: the seat map and the schedule's count of available seats.
      const map = await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules/${s}/seats`, { token: observer!.token });
      expect(map.body.seats.map((x: { status: string }) => x.status)).toEqual(sqlSeats.map((x) => x.replace(/:.*/, '')));
      expect(listed.find((x: { id: number }) => x.id === s).available).toBe(sqlSeats.filter((x) => x === 'available').length);
    }
  }, 90_000);
});
