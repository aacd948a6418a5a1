/**
 * Any input, never a 500: arbitrary bodies (any JSON, any text, near-valid shapes), path
 * segments and headers (Authorization, X-Admin-Key, Content-Type, Idempotency-Key) against
 * every endpoint of the API, including tokens the server signed with arbitrary claims. The
 * only 5xx allowed is 503 (a store that cannot serve). Every error answer is the JSON error
 * shape, and every answer carries X-Request-Id.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { signJwt } from './helpers/idp.ts';
import { newUserId } from './helpers/harness.ts';
import { createConcert, eventually, join, userToken } from './helpers/http.ts';
import { ADMIN_KEY, startService, type TestService } from './helpers/service.ts';
import { fcRun } from './helpers/random.ts';

let svc: TestService;
let concertId: number;
let scheduleId: number;
let activeToken: string;
let waitingToken: string;
let plainToken: string;

beforeAll(async () => {
  // CORS on, so that preflights and Origin headers reach the CORS middleware's every branch.
  svc = await startService({ env: { CORS_ORIGINS: 'https://tickets.example' } });
  const c = await createConcert(svc.app, [{ seats: 5, price: 1000 }]);
  concertId = c.id;
  scheduleId = c.schedules[0]!.id;
  activeToken = (await join(svc.app, concertId, await userToken(svc.app, newUserId()))).body.token;
  await eventually(async () => (await svc.ctx.liveConcerts(Date.now())).includes(concertId), 3000, 50);
  await svc.ctx.ticker.tickOnce();
  waitingToken = (await join(svc.app, concertId, await userToken(svc.app, newUserId()))).body.token;
  plainToken = await userToken(svc.app, newUserId());
});
afterAll(async () => {
  await svc?.stop();
});

const RUNS = 150;
const ascii = (maxLength = 60) => fc.string({ unit: 'grapheme-ascii', maxLength });

/** Anything JSON.stringify can write, and text that is not JSON at all. */
const anyBody = fc.oneof(
  fc.json(),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.anything({ maxDepth: 3 }).map((v) => { try { return JSON.stringify(v) ?? 'undefined'; } catch { return String(v); } }),
  fc.constantFrom('', '{', '[', '{"a":', 'null', 'true', '0', '"x"', '{}', '[]', '\u0000', '{"__proto__":{"x":1}}'),
);

/** Shapes close to the real bodies, with fields of any type and value. */
const anyValue = fc.oneof(
  fc.integer(), fc.double(), fc.string({ maxLength: 20 }), fc.boolean(), fc.constant(null), fc.constant(undefined),
  fc.integer({ min: -2, max: 12 }), fc.constant(Number.MAX_SAFE_INTEGER + 2), fc.array(fc.integer(), { maxLength: 3 }),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
);
const nearValid = fc.oneof(
  fc.record({ userId: anyValue }, { requiredKeys: [] }),
  fc.record({
    title: fc.oneof(anyValue, fc.string({ maxLength: 210 })),
    schedules: fc.oneof(anyValue, fc.array(fc.record({
      date: fc.oneof(anyValue, fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4e12) }).map((d) => d.toISOString())),
      seats: fc.oneof(anyValue, fc.integer({ min: 1, max: 5 })),
      price: fc.oneof(anyValue, fc.integer({ min: 0, max: 100_000 })),
    }, { requiredKeys: [] }), { maxLength: 3 })),
  }, { requiredKeys: [] }),
  fc.record({ maxActive: anyValue, admitPerSecond: anyValue, activeTtlSeconds: anyValue, paused: anyValue, extra: anyValue }, { requiredKeys: [] }),
  fc.record({ scheduleId: fc.oneof(anyValue, fc.constant(-1)), seatNumber: anyValue }, { requiredKeys: [] }),
  fc.record({ amount: anyValue }, { requiredKeys: [] }),
  fc.record({ reservationId: fc.oneof(anyValue, fc.uuid().map((u) => `${concertId}-${u}`)) }, { requiredKeys: [] }),
  fc.record({
    reservationIds: fc.oneof(anyValue, fc.array(fc.oneof(anyValue, fc.uuid().map((u) => `${concertId}-${u}`)), { maxLength: 6 })),
    reservationId: anyValue,
  }, { requiredKeys: [] }),
  fc.record({ idToken: fc.oneof(anyValue, fc.string({ maxLength: 300 })), userId: anyValue }, { requiredKeys: [] }),
).map((v) => JSON.stringify(v));

const body = fc.oneof(anyBody, nearValid);

/** Path segments: numbers of every shape, and arbitrary text. */
const segment = fc.oneof(
  fc.integer({ min: -5, max: 1e6 }).map(String),
  fc.constantFrom('0', '1', '01', '1.5', '1e3', '9007199254740993', '999999999999999', '%', '%2F', '..', ' ', 'null'),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.uuid().map((u) => `${concertId}-${u}`),
);

/** Tokens the server signed itself, with arbitrary claims: they pass the signature check. */
const signedClaims = fc.record({
  typ: fc.oneof(fc.constantFrom('user', 'queue'), fc.string({ maxLength: 6 })),
  sub: fc.oneof(fc.integer({ min: 0, max: 1e15 }).map(String), fc.string({ maxLength: 16 })),
  jti: fc.oneof(fc.uuid(), fc.string({ maxLength: 40 })),
  cid: fc.oneof(fc.integer(), fc.constant(0).map(() => concertId), fc.constant(Number.MAX_SAFE_INTEGER), fc.double()),
  seq: fc.oneof(fc.integer(), fc.constant(1)),
  iat: fc.integer(),
  // undefined: no exp claim at all (JSON leaves it out), which is refused.
  exp: fc.oneof(fc.constant(4_000_000_000), fc.integer({ min: 0, max: 2e9 }), fc.constant(undefined)),
});

const authorization = fc.oneof(
  fc.constant(undefined),
  ascii().map((s) => `Bearer ${s}`),
  ascii(),
  fc.constantFrom('Bearer', 'Bearer ', 'bearer x.y.z', 'Basic dXNlcjpwYXNz'),
  fc.constantFrom('active', 'waiting', 'plain').map((k) => `Bearer ${{ active: activeToken, waiting: waitingToken, plain: plainToken }[k]}`),
  // Signed with the service's secret the way it signs (HS256): a synchronous signer, for fast-check.
  signedClaims.map((c) => `Bearer ${signJwt(c, { alg: 'HS256', secret: svc.config.jwtSecret })}`),
);

const headers = fc.record({
  Authorization: authorization,
  'X-Admin-Key': fc.oneof(fc.constant(undefined), fc.constant(ADMIN_KEY), ascii(30)),
  'Content-Type': fc.oneof(fc.constant('application/json'), fc.constant(undefined),
    fc.constantFrom('text/plain', 'application/json; charset=utf-8', 'multipart/form-data', 'application/x-www-form-urlencoded', 'application/vnd.api+json'),
    ascii(30)),
  'Idempotency-Key': fc.oneof(fc.constant(undefined), ascii(210), fc.uuid()),
  'X-Request-Id': fc.oneof(fc.constant(undefined), ascii(140)),
  Origin: fc.oneof(fc.constant(undefined), fc.constantFrom('https://tickets.example', 'null', 'http://127.0.0.1:3000'), ascii(40)),
  'Access-Control-Request-Method': fc.oneof(fc.constant(undefined), fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'), ascii(10)),
}, { requiredKeys: [] });

async function send(method: string, path: string, h: Record<string, string | undefined>, raw?: string) {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) clean[k] = v;
  const res = await svc.app.request(path, { method, headers: clean, body: method === 'GET' || method === 'HEAD' ? undefined : raw });
  const text = await res.text();
  return { method, status: res.status, text, headers: res.headers };
}

/** The invariant, checked on every answer. */
function expectSane(r: Awaited<ReturnType<typeof send>>, what: string) {
  if (r.status >= 500 && r.status !== 503) throw new Error(`${what} → ${r.status} ${r.text}`);
  expect(r.headers.get('X-Request-Id')).toBeTruthy();
  if (r.status >= 400 && r.method !== 'HEAD') {
    const b = JSON.parse(r.text);
    expect(typeof b.error.code).toBe('string');
    expect(typeof b.error.message).toBe('string');
  }
}

const endpoints: [string, string, (s: string, t: string) => string][] = [
  ['tokens', 'POST', () => '/v1/tokens'],
  ['challenge', 'GET', () => '/v1/challenge'],
  ['join', 'POST', (s) => `/v1/concerts/${s}/queue`],
  ['queue me', 'GET', () => '/v1/queue/me'],
  ['leave', 'DELETE', () => '/v1/queue/me'],
  ['concerts', 'GET', () => '/v1/concerts'],
  ['schedules', 'GET', (s) => `/v1/concerts/${s}/schedules`],
  ['seats', 'GET', (s, t) => `/v1/concerts/${s}/schedules/${t}/seats`],
  ['hold', 'POST', () => '/v1/reservations'],
  ['reservation', 'GET', (s) => `/v1/reservations/${s}`],
  ['release', 'DELETE', (s) => `/v1/reservations/${s}`],
  ['balance', 'GET', () => '/v1/me/balance'],
  ['my reservations', 'GET', () => '/v1/me/reservations'],
  ['charge', 'POST', () => '/v1/me/balance/charge'],
  ['pay', 'POST', () => '/v1/payments'],
  ['create concert', 'POST', () => '/admin/concerts'],
  ['queue stats', 'GET', (s) => `/admin/concerts/${s}/queue`],
  ['queue config', 'PATCH', (s) => `/admin/concerts/${s}/queue`],
  ['status', 'GET', () => '/admin/status'],
  ['rebuild', 'POST', () => '/admin/cache/rebuild'],
  ['ops', 'GET', (s) => `/${['healthz', 'readyz', 'metrics'][Math.abs(Number(s.length)) % 3]}`],
];

describe('any input, never a 500', () => {
  for (const [name, method, path] of endpoints) {
    test(`${method} ${name}`, async () => {
      const known = fc.constantFrom(String(concertId), String(scheduleId));
      await fc.assert(fc.asyncProperty(
        fc.oneof(segment, known), fc.oneof(segment, known), headers, body,
        async (s, t, h, b) => expectSane(await send(method, path(s, t), h, b), `${method} ${path(s, t)}`),
      ), fcRun(`${method} ${name}`, RUNS));
    }, 30_000);
  }

  test('any method on any path', async () => {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
      fc.array(segment, { maxLength: 5 }).map((s) => `/${s.join('/')}`),
      fc.constantFrom('', '/v1', '/admin', '/v1/concerts', '/v1/queue'),
      headers, body,
      async (m, p, prefix, h, b) => expectSane(await send(m, `${prefix}${p}`, h, b), `${m} ${prefix}${p}`),
    ), fcRun('any method on any path', RUNS));
  }, 30_000);

  test('the service still works afterwards', async () => {
    // A rebuild asked for above may still be running: joins wait for it (503) by design.
    await eventually(() => svc.ctx.mode.current === 'redis', 10_000, 50);
    const concert = await createConcert(svc.app);
    expect((await join(svc.app, concert.id, await userToken(svc.app, newUserId()))).status).toBe(201);
  });
});
