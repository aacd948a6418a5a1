/**
 * The HTTP contract on Node 20, over real HTTP: `npm run start:node` (tsc emits dist/, then
 * Node runs dist/main.js) serves on SQLite (better-sqlite3), and once dist/ is built
 * `node dist/main.js` serves on PostgreSQL, each with its own redis-server and its own empty
 * database (migrated by the Node process itself). A fan's whole journey in `redis` mode,
 * the errors, CORS, the per-address limiter (Node's socket address), the same journey in `sql`
 * mode (the instance's Redis is stopped, as in production), and a SIGTERM drain that exits 0.
 * The suite runs under Bun like the others; only the service under test runs on Node.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { closeAdmin, createScratchDb } from '../bench/lib/servers.ts';
import { freePort, startRedis, type RedisProc } from '../sentinel/topology.ts';
import type { createApp } from '../src/http/app.ts';
import { newUserId } from './helpers/harness.ts';
import { call, createConcert, eventually, join as joinQueue, userToken } from './helpers/http.ts';
import { ADMIN_KEY, JWT_SECRET } from './helpers/service.ts';
import { collectOutput } from './helpers/spawn.ts';

type App = ReturnType<typeof createApp>;
type DbKind = 'sqlite' | 'postgres';

const ROOT = join(import.meta.dir, '..');
const ORIGIN = 'https://fans.example';
const TOKEN_BURST = 20;

interface NodeService {
  kind: DbKind;
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  base: string;
  /** The test helpers' `app`, answered over HTTP by the Node process. */
  app: App;
  redis: RedisProc;
  drop(): Promise<void>;
  output(): string;
}

/** Runs a command in the repository; resolves to its output, throws with it on a failure. */
async function run(cmd: string[]): Promise<string> {
  const proc = Bun.spawn(cmd, { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cmd.join(' ')} exited ${code}:\n${out}\n${err}`);
  return out + err;
}

/** `npm`: through `npm run start:node` (build included; signals reach Node through npm). */
async function startNode(kind: DbKind, via: 'npm' | 'node'): Promise<NodeService> {
  const redis = await startRedis();
  const db = await createScratchDb(kind, `node_${kind}`);
  const port = await freePort();
  const proc = Bun.spawn(via === 'npm' ? ['npm', 'run', 'start:node'] : ['node', '--enable-source-maps', 'dist/main.js'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', HOST: '127.0.0.1', PORT: String(port),
      REDIS_URL: redis.url, DATABASE_URL: db.url, JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'info',
      SHUTDOWN_DRAIN_SECONDS: '1', ADMISSION_TICK_MS: '100', CORS_ORIGINS: ORIGIN,
      // A stopped Redis is noticed in a fraction of a second (the SQL-mode step).
      REDIS_TIMEOUT_MS: '300',
      // The limiter stays on: its address key comes from Node's socket (src/runtime/node.ts).
      RATE_LIMIT_PER_SECOND: '200', RATE_LIMIT_BURST: '400', TOKEN_RATE_LIMIT_PER_MINUTE: '600', TOKEN_RATE_LIMIT_BURST: String(TOKEN_BURST),
    },
    stdin: 'ignore', stdout: 'pipe', stderr: 'pipe',
  });
  const output = collectOutput(proc);
  const base = `http://127.0.0.1:${port}`;
  const app = { request: (path: string, init?: RequestInit) => fetch(`${base}${path}`, init) } as unknown as App;
  const svc: NodeService = {
    kind, proc, base, app, redis, output,
    async drop() {
      // SIGTERM first: npm passes it on to Node, where a SIGKILL of npm would leave Node running.
      if (proc.exitCode === null) proc.kill('SIGTERM');
      if ((await Promise.race([proc.exited, Bun.sleep(5000).then(() => null)])) === null) proc.kill('SIGKILL');
      await proc.exited;
      await redis.stop();
      await db.drop();
    },
  };
  try {
    await eventually(async () => {
      if (proc.exitCode !== null) throw new Error(`node exited ${proc.exitCode}: ${output()}`);
      return (await fetch(`${base}/readyz`)).status === 200;
    }, 40_000, 50);
  } catch (err) {
    await svc.drop();
    throw new Error(`the Node-served ${kind} instance did not get ready: ${String(err)}\n${output()}`);
  }
  return svc;
}

const services = new Map<DbKind, Promise<NodeService>>();

beforeAll(async () => {
  const version = (await run(['node', '--version'])).trim();
  expect(Number(/^v(\d+)\./.exec(version)?.[1])).toBeGreaterThanOrEqual(20);
  console.log(`node ${version}`);
  // The PostgreSQL instance runs the dist/ that the SQLite one's npm run start:node built.
  const sqlite = startNode('sqlite', 'npm');
  const postgres = sqlite.then(() => startNode('postgres', 'node'));
  for (const [kind, s] of [['sqlite', sqlite], ['postgres', postgres]] as const) {
    s.catch(() => {});
    services.set(kind, s);
  }
  await Promise.all(services.values());
}, 90_000);

afterAll(async () => {
  await Promise.all([...services.values()].map(async (s) => (await s.catch(() => null))?.drop()));
  await closeAdmin();
});

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Polls GET /v1/queue/me (the heartbeat) until the ticker has admitted the holder. */
async function untilActive(app: App, token: string): Promise<void> {
  await eventually(async () => {
    const r = await call(app, 'GET', '/v1/queue/me', { token });
    if (r.status !== 200) throw new Error(`poll: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.status === 'active';
  }, 10_000, 50);
}

/**
 * Two fans of a fresh 10-seat concert: tokens, join, poll, admission, schedules and seats,
 * holds, a clash, charge, a single and a list payment (with an idempotent retry), the list of
 * own reservations, a release, leaving the queue.
 */
async function journey(app: App): Promise<void> {
  const concert = await createConcert(app, [{ seats: 10, price: 1000 }], 'On Node');
  const scheduleId = concert.schedules[0]!.id;
  const a = newUserId();
  const b = newUserId();

  const joinA = await joinQueue(app, concert.id, await userToken(app, a));
  const joinB = await joinQueue(app, concert.id, await userToken(app, b));
  expect(joinA.status).toBe(201);
  expect(joinB.status).toBe(201);
  expect(['waiting', 'active']).toContain(joinA.body.status);
  const qa: string = joinA.body.token;
  const qb: string = joinB.body.token;
  await untilActive(app, qa);
  await untilActive(app, qb);

  const schedules = await call(app, 'GET', `/v1/concerts/${concert.id}/schedules`, { token: qa });
  expect(schedules.status).toBe(200);
  expect(schedules.body.schedules[0]).toMatchObject({ id: scheduleId, capacity: 10, available: 10 });
  const seats = await call(app, 'GET', `/v1/concerts/${concert.id}/schedules/${scheduleId}/seats`, { token: qa });
  expect(seats.status).toBe(200);
  expect(seats.body.seats.map((s: { status: string }) => s.status)).toEqual(Array(10).fill('available'));

  const held: string[] = [];
  for (const seatNumber of [1, 2, 3]) {
    const h = await call(app, 'POST', '/v1/reservations', { token: qa, body: { scheduleId, seatNumber } });
    expect(h.status).toBe(201);
    expect(h.body).toMatchObject({ status: 'held', price: 1000 });
    held.push(h.body.reservationId);
  }
  const again = await call(app, 'POST', '/v1/reservations', { token: qa, body: { scheduleId, seatNumber: 1 } });
  expect(again.status).toBe(200);
  expect(again.body.reservationId).toBe(held[0]!);
  const clash = await call(app, 'POST', '/v1/reservations', { token: qb, body: { scheduleId, seatNumber: 1 } });
  expect(clash.status).toBe(409);
  expect(clash.body.error.code).toBe('SEAT_UNAVAILABLE');

  const charged = await call(app, 'POST', '/v1/me/balance/charge', { token: qa, body: { amount: 5000 } });
  expect(charged.status).toBe(200);
  expect(charged.body).toEqual({ userId: a, balance: 5000 });

  const payOne = { token: qa, body: { reservationId: held[0] }, headers: { 'Idempotency-Key': randomUUID() } };
  const paid = await call(app, 'POST', '/v1/payments', payOne);
  expect(paid.status).toBe(201);
  expect(paid.body).toMatchObject({ reservationId: held[0], amount: 1000, status: 'paid' });
  const retried = await call(app, 'POST', '/v1/payments', payOne);
  expect(retried.status).toBe(201);
  expect(retried.body.paymentId).toBe(paid.body.paymentId);
  const twice = await call(app, 'POST', '/v1/payments', { token: qa, body: { reservationId: held[0] } });
  expect(twice.status).toBe(409);
  expect(twice.body.error.code).toBe('ALREADY_PAID');
  const paidList = await call(app, 'POST', '/v1/payments', { token: qa, body: { reservationIds: [held[1], held[2]] } });
  expect(paidList.status).toBe(201);
  expect(paidList.body).toMatchObject({ reservationIds: [held[1], held[2]], amount: 2000, status: 'paid' });

  // No live hold left: the queue token is spent; a fresh user token reads the user's records.
  const ta = await userToken(app, a);
  const balance = await call(app, 'GET', '/v1/me/balance', { token: ta });
  expect(balance.body).toEqual({ userId: a, balance: 2000 });
  const mine = await call(app, 'GET', '/v1/me/reservations', { token: ta });
  expect(mine.status).toBe(200);
  expect(mine.body.reservations.map((r: { reservationId: string }) => r.reservationId).sort()).toEqual([...held].sort());
  expect(mine.body.reservations.every((r: { status: string }) => r.status === 'paid')).toBe(true);
  const other = await call(app, 'GET', `/v1/reservations/${held[0]}`, { token: qb });
  expect(other.status).toBe(403);
  const unknown = await call(app, 'GET', `/v1/reservations/${concert.id}-${randomUUID()}`, { token: ta });
  expect(unknown.status).toBe(404);
  expect(unknown.body.error.code).toBe('NOT_FOUND');

  const soldOut = await call(app, 'GET', `/v1/concerts/${concert.id}/schedules/${scheduleId}/seats`, { token: qb });
  expect(soldOut.body.seats.slice(0, 4).map((s: { status: string }) => s.status)).toEqual(['sold', 'sold', 'sold', 'available']);
  const holdB = await call(app, 'POST', '/v1/reservations', { token: qb, body: { scheduleId, seatNumber: 4 } });
  expect(holdB.status).toBe(201);
  expect((await call(app, 'DELETE', `/v1/reservations/${holdB.body.reservationId}`, { token: qb })).status).toBe(204);
  const released = await call(app, 'GET', `/v1/reservations/${holdB.body.reservationId}`, { token: qb });
  expect(released.body.status).toBe('released');

  expect((await call(app, 'DELETE', '/v1/queue/me', { token: qb })).status).toBe(204);
  expect((await call(app, 'GET', '/v1/queue/me', { token: qb })).status).toBe(401);
}

/** Runs a step on both instances at once: the suite takes one engine's time, not the sum. */
async function onBoth(step: (svc: NodeService) => Promise<void>): Promise<void> {
  const all = await Promise.all(services.values());
  await Promise.all(all.map(async (svc) => {
    try {
      await step(svc);
    } catch (err) {
      throw new Error(`on ${svc.kind}: ${(err as Error).message}`);
    }
  }));
}

describe('npm run start:node on SQLite, node dist/main.js on PostgreSQL', () => {
  test('it is Node serving, with the database migrated by Node', () => onBoth(async (svc) => {
    expect(svc.output()).toMatch(/"msg":"listening".*"runtime":"node"/);
    const ready = await fetch(`${svc.base}/readyz`);
    expect(await ready.json()).toMatchObject({ status: 'ready', mode: 'redis' });
    const metrics = await fetch(`${svc.base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('# TYPE');
  }));

  test('a fan journey in redis mode', () => onBoth((svc) => journey(svc.app)), 30_000);

  test('errors: 400 bad input, 401 no or bad token, admin without a key, 413 too large a body', () => onBoth(async (svc) => {
    const notJson = await call(svc.app, 'POST', '/v1/tokens', { raw: '{"userId":' });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe('VALIDATION_FAILED');
    const badType = await call(svc.app, 'POST', '/v1/tokens', { body: { userId: 'x' } });
    expect(badType.status).toBe(400);
    expect(badType.body.error.message).toContain('userId');
    expect((await call(svc.app, 'GET', '/v1/queue/me')).status).toBe(401);
    const forged = await call(svc.app, 'GET', '/v1/queue/me', { token: 'not.a.token' });
    expect(forged.status).toBe(401);
    expect(forged.body.error.code).toBe('UNAUTHENTICATED');
    expect((await call(svc.app, 'GET', '/admin/status')).status).toBe(401);
    const big = await call(svc.app, 'POST', '/v1/tokens', { raw: `{"userId":1,"pad":"${'a'.repeat(17 * 1024)}"}` });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('PAYLOAD_TOO_LARGE');
  }));

  test('/openapi.json, and /docs with the renderer it finds in node_modules from dist/', () => onBoth(async (svc) => {
    const doc = await fetch(`${svc.base}/openapi.json`);
    expect(doc.status).toBe(200);
    expect(((await doc.json()) as { openapi: string }).openapi).toMatch(/^3\.1\./);
    expect((await fetch(`${svc.base}/docs`)).status).toBe(200);
    const script = await fetch(`${svc.base}/docs/api-reference.js`, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(script.status).toBe(200);
    expect(script.headers.get('content-encoding')).toBe('gzip');
    expect((await script.text()).length).toBeGreaterThan(1_000_000);
  }));

  test('the pages and their assets, copied to dist/ by the build', () => onBoth(async (svc) => {
    for (const path of ['/', '/concerts/1', '/admin']) {
      const page = await fetch(`${svc.base}${path}`, { headers: { 'Accept-Language': 'ko-KR,ko;q=0.9' } });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(await page.text()).toContain('<html lang="ko">');
    }
    for (const asset of ['fan.js', 'fan-concert.js', 'admin.js', 'pow-worker.js', 'site.css']) {
      const r = await fetch(`${svc.base}/assets/${asset}`);
      expect(r.status).toBe(200);
      expect((await r.text()).length).toBeGreaterThan(100);
    }
  }));

  test('CORS: a listed origin gets its preflight answered, another gets no CORS headers', () => onBoth(async (svc) => {
    const preflight = (origin: string) => fetch(`${svc.base}/v1/queue/me`, {
      method: 'OPTIONS',
      headers: { Origin: origin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
    });
    const ok = await preflight(ORIGIN);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const other = await preflight('https://elsewhere.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  }));

  test('the limiter keys on the socket address Node reports: a burst of token requests hits 429', () => onBoth(async (svc) => {
    const answers = await Promise.all(Array.from({ length: TOKEN_BURST + 10 }, () =>
      fetch(`${svc.base}/v1/tokens`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ userId: newUserId() }) })));
    expect(new Set(answers.map((r) => r.status))).toEqual(new Set([201, 429]));
    const limited = answers.find((r) => r.status === 429)!;
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');
    // The bucket refills at 10 a second: wait for room for the next test's tokens.
    await eventually(async () => (await call(svc.app, 'POST', '/v1/tokens', { body: { userId: newUserId() } })).status === 201, 5000, 100);
  }));

  test('with its Redis gone the instance serves from SQL: the same journey in sql mode', () => onBoth(async (svc) => {
    await svc.redis.stop();
    await eventually(async () => ((await (await fetch(`${svc.base}/readyz`)).json()) as { mode: string }).mode === 'sql', 20_000, 100);
    const status = await call(svc.app, 'GET', '/admin/status', { admin: true });
    expect(status.body.mode).toBe('sql');
    await journey(svc.app);
  }), 40_000);

  test('SIGTERM (to npm run start:node on SQLite): /readyz fails at once, requests are still served during the drain, exit 0', () => onBoth(async (svc) => {
    const sentAt = Date.now();
    svc.proc.kill('SIGTERM');
    await eventually(async () => (await fetch(`${svc.base}/readyz`)).status === 503, 2000, 20);
    const during = await fetch(`${svc.base}/healthz`);
    expect(during.status).toBe(200);
    expect(during.headers.get('connection')).toBe('close');
    const code = await Promise.race([svc.proc.exited, Bun.sleep(10_000).then(() => null)]);
    expect(code).toBe(0);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(1000);
    expect(svc.output()).toMatch(/"msg":"shut down".*"code":0/);
  }), 15_000);
});

test('nothing outside src/runtime/bun.ts reaches for Bun (it would break the Node build at run time)', async () => {
  const offenders: string[] = [];
  for await (const file of new Bun.Glob('src/**/*.ts').scan({ cwd: ROOT })) {
    if (file === 'src/runtime/bun.ts') continue;
    const code = (await Bun.file(join(ROOT, file)).text())
      .replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1'); // comments may name Bun
    for (const m of code.matchAll(/\bBun\.\w+|['"]bun:\w+['"]|['"]hono\/bun['"]|import\.meta\.(dir|file|path|main)\b/g)) offenders.push(`${file}: ${m[0]}`);
  }
  expect(offenders).toEqual([]);
});
