/**
 * CORS for the origins in CORS_ORIGINS (and nobody else; never on /admin), and the 16 KiB cap on
 * request bodies, chunked ones included.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { loadConfig } from '../src/config.ts';
import { createContext } from '../src/context.ts';
import { createApp } from '../src/http/app.ts';
import { newUserId } from './helpers/harness.ts';
import { call } from './helpers/http.ts';
import { ADMIN_KEY, JWT_SECRET, startService, type TestService } from './helpers/service.ts';

const SITE = 'https://tickets.example.com';
const DEV = 'http://localhost:5173';
const EVIL = 'https://evil.example';

let svc: TestService;
beforeAll(async () => {
  svc = await startService({ env: { CORS_ORIGINS: `${SITE}, ${DEV}/`, TRUST_PROXY: 'true', RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '3' } });
});
afterAll(async () => { await svc.stop(); });

const corsHeaders = (h: Headers) => [...h.keys()].filter((k) => k.toLowerCase().startsWith('access-control-'));
let client = 0;
/** Each test its own client address, so the limiter's buckets do not leak between tests. */
const address = () => `198.51.100.${++client}`;

function preflight(path: string, origin: string, addr = address()) {
  return svc.app.request(path, {
    method: 'OPTIONS',
    headers: {
      Origin: origin, 'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization, content-type, idempotency-key', 'X-Forwarded-For': addr,
    },
  });
}

describe('CORS', () => {
  test('a listed origin: preflight → 204 with the allowed methods and headers', async () => {
    for (const origin of [SITE, DEV]) {
      const r = await preflight('/v1/concerts/1/queue', origin);
      expect(r.status).toBe(204);
      expect(await r.text()).toBe('');
      expect(r.headers.get('Access-Control-Allow-Origin')).toBe(origin);
      expect(r.headers.get('Access-Control-Allow-Methods')).toBe('GET, POST, DELETE');
      expect(r.headers.get('Access-Control-Allow-Headers')).toBe('Authorization, Content-Type, Idempotency-Key, X-Request-Id');
      expect(r.headers.get('Vary')).toContain('Origin');
    }
  });

  test('preflight is not eaten by the Bearer check, the 404 or the rate limiter', async () => {
    const addr = address();
    expect((await preflight('/v1/queue/me', SITE, addr)).status).toBe(204);
    expect((await preflight('/v1/no/such/route', SITE, addr)).status).toBe(204);
    // Spend the address's bucket, then preflight again.
    const spent = await Promise.all(Array.from({ length: 6 }, () => call(svc.app, 'GET', '/v1/concerts', { headers: { 'X-Forwarded-For': addr } })));
    expect(spent.map((r) => r.status)).toContain(429);
    expect((await preflight('/v1/concerts', SITE, addr)).status).toBe(204);
  });

  test('a listed origin gets CORS headers on answers, errors included (401, 404, 429)', async () => {
    const addr = address();
    const get = (path: string) => call(svc.app, 'GET', path, { headers: { Origin: SITE, 'X-Forwarded-For': addr } });
    const replies = [await get('/v1/concerts'), await get('/v1/queue/me'), await get('/v1/nowhere'), await get('/v1/concerts')];
    expect(replies.map((r) => r.status)).toEqual([200, 401, 404, 429]);
    for (const r of replies) {
      expect(r.headers.get('Access-Control-Allow-Origin')).toBe(SITE);
      expect(r.headers.get('Access-Control-Expose-Headers')).toBe('X-Request-Id, Retry-After');
      expect(r.headers.get('Vary')).toContain('Origin');
    }
    expect(replies[3]!.headers.get('Retry-After')).toEqual(expect.any(String));
  });

  test('another origin gets no CORS header, and its preflight is refused', async () => {
    for (const origin of [EVIL, `${SITE}.evil.example`, 'null', 'https://TICKETS.example.com:444']) {
      const r = await call(svc.app, 'GET', '/v1/concerts', { headers: { Origin: origin, 'X-Forwarded-For': address() } });
      expect(r.status).toBe(200);
      expect(corsHeaders(r.headers)).toEqual([]);
      const p = await preflight('/v1/concerts', origin);
      expect(p.status).toBe(403);
      expect(corsHeaders(p.headers)).toEqual([]);
    }
  });

  test('admin routes never answer cross-origin, even to a listed origin', async () => {
    const r = await call(svc.app, 'GET', '/admin/status', { admin: true, headers: { Origin: SITE } });
    expect(r.status).toBe(200);
    expect(corsHeaders(r.headers)).toEqual([]);
    for (const path of ['/admin/concerts', '/admin/concerts/1/queue']) {
      const p = await preflight(path, SITE);
      expect(p.status).toBe(403);
      expect(corsHeaders(p.headers)).toEqual([]);
      expect(((await p.json()) as { error: { code: string } }).error.code).toBe('FORBIDDEN');
    }
  });

  test('without CORS_ORIGINS nobody gets CORS headers', async () => {
    const config = loadConfig({ JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'error', REDIS_URL: svc.redisProc.url, DATABASE_URL: svc.database.url });
    const app = createApp(createContext(config, { db: svc.database.db, redis: svc.redis }));
    const r = await call(app, 'GET', '/v1/concerts', { headers: { Origin: SITE } });
    expect(r.status).toBe(200);
    expect(corsHeaders(r.headers)).toEqual([]);
  });
});

describe('request bodies over 16 KiB', () => {
  const userCount = async () =>
    Number((await svc.database.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  /** A JSON body of exactly `bytes` bytes. */
  const bodyOf = (bytes: number) => {
    const head = `{"userId":${newUserId()},"pad":"`;
    return `${head}${'a'.repeat(bytes - head.length - 2)}"}`;
  };

  test('16 KiB + 1 → 413 PAYLOAD_TOO_LARGE, nothing recorded; exactly 16 KiB is read (and judged on its content)', async () => {
    const before = await userCount();
    const big = await call(svc.app, 'POST', '/v1/tokens', { raw: bodyOf(16 * 1024 + 1), headers: { 'X-Forwarded-For': address() } });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(big.body.error.message).toContain('16 KiB');
    const exact = await call(svc.app, 'POST', '/v1/tokens', { raw: bodyOf(16 * 1024), headers: { 'X-Forwarded-For': address() } });
    expect(exact.status).toBe(400); // the unknown "pad" field, not the size
    expect(await userCount()).toBe(before);
    const admin = await call(svc.app, 'POST', '/admin/concerts', { admin: true, raw: `{"title":"${'t'.repeat(17 * 1024)}"}` });
    expect(admin.status).toBe(413);
  });

  test('a chunked body without Content-Length is counted as it arrives', async () => {
    const framing: string[] = [];
    const server = Bun.serve({
      port: 0, hostname: '127.0.0.1',
      fetch: (req, srv) => {
        framing.push(`${req.headers.get('transfer-encoding')}/${req.headers.get('content-length')}`);
        return svc.app.fetch(req, srv);
      },
    });
    try {
      const send = (text: string) => {
        const bytes = new TextEncoder().encode(text);
        const stream = new ReadableStream<Uint8Array>({
          start(ctrl) {
            for (let i = 0; i < bytes.length; i += 1024) ctrl.enqueue(bytes.subarray(i, i + 1024));
            ctrl.close();
          },
        });
        return fetch(`http://127.0.0.1:${server.port}/v1/tokens`, {
          method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': address() }, body: stream,
        });
      };
      const big = await send(bodyOf(40 * 1024));
      expect(framing).toEqual(['chunked/null']);
      expect(big.status).toBe(413);
      expect(((await big.json()) as { error: { code: string } }).error.code).toBe('PAYLOAD_TOO_LARGE');
      const small = await send(JSON.stringify({ userId: newUserId() }));
      expect(small.status).toBe(201);
    } finally {
      server.stop(true);
    }
  });
});
