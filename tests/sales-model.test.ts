/**
 * Model-based test: random sequences of hold, release, pay (one or two reservations, with and
 * without a retried Idempotency-Key), charge, read and passing time against a plain in-memory model of seats,
 * reservations and balances. Every answer (status and code) and every balance must match.
 * Redis mode and SQL mode, on SQLite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { enterMode, MODES, newUserId, type Harness, type TestClock } from './helpers/harness.ts';
import { call, createConcert, type Reply } from './helpers/http.ts';
import { admit, charge, errorCode, expectLedgerMatchesBalances, hold, pay, readmit, SALES_ENV, type Buyer } from './helpers/sales.ts';
import { startService } from './helpers/service.ts';
import { SQL_TARGETS } from './helpers/sql.ts';
import { fcRun } from './helpers/random.ts';

const USERS = 3;
const SEATS = 4;
const PRICE = 10_000;
const MAX_HOLDS = 2;
const MAX_TICKETS = 3;
const TTL_MS = 60_000;
const NUM_RUNS = Number(process.env.SALES_MODEL_RUNS ?? 15);

interface Res { rid: string; user: number; seat: number; status: 'held' | 'released' | 'paid'; expiresAt: number }
interface Model { res: Res[]; balance: number[]; now: () => number }
interface Real { h: Harness; concertId: number; scheduleId: number; buyers: Buyer[] }

const outcome = (r: Reply) => (r.status < 300 ? String(r.status) : `${r.status} ${errorCode(r)}`);
/** Reservation k among the user's own (or among everyone's, to try someone else's). */
function target(m: Model, u: number, k: number, anyone: boolean): Res {
  const own = m.res.filter((r) => r.user === u);
  const pool = anyone || own.length === 0 ? m.res : own;
  return pool[k % pool.length]!;
}
const live = (m: Model, r: Res) => r.status === 'held' && r.expiresAt > m.now();
const shown = (m: Model, r: Res) => (r.status === 'held' && !live(m, r) ? 'expired' : r.status);

async function expectBalance(m: Model, real: Real, u: number) {
  const r = await call(real.h.app, 'GET', '/v1/me/balance', { token: real.buyers[u]!.token });
  expect(r.body.balance).toBe(m.balance[u]!);
}

class Hold implements fc.AsyncCommand<Model, Real> {
  constructor(readonly u: number, readonly seat: number) {}
  check = () => true;
  async run(m: Model, real: Real) {
    const own = m.res.find((r) => r.seat === this.seat && r.user === this.u && live(m, r));
    const taken = m.res.some((r) => r.seat === this.seat && (r.status === 'paid' || live(m, r)));
    const mine = m.res.filter((r) => r.user === this.u && live(m, r)).length;
    const paid = m.res.filter((r) => r.user === this.u && r.status === 'paid').length;
    const expected = own ? '200' : taken ? '409 SEAT_UNAVAILABLE' : mine >= MAX_HOLDS ? '409 HOLD_LIMIT_REACHED'
      : mine + paid >= MAX_TICKETS ? '409 TICKET_LIMIT_REACHED' : '201';
    const r = await hold(real.h.app, real.buyers[this.u]!, real.scheduleId, this.seat);
    expect(outcome(r)).toBe(expected);
    if (own) expect([r.body.reservationId, Date.parse(r.body.expiresAt)]).toEqual([own.rid, own.expiresAt]);
    if (r.status === 201) {
      expect(Date.parse(r.body.expiresAt)).toBe(m.now() + TTL_MS);
      m.res.push({ rid: r.body.reservationId, user: this.u, seat: this.seat, status: 'held', expiresAt: m.now() + TTL_MS });
    }
  }
  toString = () => `hold(u${this.u}, seat ${this.seat})`;
}

/** What releasing or paying reservation k answers before any money question. */
function refusal(m: Model, r: Res, u: number, action: 'release' | 'pay'): string | null {
  if (r.user !== u) return '403 FORBIDDEN';
  if (r.status === 'paid') return '409 ALREADY_PAID';
  if (!live(m, r)) return '409 HOLD_EXPIRED';
  return action === 'pay' && m.balance[u]! < PRICE ? '402 INSUFFICIENT_BALANCE' : null;
}

class Release implements fc.AsyncCommand<Model, Real> {
  constructor(readonly u: number, readonly k: number, readonly anyone: boolean) {}
  check = (m: Readonly<Model>) => m.res.length > 0;
  async run(m: Model, real: Real) {
    const res = target(m, this.u, this.k, this.anyone);
    const r = await call(real.h.app, 'DELETE', `/v1/reservations/${res.rid}`, { token: real.buyers[this.u]!.token });
    expect(outcome(r)).toBe(refusal(m, res, this.u, 'release') ?? '204');
    if (r.status === 204) res.status = 'released';
  }
  toString = () => `release(u${this.u}, ${this.anyone ? 'any' : 'own'} #${this.k})`;
}

let keySeq = 0;
class Pay implements fc.AsyncCommand<Model, Real> {
  constructor(readonly u: number, readonly k: number, readonly anyone: boolean, readonly withKey: boolean) {}
  check = (m: Readonly<Model>) => m.res.length > 0;
  async run(m: Model, real: Real) {
    const res = target(m, this.u, this.k, this.anyone);
    const expected = refusal(m, res, this.u, 'pay') ?? '201';
    const key = this.withKey ? `model-${++keySeq}` : undefined;
    const buyer = real.buyers[this.u]!;
    const r = await pay(real.h.app, buyer, res.rid, key);
    expect(outcome(r)).toBe(expected);
    if (key) {
      // A retry with the same key gets the same answer, and nothing happens twice.
      const again = await pay(real.h.app, buyer, res.rid, key);
      expect([again.status, again.body]).toEqual([r.status, r.body]);
    }
    if (r.status === 201) {
      expect(r.body).toMatchObject({ reservationId: res.rid, reservationIds: [res.rid], amount: PRICE, status: 'paid' });
      res.status = 'paid';
      m.balance[this.u]! -= PRICE;
      await afterSale(m, real, this.u);
    }
    await expectBalance(m, real, this.u);
  }
  toString = () => `pay(u${this.u}, ${this.anyone ? 'any' : 'own'} #${this.k}${this.withKey ? ', keyed' : ''})`;
}

/** The queue token ends with the buyer's last live hold: then come back through the line. */
async function afterSale(m: Model, real: Real, u: number) {
  const me = await call(real.h.app, 'GET', '/v1/queue/me', { token: real.buyers[u]!.token });
  const holdsLeft = m.res.some((r) => r.user === u && live(m, r));
  expect(me.status).toBe(holdsLeft ? 200 : 401);
  if (!holdsLeft) real.buyers[u] = await readmit(real.h, real.concertId, real.buyers[u]!);
}

class PayTwo implements fc.AsyncCommand<Model, Real> {
  constructor(readonly u: number, readonly k1: number, readonly k2: number, readonly anyone: boolean) {}
  check = (m: Readonly<Model>) => m.res.length > 1
    && target(m as Model, this.u, this.k1, this.anyone) !== target(m as Model, this.u, this.k2, this.anyone);
  async run(m: Model, real: Real) {
    const list = [target(m, this.u, this.k1, this.anyone), target(m, this.u, this.k2, this.anyone)];
    const refused = list.map((r) => refusal(m, r, this.u, 'release')).find((x) => x !== null);
    const expected = refused ?? (m.balance[this.u]! < 2 * PRICE ? '402 INSUFFICIENT_BALANCE' : '201');
    const r = await call(real.h.app, 'POST', '/v1/payments', { token: real.buyers[this.u]!.token, body: { reservationIds: list.map((x) => x.rid) } });
    expect(outcome(r)).toBe(expected);
    if (r.status === 201) {
      expect(r.body).toMatchObject({ reservationId: list[0]!.rid, reservationIds: list.map((x) => x.rid), amount: 2 * PRICE });
      for (const x of list) x.status = 'paid';
      m.balance[this.u]! -= 2 * PRICE;
      await afterSale(m, real, this.u);
    }
    await expectBalance(m, real, this.u);
  }
  toString = () => `payTwo(u${this.u}, ${this.anyone ? 'any' : 'own'} #${this.k1} #${this.k2})`;
}

class Charge implements fc.AsyncCommand<Model, Real> {
  constructor(readonly u: number, readonly amount: number) {}
  check = () => true;
  async run(m: Model, real: Real) {
    const r = await charge(real.h.app, real.buyers[this.u]!.token, this.amount);
    m.balance[this.u]! += this.amount;
    expect([r.status, r.body.balance]).toEqual([200, m.balance[this.u]!]);
  }
  toString = () => `charge(u${this.u}, ${this.amount})`;
}

class Read implements fc.AsyncCommand<Model, Real> {
  constructor(readonly u: number, readonly k: number, readonly anyone: boolean) {}
  check = (m: Readonly<Model>) => m.res.length > 0;
  async run(m: Model, real: Real) {
    const res = target(m, this.u, this.k, this.anyone);
    const r = await call(real.h.app, 'GET', `/v1/reservations/${res.rid}`, { token: real.buyers[this.u]!.token });
    if (res.user !== this.u) expect(outcome(r)).toBe('403 FORBIDDEN');
    else expect([r.status, r.body.status, r.body.seatNumber]).toEqual([200, shown(m, res), res.seat]);
  }
  toString = () => `read(u${this.u}, ${this.anyone ? 'any' : 'own'} #${this.k})`;
}

class SeatMap implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(m: Model, real: Real) {
    const r = await call(real.h.app, 'GET', `/v1/concerts/${real.concertId}/schedules/${real.scheduleId}/seats`,
      { token: real.buyers[0]!.token });
    const expected = Array.from({ length: SEATS }, (_, i) => {
      const on = m.res.filter((x) => x.seat === i + 1);
      return on.some((x) => x.status === 'paid') ? 'sold' : on.some((x) => live(m, x)) ? 'held' : 'available';
    });
    expect(r.body.seats.map((s: { status: string }) => s.status)).toEqual(expected);
  }
  toString = () => 'seatMap';
}

class Expire implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(_m: Model, real: Real) {
    real.h.clock.advance(this.ms);
  }
  toString = () => `wait(${this.ms} ms)`;
}

const user = fc.integer({ min: 0, max: USERS - 1 });
const index = fc.nat({ max: 20 });
const anyone = fc.nat({ max: 3 }).map((x) => x === 0);
const commands = [
  ...Array(3).fill(fc.tuple(user, fc.integer({ min: 1, max: SEATS })).map(([u, s]) => new Hold(u, s))),
  fc.tuple(user, index, anyone).map(([u, k, a]) => new Release(u, k, a)),
  ...Array(2).fill(fc.tuple(user, index, anyone, fc.boolean()).map(([u, k, a, key]) => new Pay(u, k, a, key))),
  fc.tuple(user, index, index, anyone).map(([u, k1, k2, a]) => new PayTwo(u, k1, k2, a)),
  ...Array(2).fill(fc.tuple(user, fc.constantFrom(5_000, 10_000, 25_000)).map(([u, a]) => new Charge(u, a))),
  fc.tuple(user, index, anyone).map(([u, k, a]) => new Read(u, k, a)),
  fc.constant(new SeatMap()),
  // Past the hold time, or just short of it.
  fc.constantFrom(TTL_MS, TTL_MS / 2).map((ms) => new Expire(ms)),
] as fc.Arbitrary<fc.AsyncCommand<Model, Real>>[];

/** A clock that moves only when the test moves it, an hour ahead of Redis's own clock. */
function frozenClock(): TestClock {
  let t = Date.now() + 3_600_000;
  return { now: () => t, advance: (ms: number) => { t += ms; } } as unknown as TestClock;
}

for (const sql of SQL_TARGETS) {
  for (const mode of MODES) {
    describe(`sales model [${sql}, ${mode} mode]`, () => {
      const h = { sql, mode, clock: frozenClock() } as Harness;
      h.tick = async () => {
        h.clock.advance(h.svc.config.admissionTickMs);
        await h.svc.ctx.ticker.tickOnce(h.clock.now());
      };
      beforeAll(async () => {
        h.svc = await startService({ sql, clock: h.clock.now, env: { ...SALES_ENV, MAX_HOLDS_PER_USER: String(MAX_HOLDS), MAX_TICKETS_PER_USER: String(MAX_TICKETS) } });
        h.app = h.svc.app;
        await enterMode(h.svc, mode);
      });
      afterAll(async () => { await h.svc?.stop(); });

      test('answers and balances match the model', async () => {
        await fc.assert(fc.asyncProperty(fc.commands(commands, { maxCommands: 25, size: 'max' }), async (cmds) => {
          const c = await createConcert(h.app, [{ seats: SEATS, price: PRICE }]);
          h.clock.advance(1001);
          const buyers = await admit(h, c.id, USERS, Array.from({ length: USERS }, () => newUserId()));
          const model: Model = { res: [], balance: Array(USERS).fill(0), now: h.clock.now };
          await fc.asyncModelRun(() => ({ model, real: { h, concertId: c.id, scheduleId: c.schedules[0]!.id, buyers } }), cmds);
        }), fcRun(`sales model [${sql}, ${mode}]`, NUM_RUNS));
        await expectLedgerMatchesBalances(h.svc);
      }, 180_000);
    });
  }
}
