/**
 * The poll's JavaScript in two checkouts, side by side in one process:
 *
 *   bun bench/compare-poll-js.ts <checkout A> <checkout B> [--tokens 300] [--rounds 16]
 *
 * Each checkout's own createApp (its middleware, token cache and queue service) answers
 * GET /v1/queue/me with every Redis answer of the poll canned, one request at a time; rounds of
 * 0.5 s alternate between the two (ABBA), and the CPU time per poll of this process is printed as
 * min / p25 / median per checkout. Comparing in one process, interleaved, is steady on a shared
 * machine where HTTP runs of the same code differ by tens of percent. Both apps share one scratch
 * redis-server and SQLite database (tokens and the concert are made through checkout A's API).
 */
import { resolve } from 'node:path';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const [dirA, dirB] = argv.filter((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));
if (!dirA || !dirB) throw new Error('usage: bun bench/compare-poll-js.ts <checkout A> <checkout B> [--tokens 300] [--rounds 16]');
const ROOTS: Record<string, string> = { A: resolve(dirA), B: resolve(dirB) };
const N = opt('tokens', 300);
const ROUNDS = opt('rounds', 16);
const { startRedis } = await import('../sentinel/topology.ts');
const { BENCH_ADMIN_KEY, BENCH_JWT_SECRET, createScratchDb } = await import('./lib/servers.ts');
const redisProc = await startRedis();
const scratch = await createScratchDb('sqlite', 'compare-poll-js');
const env = {
  REDIS_URL: redisProc.url, DATABASE_URL: scratch.url, JWT_SECRET: BENCH_JWT_SECRET, ADMIN_API_KEY: BENCH_ADMIN_KEY,
  LOG_LEVEL: 'error', QUEUE_GRACE_SECONDS: '3600', RATE_LIMIT_PER_SECOND: '1000000', RATE_LIMIT_BURST: '1000000', TOKEN_RATE_LIMIT_PER_MINUTE: '0',
};
const apps: Record<string, any> = {};
let shared: any = null;
const stops: (() => unknown)[] = [];
for (const [name, root] of Object.entries(ROOTS)) {
  const { loadConfig } = await import(`${root}/src/config.ts`);
  const { createContext } = await import(`${root}/src/context.ts`);
  const { createApp } = await import(`${root}/src/http/app.ts`);
  const { createRedis } = await import(`${root}/src/redis/connection.ts`);
  const { openDatabase } = await import(`${root}/src/store/connect.ts`);
  const { migrateToLatest } = await import(`${root}/src/store/migrate.ts`);
  const config = loadConfig(env);
  const db = openDatabase(config.databaseUrl);
  if (!shared) await migrateToLatest(db);
  shared = true;
  const redis = createRedis(config.redis, { timeoutMs: config.redisTimeoutMs });
  const ctx = createContext(config, { db, redis });
  apps[name] = { app: createApp(ctx), ctx };
  stops.push(() => ctx.stopJobs(), () => redis.disconnect());
}
const app0 = apps.A.app;
const call = async (method: string, path: string, body?: unknown, token?: string) => {
  const headers: Record<string, string> = { 'X-Admin-Key': BENCH_ADMIN_KEY };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await app0.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return res.json() as Promise<any>;
};
const concert = await call('POST', '/admin/concerts', { title: 'ab', schedules: [{ date: new Date(Date.now() + 30 * 86_400_000).toISOString(), seats: 10, price: 1 }] });
await call('PATCH', `/admin/concerts/${concert.id}/queue`, { maxActive: 1, admitPerSecond: 1 });
const tokens: string[] = [];
for (let u = 0; u < N; u++) {
  const t = await call('POST', '/v1/tokens', { userId: 7_000_000 + u });
  tokens.push((await call('POST', `/v1/concerts/${concert.id}/queue`, undefined, t.token)).token);
}
const PLACE = { status: 'waiting', seq: 1500, lastAdmitted: 1, activeUntil: 0, observedRate: 0, admitPerSecond: 1, paused: false, maxActive: 1000, activeCount: 1000, activeTtlSeconds: 600, meanHoldSeconds: 240, spread: 1.1 };
for (const a of Object.values(apps)) {
  // Checkouts from before the Backend seam expose the serving store as queue.store().
  const store = a.ctx.backends?.redis.queue ?? a.ctx.queue.store();
  store.poll = async () => PLACE;
}
const reqs = tokens.map((t) => ({ headers: { Authorization: `Bearer ${t}` } }));
const runOne = async (app: any, ms: number) => {
  let n = 0; let bad = 0;
  const c0 = process.cpuUsage(); const dl = performance.now() + ms;
  while (performance.now() < dl) {
    for (let k = 0; k < 200; k++) {
      const res = await app.fetch(new Request('http://bench.local/v1/queue/me', reqs[n % reqs.length]));
      await res.arrayBuffer();
      if (res.status !== 200) bad++;
      n++;
    }
  }
  const cpu = process.cpuUsage(c0);
  return { us: (cpu.user + cpu.system) / n, bad };
};
for (const a of Object.values(apps)) await runOne(a.app, 3000);
const res: Record<string, number[]> = { A: [], B: [] };
for (let r = 0; r < ROUNDS; r++) for (const name of r % 2 ? ['B', 'A'] : ['A', 'B']) {
  const x = await runOne(apps[name].app, 500);
  if (x.bad) throw new Error(`${name}: ${x.bad} non-200`);
  res[name]!.push(x.us);
}
const q = (xs: number[], p: number) => { const v = [...xs].sort((a, b) => a - b); return v[Math.floor(p * (v.length - 1))]!; };
for (const [k, v] of Object.entries(res)) console.log(`${k} ${ROOTS[k]}: min ${q(v, 0).toFixed(2)} µs, p25 ${q(v, 0.25).toFixed(2)}, median ${q(v, 0.5).toFixed(2)} (${ROUNDS} rounds of 0.5 s, ${N} tokens)`);
for (const s of stops) await s();
await redisProc.stop();
await scratch.drop();
process.exit(0);
