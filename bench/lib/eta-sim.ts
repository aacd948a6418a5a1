/**
 * A simulated sale that drives the real service in-process (its own redis-server and SQLite, a
 * clock only the simulation moves) to measure how good the wait estimate at join is.
 *
 * Fans arrive at random (a rush at opening, then a steady stream), poll when the answer says,
 * and do what fans do: most wait, get in, think, hold a seat and pay; some leave or stop
 * polling while waiting; some get in and leave, or get in and do nothing until their active
 * time runs out. maxActive is small enough that the active set fills, so admissions wait for
 * slots to turn over most of the sale.
 *
 * Every random choice comes from the seed, and requests go one at a time in simulated-time
 * order, so a seed replays the same sale.
 */
import { mulberry32 } from '../../chaos/prng.ts';
import { keys } from '../../src/redis/keys.ts';
import { call, createConcert } from '../../tests/helpers/http.ts';
import { startService, type TestService } from '../../tests/helpers/service.ts';

export interface SaleScenario {
  /** Arrivals a second during the opening rush, then after it. */
  rushRate: number;
  rushSeconds: number;
  steadyRate: number;
  steadySeconds: number;
  maxActive: number;
  admitPerSecond: number;
  activeTtlSeconds: number;
  graceSeconds: number;
  /** Shares of waiting fans who stop polling / leave before their turn. */
  waitLapse: number;
  waitLeave: number;
  /** Shares of admitted fans who leave / do nothing (the rest pay). */
  activeLeave: number;
  activeLapse: number;
  /** Think time once admitted, seconds (uniform). */
  payThink: [number, number];
  leaveThink: [number, number];
  /** Waiting fans who give up do so this long after joining, seconds (uniform). */
  giveUpAfter: [number, number];
}

export const DEFAULT_SCENARIO: SaleScenario = {
  rushRate: 3, rushSeconds: 60, steadyRate: 0.8, steadySeconds: 420,
  maxActive: 25, admitPerSecond: 5, activeTtlSeconds: 120, graceSeconds: 60,
  waitLapse: 0.1, waitLeave: 0.05, activeLeave: 0.1, activeLapse: 0.15,
  payThink: [15, 90], leaveThink: [5, 40], giveUpAfter: [20, 240],
};

/** Fans whose actual wait is shorter than this are left out of the relative error (it divides by the wait). */
export const MIN_ACTUAL_SECONDS = 5;

/** A sale that has not ended by then is a bug in the simulation (a fan who never finishes). */
const MAX_SIMULATED_MS = 3 * 3600_000;

export interface FanRecord {
  joinedAt: number;
  position: number;
  /** The first estimate, from the join answer. */
  estimate: number;
  /** What the estimator before this change would have said at the same join (see oldEstimate). */
  oldEstimate: number;
  admittedAt: number | null;
  /** Redis mode: the estimate's inputs at the join (meta hash fields), for diagnosis. */
  probe?: Record<string, number>;
}

export interface SaleResult {
  seed: number;
  mode: 'redis' | 'sql';
  fans: FanRecord[];
  simulatedSeconds: number;
  requests: number;
}

export interface ErrorStats { n: number; median: number; p90: number; medianSigned: number }

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/** |estimate − actual| / actual over fans that reached active after at least MIN_ACTUAL_SECONDS. */
export function errorStats(fans: FanRecord[], pick: (f: FanRecord) => number): ErrorStats {
  const rel: number[] = [];
  const signed: number[] = [];
  for (const f of fans) {
    if (f.admittedAt === null) continue;
    const actual = (f.admittedAt - f.joinedAt) / 1000;
    if (actual < MIN_ACTUAL_SECONDS) continue;
    rel.push(Math.abs(pick(f) - actual) / actual);
    signed.push((pick(f) - actual) / actual);
  }
  rel.sort((a, b) => a - b);
  signed.sort((a, b) => a - b);
  return { n: rel.length, median: quantile(rel, 0.5), p90: quantile(rel, 0.9), medianSigned: quantile(signed, 0.5) };
}

/** A min-heap of events by time, then by the order they were scheduled (deterministic ties). */
class Agenda {
  private heap: { at: number; n: number; run: () => Promise<void> }[] = [];
  private n = 0;
  get size() { return this.heap.length; }
  add(at: number, run: () => Promise<void>): void {
    const h = this.heap;
    // Whole milliseconds: the service's clock is an integer (scripts take it as one).
    h.push({ at: Math.round(at), n: this.n++, run });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.less(h[p]!, h[i]!)) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  pop() {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
  private less(a: { at: number; n: number }, b: { at: number; n: number }) {
    return a.at < b.at || (a.at === b.at && a.n < b.n);
  }
}

export async function simulateSale(opts: {
  seed: number; mode?: 'redis' | 'sql'; scenario?: Partial<SaleScenario>; log?: (msg: string) => void;
}): Promise<SaleResult> {
  const sc = { ...DEFAULT_SCENARIO, ...opts.scenario };
  const mode = opts.mode ?? 'redis';
  const rnd = mulberry32(opts.seed);
  const uniform = ([a, b]: [number, number]) => a + (b - a) * rnd();
  const exp = (rate: number) => -Math.log(1 - rnd()) / rate;

  const tickMs = 1000;
  // On the tick grid, so that where arrivals fall between ticks depends on the seed only.
  let now = Math.ceil(Date.now() / tickMs) * tickMs;
  const clock = () => now;
  const svc: TestService = await startService({
    clock,
    env: {
      ADMISSION_TICK_MS: String(tickMs), QUEUE_GRACE_SECONDS: String(sc.graceSeconds), HOLD_TTL_SECONDS: '300',
      QUEUE_TOKEN_TTL_SECONDS: '86400', USER_TOKEN_TTL_SECONDS: '86400',
    },
  });
  let requests = 0;
  const req = (...a: Parameters<typeof call>) => { requests++; return call(...a); };
  try {
    if (mode === 'sql') await svc.ctx.coordinator.enterSql('eta bench');
    // Arrivals first, so the concert has a seat for every fan.
    const arrivals: number[] = [];
    for (let t = exp(sc.rushRate); t < sc.rushSeconds; t += exp(sc.rushRate)) arrivals.push(t);
    for (let t = sc.rushSeconds + exp(sc.steadyRate); t < sc.rushSeconds + sc.steadySeconds; t += exp(sc.steadyRate)) arrivals.push(t);
    const concert = await createConcert(svc.app, [{ seats: arrivals.length + 10, price: 1000 }]);
    const scheduleId = concert.schedules[0]!.id;
    const patched = await req(svc.app, 'PATCH', `/admin/concerts/${concert.id}/queue`, {
      admin: true, body: { maxActive: sc.maxActive, admitPerSecond: sc.admitPerSecond, activeTtlSeconds: sc.activeTtlSeconds },
    });
    if (patched.status !== 200) throw new Error(`patch queue: ${patched.status}`);
    now += 2000; // past the one-second cache of live concerts
    const start = now;
    const agenda = new Agenda();
    const fans: FanRecord[] = [];
    let pending = arrivals.length;

    // Admission ticks on the tick grid, as the ticker runs them, and the write-behind stream kept drained.
    let ticks = 0;
    let logTicks = 0;
    const wallStart = performance.now();
    const tick = async () => {
      await svc.ctx.ticker.tickOnce(now);
      if (opts.log && ++logTicks % 60 === 0) {
        opts.log(`  t=${Math.round((now - start) / 1000)} s: ${pending} fans not done, ${requests} requests, ${((performance.now() - wallStart) / 1000).toFixed(1)} s wall`);
      }
      if (now - start > MAX_SIMULATED_MS) throw new Error(`the sale has not ended after ${MAX_SIMULATED_MS / 1000} simulated seconds (${pending} fans not done)`);
      if (mode === 'redis' && ++ticks % 5 === 0) await svc.ctx.writeBehind.drainOnce(now);
      if (pending > 0) agenda.add(now + tickMs, tick);
    };
    agenda.add(Math.floor(start / tickMs) * tickMs + tickMs, tick);

    const oldEstimate = async (position: number): Promise<number> => {
      // The estimator before this change: position / observed admissions a second (Redis mode's
      // smoothed `rate`; SQL mode never had one), else admitPerSecond.
      const rate = mode === 'redis' ? Number(await svc.redis.hget(keys.queueMeta(concert.id), 'rate') ?? 0) / 1000 : 0;
      return Math.ceil(position / (rate > 0 ? rate : Math.max(sc.admitPerSecond, 1)));
    };

    arrivals.forEach((t, i) => {
      agenda.add(start + Math.round(t * 1000), async () => {
        const userId = 100_000 + i;
        const r = rnd();
        const waitFate = r < sc.waitLapse ? 'lapse' : r < sc.waitLapse + sc.waitLeave ? 'leave' : 'stay';
        const a = rnd();
        const activeFate = a < sc.activeLeave ? 'leave' : a < sc.activeLeave + sc.activeLapse ? 'lapse' : 'pay';
        const giveUpAt = now + Math.round(uniform(sc.giveUpAfter) * 1000);
        const think = (activeFate === 'leave' ? uniform(sc.leaveThink) : uniform(sc.payThink)) * 1000;
        const jitter = () => Math.floor(rnd() * 500);

        const t1 = await req(svc.app, 'POST', '/v1/tokens', { body: { userId } });
        await req(svc.app, 'POST', '/v1/me/balance/charge', { token: t1.body.token, body: { amount: 1000 } });
        const j = await req(svc.app, 'POST', `/v1/concerts/${concert.id}/queue`, { token: t1.body.token });
        if (j.status !== 201) throw new Error(`join: ${j.status} ${JSON.stringify(j.body)}`);
        const token: string = j.body.token;
        const fan: FanRecord = {
          joinedAt: now, position: j.body.position, estimate: j.body.estimatedWaitSeconds,
          oldEstimate: await oldEstimate(j.body.position), admittedAt: null,
        };
        if (mode === 'redis') {
          const names = ['etaMeanHold', 'etaSpread', 'lastAdmitted', 'lastSeq'];
          const v = await svc.redis.hmget(keys.queueMeta(concert.id), ...names);
          fan.probe = Object.fromEntries(names.map((n, k) => [n, Number(v[k] ?? 0)]));
        }
        fans.push(fan);

        const finish = () => { pending--; };
        const act = async () => {
          if (activeFate === 'pay') {
            const held = await req(svc.app, 'POST', '/v1/reservations', { token, body: { scheduleId, seatNumber: i + 1 } });
            if (held.status !== 201) throw new Error(`hold: ${held.status} ${JSON.stringify(held.body)}`);
            const paid = await req(svc.app, 'POST', '/v1/payments', { token, body: { reservationId: held.body.reservationId } });
            if (paid.status !== 201) throw new Error(`pay: ${paid.status} ${JSON.stringify(paid.body)}`);
          } else if (activeFate === 'leave') {
            await req(svc.app, 'DELETE', '/v1/queue/me', { token });
          }
          finish();
        };
        const pollOnce = async (): Promise<void> => {
          if (waitFate !== 'stay' && now >= giveUpAt) {
            if (waitFate === 'leave') await req(svc.app, 'DELETE', '/v1/queue/me', { token });
            finish();
            return;
          }
          const p = await req(svc.app, 'GET', '/v1/queue/me', { token });
          if (p.status !== 200) throw new Error(`poll: ${p.status} ${JSON.stringify(p.body)}`);
          if (p.body.status === 'active') {
            // Admitted at the tick that set activeUntil, not when the fan happened to look.
            fan.admittedAt = Date.parse(p.body.activeUntil) - sc.activeTtlSeconds * 1000;
            agenda.add(now + think, act);
            return;
          }
          const next = now + p.body.pollAfterSeconds * 1000 + jitter();
          agenda.add(waitFate !== 'stay' ? Math.min(next, giveUpAt) : next, pollOnce);
        };
        agenda.add(now + j.body.pollAfterSeconds * 1000 + jitter(), pollOnce);
      });
    });

    while (agenda.size) {
      const ev = agenda.pop();
      now = Math.max(now, ev.at);
      await ev.run();
    }
    return { seed: opts.seed, mode, fans, simulatedSeconds: Math.round((now - start) / 1000), requests };
  } finally {
    await svc.stop();
  }
}
