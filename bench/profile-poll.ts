/**
 * Where a poll's time goes (`bun bench/profile-poll.ts [--seconds 3] [--rounds 2]`).
 *
 * 1. Pieces in isolation, synchronous CPU per call: JWT verification, request id, metrics,
 *    the JSON answer.
 *    (`--warmup 4` seconds per stack first, then `--rounds 5` × `--seconds 2`, medians.)
 * 2. Layer by layer, in one process (app.fetch, no sockets, so HTTP parsing is left out for all):
 *    the bare MGET route, then the pollQueue script instead of MGET, then the bearer check, then
 *    each middleware of createApp, then createApp itself. Each stack runs at 50 requests in
 *    flight; CPU µs/request is this process's CPU time (process.cpuUsage) per request, so Redis's
 *    own work is not in it (its share is printed apart).
 */
import { createHmac, randomUUID } from 'node:crypto';
import { Hono, type MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Redis } from 'ioredis';
import { loadConfig } from '../src/config.ts';
import { createContext } from '../src/context.ts';
import { createApp } from '../src/http/app.ts';
import type { AppEnv } from '../src/http/env.ts';
import { onError } from '../src/http/errors.ts';
import { bearer, verifiedUserOf } from '../src/http/middleware/auth.ts';
import { observe } from '../src/http/middleware/observe.ts';
import { byVerifiedUserElseAddress, rateLimit } from '../src/http/middleware/rate-limit.ts';
import { redisBreaker } from '../src/http/middleware/redis-breaker.ts';
import { requestId } from '../src/http/middleware/request-id.ts';
import { createRedis } from '../src/redis/connection.ts';
import type { QueuePlace } from '../src/modules/queue/types.ts';
import { ScriptCode } from '../src/redis/codes.ts';
import { keys } from '../src/redis/keys.ts';
import { decodePollQueue, pollQueue } from '../src/redis/script-calls.ts';
import { runScript } from '../src/redis/scripts.ts';
import { openDatabase } from '../src/store/connect.ts';
import { migrateToLatest } from '../src/store/migrate.ts';
import { startRedis } from '../sentinel/topology.ts';
import { CpuMeter } from './lib/proc.ts';
import { fmt } from './lib/report.ts';
import { BENCH_ADMIN_KEY, BENCH_JWT_SECRET, createScratchDb } from './lib/servers.ts';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const SECONDS = arg('seconds', 2);
const ROUNDS = arg('rounds', 5);
const IN_FLIGHT = 50;
const WARMUP = arg('warmup', 4);

/** Like timeSync, one call at a time, each awaited. */
async function timeAsync(label: string, n: number, fn: (i: number) => Promise<unknown>): Promise<{ label: string; us: number }> {
  for (let i = 0; i < Math.min(n, 2000); i++) await fn(i); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return { label, us: ((performance.now() - t0) * 1000) / n };
}

function timeSync(label: string, n: number, fn: (i: number) => unknown): { label: string; us: number } {
  for (let i = 0; i < Math.min(n, 2000); i++) fn(i); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return { label, us: ((performance.now() - t0) * 1000) / n };
}

const redisProc = await startRedis();
const scratch = await createScratchDb('sqlite', 'profile');
try {
  const config = loadConfig({
    REDIS_URL: redisProc.url, DATABASE_URL: scratch.url, JWT_SECRET: BENCH_JWT_SECRET, ADMIN_API_KEY: BENCH_ADMIN_KEY,
    LOG_LEVEL: 'error', QUEUE_GRACE_SECONDS: '3600', RATE_LIMIT_PER_SECOND: '1000000', RATE_LIMIT_BURST: '1000000',
    TOKEN_RATE_LIMIT_PER_MINUTE: '0',
  });
  const db = openDatabase(config.databaseUrl);
  await migrateToLatest(db);
  const redis = createRedis(config.redis, { timeoutMs: config.redisTimeoutMs });
  const ctx = createContext(config, { db, redis });
  const app = createApp(ctx);
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const headers: Record<string, string> = { 'X-Admin-Key': BENCH_ADMIN_KEY };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return res.json() as Promise<any>;
  };
  const concert = await call('POST', '/admin/concerts', { title: 'profile', schedules: [{ date: new Date(Date.now() + 30 * 86_400_000).toISOString(), seats: 10, price: 1 }] });
  await call('PATCH', `/admin/concerts/${concert.id}/queue`, { maxActive: 1, admitPerSecond: 1 });
  const tokens: string[] = [];
  for (let u = 0; u < 2000; u++) {
    const t = await call('POST', '/v1/tokens', { userId: 5_000_000 + u });
    tokens.push((await call('POST', `/v1/concerts/${concert.id}/queue`, undefined, t.token)).token);
  }
  const c = concert.id as number;
  const qKeys = [keys.queueMeta(c), keys.line(c), keys.active(c), keys.queueTokens(c), keys.stream(c)];
  const principals = await Promise.all(tokens.map(async (t) => (await ctx.tokens.decode(t, Date.now()))!));
  const byHeader = new Map(tokens.map((t, i) => [`Bearer ${t}`, principals[i]!]));
  await (redis as Redis).mset('bench:mget:a', '1', 'bench:mget:b', '2');

  // ---- 1. pieces
  const SAMPLE_PLACE: QueuePlace = {
    status: 'waiting', seq: 1500, lastAdmitted: 1, activeUntil: 0, observedRate: 0, admitPerSecond: 1,
    paused: false, maxActive: 1000, activeCount: 1000, activeTtlSeconds: 600,
    meanHoldSeconds: 240, spread: 1.1,
  };
  const view = ctx.queue.view(c, SAMPLE_PLACE);
  const pieces = [
    await timeAsync('JWT verify (JwtCodec.verify: hono/jwt, WebCrypto HMAC-SHA256 + base64url + JSON.parse)', 50_000,
      (i) => ctx.tokens.jwt.verify(tokens[i % tokens.length]!)),
    timeSync('  for comparison: a synchronous node:crypto HMAC (createHmac(...).update(body).digest)', 50_000, (i) => {
      const t = tokens[i % tokens.length]!;
      return createHmac('sha256', BENCH_JWT_SECRET).update(t.slice(0, t.lastIndexOf('.'))).digest('base64url');
    }),
    await timeAsync('TokenService.decode, a token in the verified-token cache', 200_000, (i) => ctx.tokens.decode(tokens[i % tokens.length]!, Date.now())),
    timeSync('request id (crypto.randomUUID)', 200_000, () => randomUUID()),
    timeSync('metrics: counter.inc + histogram.observe with labels (observe middleware)', 100_000, () => {
      ctx.metrics.requests.inc({ route: '/v1/queue/me', method: 'GET', status: '200' });
      ctx.metrics.latency.observe({ route: '/v1/queue/me', method: 'GET' }, 0.001);
    }),
    timeSync('answer: JSON.stringify of the poll view', 200_000, () => JSON.stringify(view)),
    timeSync('queue.view (position, estimate)', 200_000, () => ctx.queue.view(c, SAMPLE_PLACE)),
  ];

  // ---- 2. layers
  type Stack = { name: string; app: { fetch: (r: Request) => Response | Promise<Response> } };
  // With `io` off, every Redis call is replaced by its answer, so only the JavaScript of each
  // layer is timed: no socket, no waiting, and far less noise from the rest of the machine.
  let io = true;
  const cannedPoll = '0 0 1500 1 0 0 1 0 1000 1000 600 240 1.1';
  const poll = async (userId: number, jti: string) => {
    const r = decodePollQueue(io ? await pollQueue.raw(redis, { concertId: c, userId, jti, now: Date.now(), graceMs: config.queueGraceSeconds * 1000 })
      : cannedPoll);
    if (r.code !== ScriptCode.Ok) throw new Error(`pollQueue code ${r.code}`);
    return ctx.queue.view(c, r);
  };
  const stack = (name: string, mws: MiddlewareHandler<AppEnv>[], auth: boolean): Stack => {
    const h = new Hono<AppEnv>();
    for (const m of mws) h.use('/v1/*', m);
    h.onError(onError(ctx.log));
    const route = new Hono<AppEnv>();
    if (auth) {
      route.get('/me', bearer({ tokens: ctx.tokens, clock: Date.now, accept: ['queue'] }), async (cx) => {
        const p = cx.get('principal');
        return cx.json(await poll(p.userId, p.jti));
      });
    } else {
      route.get('/me', async (cx) => {
        const p = byHeader.get(cx.req.header('Authorization') ?? '')!;
        return cx.json(await poll(p.userId, p.jti));
      });
    }
    h.route('/v1/queue', route);
    return { name, app: h };
  };
  const mgetApp = new Hono();
  mgetApp.get('/v1/queue/me', async (cx) => {
    const [a, b] = io ? await (redis as Redis).mget('bench:mget:a', 'bench:mget:b') : ['1', '2'];
    return cx.json({ status: 'waiting', concertId: 1, position: Number(b) - Number(a), activeUntil: null });
  });
  // The service's own store call, answered without Redis when `io` is off.
  const realPoll = ctx.backends.current.queue.poll.bind(ctx.backends.current.queue);
  const store = ctx.backends.current.queue as unknown as { poll: typeof realPoll };
  store.poll = async (...a) => (io ? realPoll(...a) : SAMPLE_PLACE);
  const rid = requestId() as unknown as MiddlewareHandler<AppEnv>;
  const obs = observe({ metrics: ctx.metrics, log: ctx.log, logRequests: false }) as unknown as MiddlewareHandler<AppEnv>;
  const rl = rateLimit({
    ...config.rateLimit,
    clientOf: byVerifiedUserElseAddress({ trustProxy: false, userOf: verifiedUserOf(ctx.tokens, Date.now) }),
  });
  const brk = redisBreaker({ mode: ctx.mode, coordinator: ctx.coordinator });
  const stacks: Stack[] = [
    { name: 'A  bare route, one MGET (the ceiling)', app: mgetApp },
    stack('B  bare route, pollQueue script instead of MGET', [], false),
    stack('C  B + bearer (JWT verify)', [], true),
    stack('D  C + requestId', [rid], true),
    stack('E  D + observe (metrics)', [rid, obs], true),
    stack('F  E + rateLimit', [rid, obs, rl], true),
    stack('G  F + redisBreaker (cockatiel)', [rid, obs, rl, brk], true),
    { name: 'H  createApp (the service)', app },
  ];
  void routePath;

  const reqs = tokens.map((t) => ({ url: 'http://bench.local/v1/queue/me', headers: { Authorization: `Bearer ${t}` } }));
  const runStack = async (s: Stack, seconds = SECONDS, inFlight = IN_FLIGHT) => {
    let n = 0;
    let bad = 0;
    const redisCpu = new CpuMeter(() => [redisProc.pid]);
    await redisCpu.start();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    await Promise.all(Array.from({ length: inFlight }, async (_, k) => {
      let i = k;
      while (performance.now() < deadline) {
        const r = reqs[i % reqs.length]!;
        i += inFlight;
        const res = await s.app.fetch(new Request(r.url, { headers: r.headers }));
        await res.arrayBuffer();
        if (res.status !== 200) bad++;
        n++;
      }
    }));
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const rc = await redisCpu.stop();
    return { rps: n / secs, cpuUs: (cpu.user + cpu.system) / n, redisUs: rc ? (rc.seconds * 1e6) / n : null, bad };
  };
  type Acc = { rps: number[]; cpuUs: number[]; redisUs: number[]; bad: number };
  const measureAll = async (inFlight: number) => {
    const results = new Map<string, Acc>();
    for (const s of stacks) await runStack(s, WARMUP, inFlight); // warm-up: let the JIT compile every path first
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...stacks].reverse() : stacks;
      for (const s of order) {
        const r = await runStack(s, SECONDS, inFlight);
        const acc = results.get(s.name) ?? { rps: [], cpuUs: [], redisUs: [], bad: 0 };
        acc.rps.push(r.rps);
        acc.cpuUs.push(r.cpuUs);
        if (r.redisUs !== null) acc.redisUs.push(r.redisUs);
        acc.bad += r.bad;
        results.set(s.name, acc);
      }
    }
    return results;
  };
  // Medians over the rounds: one noisy round (another process on the two cores) does not move them.
  const avg = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length ? (v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2) : 0;
  };
  io = false;
  const noIo = await measureAll(1);
  io = true;
  const withIo = await measureAll(IN_FLIGHT);

  // ---- 3. the Redis call alone: client CPU per call (ioredis) and Redis's own time per call
  const callCost = async (name: string, fn: (i: number) => Promise<unknown>) => {
    for (let i = 0; i < 20_000; i++) await fn(i);
    await (redis as Redis).config('RESETSTAT');
    const redisCpu = new CpuMeter(() => [redisProc.pid]);
    await redisCpu.start();
    const cpu0 = process.cpuUsage();
    let n = 0;
    const deadline = performance.now() + SECONDS * 1000 * 2;
    await Promise.all(Array.from({ length: IN_FLIGHT }, async (_, k) => {
      let i = k;
      while (performance.now() < deadline) {
        await fn(i);
        i += IN_FLIGHT;
        n++;
      }
    }));
    const cpu = process.cpuUsage(cpu0);
    const rc = await redisCpu.stop();
    const stats = await (redis as Redis).info('commandstats');
    const m = new RegExp(`cmdstat_${name}:calls=\\d+,usec=\\d+,usec_per_call=([\\d.]+)`).exec(stats);
    return { clientUs: (cpu.user + cpu.system) / n, redisProcUs: rc ? (rc.seconds * 1e6) / n : null, redisCmdUs: m ? Number(m[1]) : null };
  };
  const mgetCost = await callCost('mget', () => (redis as Redis).mget('bench:mget:a', 'bench:mget:b'));
  const pollCost = await callCost('evalsha', (i) => {
    const p = principals[i % principals.length]!;
    return runScript(redis, 'pollQueue', qKeys, [p.userId, p.jti, Date.now(), config.queueGraceSeconds * 1000]);
  });

  const out: string[] = [];
  out.push(`# Poll profile, ${new Date().toISOString()}`, '');
  out.push('Pieces, time per call, one call at a time (the asynchronous ones each awaited):', '', '| piece | µs/call |', '|---|---:|');
  for (const p of pieces) out.push(`| ${p.label} | ${fmt(p.us, 2)} |`);
  out.push('', `Layers, in process (app.fetch, ${WARMUP} s warm-up each, then ${ROUNDS} rounds × ${SECONDS} s, medians). ` +
    'Without I/O: every Redis answer canned, one request at a time, so the column is the JavaScript of the layers alone. ' +
    `With I/O: real Redis, ${IN_FLIGHT} in flight; "Redis CPU" is the redis-server process's CPU per request.`, '');
  out.push('| stack | no I/O: CPU µs/req | Δ µs | with Redis: req/s | CPU µs/req | Redis CPU µs/req |', '|---|---:|---:|---:|---:|---:|');
  let prev: number | null = null;
  for (const s of stacks) {
    const a = noIo.get(s.name)!;
    const b = withIo.get(s.name)!;
    const cpu = avg(a.cpuUs);
    out.push(`| ${s.name} | ${fmt(cpu, 1)} | ${prev === null ? '–' : fmt(cpu - prev, 1)} | ${fmt(avg(b.rps))} | ${fmt(avg(b.cpuUs), 1)} | ${fmt(avg(b.redisUs), 1)} |` +
      (a.bad + b.bad ? ` (${a.bad + b.bad} non-200)` : ''));
    prev = cpu;
  }
  out.push('', `The Redis call alone (${IN_FLIGHT} in flight): client CPU per call in this process (ioredis + socket), the redis-server ` +
    'process CPU per call, and Redis\'s own time per command (INFO commandstats usec_per_call):', '');
  out.push('| call | client CPU µs | redis-server CPU µs | command µs |', '|---|---:|---:|---:|');
  out.push(`| MGET of 2 keys | ${fmt(mgetCost.clientUs, 1)} | ${fmt(mgetCost.redisProcUs, 1)} | ${fmt(mgetCost.redisCmdUs, 2)} |`);
  out.push(`| EVALSHA pollQueue (6 keys, 4 args) | ${fmt(pollCost.clientUs, 1)} | ${fmt(pollCost.redisProcUs, 1)} | ${fmt(pollCost.redisCmdUs, 2)} |`);
  out.push('');
  process.stdout.write(`${out.join('\n')}\n`);
  ctx.stopJobs();
  redis.disconnect();
  await db.destroy();
} finally {
  await redisProc.stop();
  await scratch.drop();
}
process.exit(0);
