/**
 * The per-client limiter: a client is the user of a token whose signature and expiry hold, else
 * the address. Made-up Bearer values share their address's bucket (keyed on the raw header, each
 * would get a full burst of its own). POST /v1/tokens has its own, tighter per-address budget.
 * Addresses need a real socket: these tests serve the app with Bun.serve on loopback.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { loadConfig } from '../src/config.ts';
import { createContext } from '../src/context.ts';
import { createApp } from '../src/http/app.ts';
import { TOKEN_LEEWAY_SECONDS } from '../src/modules/tokens/jwt.ts';
import { call, userToken } from './helpers/http.ts';
import { newUserId } from './helpers/harness.ts';
import { ADMIN_KEY, JWT_SECRET, startService, type TestService } from './helpers/service.ts';

const PER_SECOND = 1;
const BURST = 10;
let svc: TestService;
beforeAll(async () => {
  svc = await startService({ env: { RATE_LIMIT_PER_SECOND: String(PER_SECOND), RATE_LIMIT_BURST: String(BURST) } });
});
afterAll(async () => { await svc.stop(); });

/** Another app on the same Redis and SQL with its own settings (and its own buckets). */
function appWith(env: Record<string, string>) {
  const config = loadConfig({
    JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'error', REDIS_URL: svc.redisProc.url, DATABASE_URL: svc.database.url, ...env,
  });
  return createApp(createContext(config, { db: svc.database.db, redis: svc.redis }));
}

async function overSocket<T>(app: ReturnType<typeof createApp>, body: (base: string) => Promise<T>): Promise<T> {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch });
  try {
    return await body(`http://127.0.0.1:${server.port}`);
  } finally {
    server.stop(true);
  }
}

/** The burst, plus what the bucket refilled while the requests ran. */
const allowedWithin = (startedMs: number, perSecond: number, burst: number) =>
  burst + Math.ceil(((Date.now() - startedMs) / 1000) * perSecond);

test('a verified user past the burst gets 429 RATE_LIMITED with Retry-After; another user is unaffected', async () => {
  const token = await userToken(svc.app, newUserId());
  const started = Date.now();
  const replies = await Promise.all(Array.from({ length: 30 }, () => call(svc.app, 'GET', '/v1/me/balance', { token })));
  const ok = replies.filter((r) => r.status === 200).length;
  const limited = replies.filter((r) => r.status === 429);
  expect(ok).toBeGreaterThanOrEqual(BURST);
  expect(ok).toBeLessThanOrEqual(allowedWithin(started, PER_SECOND, BURST));
  expect(ok + limited.length).toBe(30);
  expect(limited[0]!.body.error.code).toBe('RATE_LIMITED');
  expect(Number(limited[0]!.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
  const other = await userToken(svc.app, newUserId());
  expect((await call(svc.app, 'GET', '/v1/me/balance', { token: other })).status).toBe(200);
});

test('made-up Bearer values do not get a bucket each: they share their address', async () => {
  await overSocket(svc.app, async (base) => {
    const started = Date.now();
    const statuses = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      fetch(`${base}/v1/queue/me`, { headers: { Authorization: `Bearer junk-${i}.x.y` } }).then((r) => r.status)));
    const unauthenticated = statuses.filter((s) => s === 401).length;
    expect(unauthenticated).toBeGreaterThanOrEqual(BURST);
    expect(unauthenticated).toBeLessThanOrEqual(allowedWithin(started, PER_SECOND, BURST));
    expect(statuses.filter((s) => s === 429).length).toBe(30 - unauthenticated);

    // The address is spent; a verified user from that address has a bucket of its own.
    expect((await fetch(`${base}/v1/queue/me`, { headers: { Authorization: 'Bearer junk-again.x.y' } })).status).toBe(429);
    const token = await userToken(svc.app, newUserId());
    const mine = await fetch(`${base}/v1/me/balance`, { headers: { Authorization: `Bearer ${token}` } });
    expect(mine.status).toBe(200);
    // A well-signed but expired token is not a verified user: it counts against the address.
    const nowS = Math.floor(Date.now() / 1000);
    const expired = await svc.ctx.tokens.jwt.sign({ typ: 'user', sub: '5', jti: crypto.randomUUID(), iat: nowS - 60, exp: nowS - TOKEN_LEEWAY_SECONDS - 1 });
    expect((await fetch(`${base}/v1/me/balance`, { headers: { Authorization: `Bearer ${expired}` } })).status).toBe(429);
  });
});

test('POST /v1/tokens has its own per-address budget (TOKEN_RATE_LIMIT_PER_MINUTE / _BURST)', async () => {
  const app = appWith({ RATE_LIMIT_PER_SECOND: '1000', RATE_LIMIT_BURST: '1000', TOKEN_RATE_LIMIT_PER_MINUTE: '6', TOKEN_RATE_LIMIT_BURST: '3' });
  await overSocket(app, async (base) => {
    const signIn = () => fetch(`${base}/v1/tokens`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ userId: newUserId() }),
    });
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await signIn());
    // 6 a minute is one every 10 s: a test of a few seconds sees the burst only.
    expect(replies.map((r) => r.status)).toEqual([201, 201, 201, 429, 429]);
    const body = await replies[3]!.json() as { error: { code: string } };
    expect(body.error.code).toBe('RATE_LIMITED');
    expect(Number(replies[3]!.headers.get('Retry-After'))).toBeGreaterThanOrEqual(5);
    // Other endpoints of that address keep the general budget.
    expect((await fetch(`${base}/v1/concerts`)).status).toBe(200);
  });
});

test('behind a trusted proxy the address is the first X-Forwarded-For hop', async () => {
  const app = appWith({ TRUST_PROXY: 'true', RATE_LIMIT_PER_SECOND: '1000', TOKEN_RATE_LIMIT_PER_MINUTE: '6', TOKEN_RATE_LIMIT_BURST: '2' });
  const from = (addr: string) => call(app, 'POST', '/v1/tokens', { body: { userId: newUserId() }, headers: { 'X-Forwarded-For': `${addr}, 10.0.0.1` } });
  expect([(await from('203.0.113.1')).status, (await from('203.0.113.1')).status, (await from('203.0.113.1')).status]).toEqual([201, 201, 429]);
  expect((await from('203.0.113.2')).status).toBe(201);
});

test('TOKEN_RATE_LIMIT_PER_MINUTE=0 turns the sign-in budget off', async () => {
  const app = appWith({ RATE_LIMIT_PER_SECOND: '1000', RATE_LIMIT_BURST: '1000', TOKEN_RATE_LIMIT_PER_MINUTE: '0', TOKEN_RATE_LIMIT_BURST: '1' });
  await overSocket(app, async (base) => {
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${base}/v1/tokens`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ userId: newUserId() }) });
      expect(r.status).toBe(201);
    }
  });
});
