/**
 * The load scenarios, each prepared per target through the HTTP API:
 *   poll            a waiting user's GET /v1/queue/me (2,000 waiting users, round robin; --poll-users N)
 *   poll-one        the same poll by one waiting user only (every request the same token)
 *   join            POST /v1/concerts/:id/queue, each with a fresh user token (201 only)
 *   hold            POST /v1/reservations on distinct seats by admitted users (201 only)
 *   hold-contended  admitted users all racing for the same 8 seats (201 or 409 SEAT_UNAVAILABLE)
 *   journey         token → join → poll until active → hold → charge → pay, per virtual user
 *   tokens          POST /v1/tokens for 2,000 users round robin (201 only; every request issues and records a
 *                   new user token); on the mget target the poll-shaped GET, so the run has its own ceiling
 */
import { randomUUID } from 'node:crypto';
import { Api, configureQueue, createConcert, joinAll, pmap, UserIds, userTokens, waitActive, type Concert } from './api.ts';
import { percentile, type LoadResult, type RequestSpec } from './load.ts';
import type { Target } from './servers.ts';

export type ScenarioName = 'poll' | 'poll-one' | 'join' | 'hold' | 'hold-contended' | 'journey' | 'tokens';
/** What `npm run bench` runs without --scenarios (poll-one on request only). */
export const ALL_SCENARIOS: ScenarioName[] = ['poll', 'join', 'hold', 'hold-contended', 'journey', 'tokens'];

export interface JourneyResult extends LoadResult {
  journeys: number;
  journeysPerS: number;
  steps: Record<string, { count: number; p50Ms: number; p99Ms: number }>;
  failures: Record<string, number>;
}

export interface ScenarioState {
  /** Requests for one run that may send up to n of them (topped up outside the measurement). */
  requests(n: number): Promise<RequestSpec[]>;
  /** A scenario with its own client (journey) runs itself. */
  run?(durationS: number, concurrency: number): Promise<JourneyResult>;
}

export interface Scenario {
  name: ScenarioName;
  ok: number[];
  cycle: boolean;
  /** Rough requests/s used to size the first round's pool; later rounds use what was measured. */
  guess: Partial<Record<Target['name'], number>>;
  applies(t: Target): boolean;
  prepare(t: Target, env: PrepareEnv): Promise<ScenarioState>;
}

export interface PrepareEnv {
  users: UserIds;
  /** Requests the pool may need over all rounds (for sizing seat capacity). */
  totalRequests: number;
  /** Waiting users the poll scenario rotates through (default 2,000). */
  pollUsers?: number;
  log(msg: string): void;
}

const PRICE = 50_000;
const SEATS_PER_SCHEDULE = 10_000;
const services = (t: Target) => t.kind === 'service';

async function concertWithSeats(api: Api, title: string, seats: number): Promise<Concert> {
  const schedules = Math.max(1, Math.min(100, Math.ceil(seats / SEATS_PER_SCHEDULE)));
  return createConcert(api, title, Array.from({ length: schedules }, () => ({ seats: SEATS_PER_SCHEDULE, price: PRICE })));
}

/** Gives out each (schedule, seat) of a concert once. */
function seatCursor(concert: Concert) {
  let s = 0;
  let seat = 0;
  return () => {
    for (;;) {
      const sched = concert.schedules[s];
      if (!sched) return null;
      if (seat < sched.capacity) return { scheduleId: sched.id, seatNumber: ++seat };
      s++;
      seat = 0;
    }
  };
}

/** Admitted users of one concert, added in batches (tokens, joins, then the ticker admits them). */
async function admitUsers(api: Api, concertId: number, env: PrepareEnv, n: number, alreadyActive: number): Promise<string[]> {
  const tokens = await userTokens(api, env.users.take(n));
  const queued = await joinAll(api, concertId, tokens);
  await waitActive(api, concertId, alreadyActive + n);
  return queued;
}

/** GET /v1/queue/me by `users(env)` waiting users in turn; one more user, joined first, holds the only active slot. */
function pollScenario(name: ScenarioName, users: (env: PrepareEnv) => number): Scenario {
  return {
    name, ok: [200], cycle: true, guess: {},
    applies: () => true,
    async prepare(t, env) {
      const n = users(env);
      if (t.kind === 'mget') {
        // Same request shape: a Bearer header of a queue token's length. The MGET route ignores it;
        // the script route polls the user whose number it starts with.
        return { requests: async () => Array.from({ length: n }, (_, i) => ({ method: 'GET', path: '/v1/queue/me', token: String(i).padEnd(300, 'x') })) };
      }
      const api = new Api(t.base);
      const concert = await concertWithSeats(api, `bench ${name}`, 10);
      // maxActive 1: the user joined first is admitted, everyone polling keeps waiting for the whole run.
      await configureQueue(api, concert.id, { maxActive: 1, admitPerSecond: 1 });
      await joinAll(api, concert.id, await userTokens(api, env.users.take(1)));
      const tokens = await joinAll(api, concert.id, await userTokens(api, env.users.take(n)));
      return { requests: async () => tokens.map((token) => ({ method: 'GET', path: '/v1/queue/me', token })) };
    },
  };
}

const poll = pollScenario('poll', (env) => env.pollUsers ?? 2000);
const pollOne = pollScenario('poll-one', () => 1);

const join: Scenario = {
  name: 'join', ok: [201], cycle: false,
  guess: { redis: 3000, script: 15000, 'redis-sqlite': 3000, 'sql-sqlite': 2500, 'sql-pg': 1200 },
  applies: (t) => services(t) || t.name === 'script',
  async prepare(t, env) {
    const api = new Api(t.base);
    if (t.kind === 'mget') {
      // The script route's join floor: user tokens it signed and recorded itself.
      const pool: string[] = [];
      return {
        async requests(n) {
          while (pool.length < n) {
            const r = await api.expect<{ tokens: string[] }>(200, 'POST', `/bench/user-tokens?n=${Math.min(10_000, n - pool.length)}`);
            pool.push(...r.tokens);
          }
          return pool.splice(0, n).map((token) => ({ method: 'POST', path: '/v1/concerts/2/queue', token }));
        },
      };
    }
    const concert = await concertWithSeats(api, 'bench join', 10);
    await configureQueue(api, concert.id, { maxActive: 1, admitPerSecond: 1 });
    const pool: string[] = [];
    return {
      async requests(n) {
        if (pool.length < n) pool.push(...(await userTokens(api, env.users.take(n - pool.length))));
        return pool.splice(0, n).map((token) => ({ method: 'POST', path: `/v1/concerts/${concert.id}/queue`, token }));
      },
    };
  },
};

const hold: Scenario = {
  name: 'hold', ok: [201], cycle: false,
  guess: { redis: 6000, 'redis-sqlite': 6000, 'sql-sqlite': 2000, 'sql-pg': 800 },
  applies: services,
  async prepare(t, env) {
    const api = new Api(t.base);
    const holdsPerUser = 4; // MAX_HOLDS_PER_USER default
    const seatsPerConcert = Math.max(10_000, Math.min(env.totalRequests, 100_000));
    const pool: RequestSpec[] = [];
    let concert: Concert;
    let nextSeat: ReturnType<typeof seatCursor>;
    let active = 0;
    let seatsLeft = 0;
    // Seats run out: the next users join a fresh concert (users are admitted per concert).
    const open = async () => {
      concert = await concertWithSeats(api, 'bench hold', seatsPerConcert);
      await configureQueue(api, concert.id, { maxActive: 1_000_000, admitPerSecond: 1_000_000, activeTtlSeconds: 3600 });
      nextSeat = seatCursor(concert);
      active = 0;
      seatsLeft = concert.schedules.reduce((a, x) => a + x.capacity, 0);
    };
    await open();
    return {
      async requests(n) {
        while (pool.length < n) {
          if (seatsLeft === 0) await open();
          const batch = Math.min(Math.max(200, Math.ceil((n - pool.length) / holdsPerUser)), Math.ceil(seatsLeft / holdsPerUser));
          const tokens = await admitUsers(api, concert.id, env, batch, active);
          active += batch;
          // Each user's holds are a batch apart, so one user is rarely in flight twice.
          for (let k = 0; k < holdsPerUser && seatsLeft > 0; k++) {
            for (const token of tokens) {
              const seat = nextSeat();
              if (!seat) {
                seatsLeft = 0;
                break;
              }
              seatsLeft--;
              pool.push({ method: 'POST', path: '/v1/reservations', token, body: JSON.stringify(seat) });
            }
          }
        }
        return pool.splice(0, n);
      },
    };
  },
};

const holdContended: Scenario = {
  name: 'hold-contended', ok: [201, 409], cycle: true, guess: {},
  applies: services,
  async prepare(t, env) {
    const api = new Api(t.base);
    const seats = 8;
    const concert = await createConcert(api, 'bench contended', [{ seats, price: PRICE }]);
    await configureQueue(api, concert.id, { maxActive: 1_000_000, admitPerSecond: 1_000_000, activeTtlSeconds: 3600 });
    const tokens = await admitUsers(api, concert.id, env, 500, 0);
    const scheduleId = concert.schedules[0]!.id;
    const reqs = tokens.map((token, i) => ({
      method: 'POST', path: '/v1/reservations', token, body: JSON.stringify({ scheduleId, seatNumber: (i % seats) + 1 }),
    }));
    return { requests: async () => reqs };
  },
};

const journey: Scenario = {
  name: 'journey', ok: [200, 201], cycle: false, guess: {},
  applies: services,
  async prepare(t, env) {
    const api = new Api(t.base);
    const concert = await concertWithSeats(api, 'bench journey', Math.min(env.totalRequests, 200_000));
    await configureQueue(api, concert.id, { maxActive: 1_000_000, admitPerSecond: 1_000_000, activeTtlSeconds: 3600 });
    const nextSeat = seatCursor(concert);
    return {
      requests: async () => [],
      run: (durationS, concurrency) => runJourneys(api, env, nextSeat, concert.id, durationS, concurrency),
    };
  },
};

const tokens: Scenario = {
  name: 'tokens', ok: [200, 201], cycle: true, guess: {},
  // The MGET route is its ceiling; the script route has no token issue of its own.
  applies: (t) => t.name !== 'script',
  async prepare(t, env) {
    const n = 2000;
    if (t.kind === 'mget') return poll.prepare(t, env);
    const reqs = env.users.take(n).map((userId) => ({ method: 'POST', path: '/v1/tokens', body: JSON.stringify({ userId }) }));
    return { requests: async () => reqs };
  },
};

export const SCENARIOS: Record<ScenarioName, Scenario> = {
  poll, 'poll-one': pollOne, join, hold, 'hold-contended': holdContended, journey, tokens,
};

/** How often a journey's client polls while waiting (a real client waits pollAfterSeconds). */
const JOURNEY_POLL_MS = 250;

async function runJourneys(api: Api, env: PrepareEnv, nextSeat: () => { scheduleId: number; seatNumber: number } | null,
  concertId: number, durationS: number, concurrency: number): Promise<JourneyResult> {
  const steps: Record<string, number[]> = { token: [], join: [], poll: [], hold: [], charge: [], pay: [] };
  const statuses: Record<string, number> = {};
  const failures: Record<string, number> = {};
  const journeyMs: number[] = [];
  let socketErrors = 0;
  let requests = 0;
  let exhausted = false;
  const started = performance.now();
  const deadline = started + durationS * 1000;
  const hardStop = deadline + 60_000;

  const step = async (name: string, want: number[], method: string, path: string, opts: Parameters<Api['call']>[2]) => {
    const t0 = performance.now();
    let r;
    try {
      r = await api.call(method, path, { ...opts, timeoutMs: 10_000 });
    } catch (err) {
      socketErrors++;
      failures[`${name}: ${(err as Error).name}`] = (failures[`${name}: ${(err as Error).name}`] ?? 0) + 1;
      return null;
    }
    requests++;
    steps[name]!.push(performance.now() - t0);
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    if (!want.includes(r.status)) {
      const key = `${name}: ${r.status} ${r.body?.error?.code ?? ''}`.trim();
      failures[key] = (failures[key] ?? 0) + 1;
      return null;
    }
    return r.body;
  };

  const journeyOnce = async (): Promise<boolean> => {
    const [userId] = env.users.take(1);
    const tok = await step('token', [201], 'POST', '/v1/tokens', { body: { userId } });
    if (!tok) return false;
    const joined = await step('join', [201], 'POST', `/v1/concerts/${concertId}/queue`, { token: tok.token });
    if (!joined) return false;
    const queueToken: string = joined.token;
    let status = joined.status;
    while (status !== 'active') {
      if (performance.now() > hardStop) return false;
      await Bun.sleep(JOURNEY_POLL_MS);
      const p = await step('poll', [200], 'GET', '/v1/queue/me', { token: queueToken });
      if (!p) return false;
      status = p.status;
    }
    const seat = nextSeat();
    if (!seat) {
      exhausted = true;
      return false;
    }
    const held = await step('hold', [201], 'POST', '/v1/reservations', { token: queueToken, body: seat });
    if (!held) return false;
    const charged = await step('charge', [200], 'POST', '/v1/me/balance/charge', {
      token: queueToken, body: { amount: held.price }, headers: { 'Idempotency-Key': randomUUID() },
    });
    if (!charged) return false;
    const paid = await step('pay', [201], 'POST', '/v1/payments', {
      token: queueToken, body: { reservationId: held.reservationId }, headers: { 'Idempotency-Key': randomUUID() },
    });
    return !!paid;
  };

  const loop = async () => {
    while (performance.now() < deadline && !exhausted) {
      const t0 = performance.now();
      if (await journeyOnce()) journeyMs.push(performance.now() - t0);
    }
  };
  await pmap(Array.from({ length: concurrency }), concurrency, loop);
  const elapsedS = (performance.now() - started) / 1000;
  journeyMs.sort((a, b) => a - b);
  const stepStats: JourneyResult['steps'] = {};
  for (const [name, xs] of Object.entries(steps)) {
    xs.sort((a, b) => a - b);
    stepStats[name] = { count: xs.length, p50Ms: percentile(xs, 50), p99Ms: percentile(xs, 99) };
  }
  // Every failed step (socket errors included) is one entry of failures.
  const errors = Object.values(failures).reduce((a, b) => a + b, 0);
  return {
    client: 'bun', requests, durationS: elapsedS, rps: requests / elapsedS,
    p50Ms: percentile(journeyMs, 50), p90Ms: percentile(journeyMs, 90), p99Ms: percentile(journeyMs, 99),
    maxMs: journeyMs[journeyMs.length - 1] ?? 0,
    errors, statuses, socketErrors, exhausted,
    journeys: journeyMs.length, journeysPerS: journeyMs.length / elapsedS, steps: stepStats, failures,
  };
}
