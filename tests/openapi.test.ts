/**
 * /openapi.json describes the service as it is: every route the app serves is in the document
 * and nothing else; a body the document calls invalid is refused with 400 VALIDATION_FAILED
 * naming the field, and its examples pass; real answers parse with exactly the documented
 * schema. /docs renders the document in a real Chromium without a CSP violation and without
 * a request to anywhere but this service.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import type { ZodType } from 'zod';
import * as responses from '../src/http/responses.ts';
import { artifact, launchBrowser } from './helpers/browser.ts';
import { describeEach, newConcert, newUserId, type Harness } from './helpers/harness.ts';
import { ADMIN_KEY, startService, type TestService } from './helpers/service.ts';
import { call, join, userToken, type Reply } from './helpers/http.ts';
import { ROOT } from './helpers/spawn.ts';
import { openSale } from './helpers/draw.ts';

type Json = any;
type App = TestService['app'];

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

async function openapi(app: App): Promise<Json> {
  const r = await call(app, 'GET', '/openapi.json');
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toStartWith('application/json');
  return r.body;
}

function operations(doc: Json): { method: string; path: string; op: Json }[] {
  return Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) =>
    Object.entries(item).filter(([method]) => METHODS.includes(method)).map(([method, op]) => ({ method, path, op })));
}

/** Follows a local `$ref` (`#/components/schemas/X`) to what it names. */
function resolve(doc: Json, node: Json): Json {
  if (!node?.$ref) return node;
  const target = (node.$ref as string).replace(/^#\//, '').split('/').reduce((at: Json, key) => at?.[key], doc);
  if (target === undefined) throw new Error(`unresolved $ref ${node.$ref}`);
  return resolve(doc, target);
}

/** The routes the Hono app answers, in OpenAPI form, without middleware (use() entries are method ALL). */
function servedRoutes(app: App): string[] {
  const routes = app.routes
    // Browsers' CORS preflights are answered by the protocol, not offered as operations.
    .filter((r) => r.method !== 'ALL' && r.method !== 'OPTIONS')
    .map((r) => `${r.method} ${r.path.replace(/\/+$/, '') || '/'}`.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}'));
  return [...new Set(routes)].sort();
}

/** A documented answer, found by the request's concrete path and status; its body is checked against its schema. */
function conformTo(doc: Json, method: string, path: string, reply: Reply): string {
  const found = operations(doc).find((o) => o.method === method.toLowerCase()
    && new RegExp(`^${o.path.replace(/\{\w+\}/g, '[^/]+')}$`).test(path.split('?')[0]!));
  if (!found) throw new Error(`${method} ${path} is not in the document`);
  const answer = found.op.responses[String(reply.status)];
  if (!answer) throw new Error(`${method} ${found.path} answered ${reply.status}, which the document does not list: ${JSON.stringify(reply.body)}`);
  const ref: string | undefined = answer.content?.['application/json']?.schema?.$ref;
  if (!ref) {
    expect(reply.body, `${method} ${found.path} ${reply.status} has no body in the document`).toBeNull();
    return `${method} ${found.path} ${reply.status}`;
  }
  const name = ref.split('/').pop()!;
  const schema = (responses as Record<string, ZodType>)[name[0]!.toLowerCase() + name.slice(1)];
  const parsed = schema!.safeParse(reply.body);
  if (!parsed.success) {
    throw new Error(`${method} ${found.path} ${reply.status} is not a ${name}: ${parsed.error.message}\n${JSON.stringify(reply.body)}`);
  }
  return `${method} ${found.path} ${reply.status}`;
}

/** Walks a schema (with its example value) and lists values that break one of its constraints. */
function violations(doc: Json, schemaNode: Json, example: Json, path: string[]): { path: string[]; value: Json; field: string; why: string }[] {
  const schema = resolve(doc, schemaNode);
  const field = path.join('.');
  const out: { path: string[]; value: Json; field: string; why: string }[] = [];
  const bad = (value: Json, why: string, at = path, name = field) => out.push({ path: at, value, field: name, why });
  if (schema.not && Object.keys(schema.not).length === 0) bad('anything', 'a field the schema forbids');
  if (schema.type === 'integer') {
    bad('1', 'a string for an integer');
    bad(1.5, 'a fraction');
    if (schema.minimum !== undefined) bad(schema.minimum - 1, 'below the minimum');
    if (schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER) bad(schema.maximum + 1, 'above the maximum');
  }
  if (schema.type === 'boolean') bad('yes', 'a string for a boolean');
  if (schema.type === 'string') {
    bad(42, 'a number for a string');
    if (schema.minLength) bad('', 'shorter than minLength');
    if (schema.maxLength) bad('x'.repeat(schema.maxLength + 1), 'longer than maxLength');
    if (schema.format === 'date-time') bad('next tuesday', 'not a date-time');
    if (schema.pattern) {
      // The first of a few unlike texts that the pattern refuses (a pattern may allow any word).
      const re = new RegExp(schema.pattern, 'u');
      const refused = ['not-matching', 'has space', '', '\u2603', 'x'.repeat(300)].find((t) => !re.test(t));
      if (refused !== undefined) bad(refused, 'against the pattern');
    }
  }
  if (schema.type === 'array') {
    bad('a list?', 'not a list');
    if (schema.minItems) bad([], 'fewer than minItems');
    if (schema.maxItems && Array.isArray(example) && example.length > 0) {
      bad(Array.from({ length: schema.maxItems + 1 }, () => example[0]), 'more than maxItems');
    }
    if (Array.isArray(example) && example.length > 0) out.push(...violations(doc, schema.items, example[0], [...path, '0']));
  }
  if (schema.type === 'object') {
    const props: Record<string, Json> = schema.properties ?? {};
    if (path.length > 0) bad('an object?', 'not an object');
    if (schema.additionalProperties === false) bad(1, 'an undocumented field', [...path, 'zzUndocumented'], [...path, 'zzUndocumented'].join('.'));
    for (const name of schema.required ?? []) bad(undefined, 'a required field left out', [...path, name], [...path, name].join('.'));
    for (const [name, prop] of Object.entries(props)) out.push(...violations(doc, prop, example?.[name], [...path, name]));
  }
  return out;
}

const withValue = (example: Json, path: string[], value: Json): Json => {
  const copy = structuredClone(example);
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key];
  if (value === undefined) delete at[path[path.length - 1]!];
  else at[path[path.length - 1]!] = value;
  return copy;
};

/**
 * Sends every documented request body: its example and the documented bounds must pass
 * validation; each value that breaks a documented constraint must be refused with 400
 * VALIDATION_FAILED naming the field. Returns how many refusals were checked.
 */
async function bodiesAsDocumented(app: App, doc: Json, fill: Record<string, string>, token?: string): Promise<number> {
  const send = (method: string, path: string, body: Json) => call(app, method.toUpperCase(), path.replace(/\{(\w+)\}/g, (_m, p) => fill[p]!), {
    body, token, headers: { 'X-Admin-Key': ADMIN_KEY },
  });
  let checked = 0;
  for (const { method, path, op } of operations(doc).filter((o) => o.op.requestBody)) {
    const media = op.requestBody.content['application/json'];
    const passes = await send(method, path, media.example);
    expect(passes.body?.error?.code, `${method} ${path} refused its own example: ${JSON.stringify(passes.body)}`).not.toBe('VALIDATION_FAILED');
    for (const v of violations(doc, media.schema, media.example, [])) {
      const r = await send(method, path, withValue(media.example, v.path, v.value));
      const what = `${method} ${path} with ${v.field} ${v.why} (${JSON.stringify(v.value)})`;
      expect(r.status, what).toBe(400);
      expect(r.body.error.code, what).toBe('VALIDATION_FAILED');
      expect(r.body.error.details.map((d: Json) => d.field), what).toContain(v.field);
      checked++;
    }
    const schema = resolve(doc, media.schema);
    for (const [name, prop] of Object.entries<Json>(schema.properties)) {
      if (prop.type !== 'integer' || !(name in media.example)) continue;
      for (const edge of [prop.minimum, prop.maximum]) {
        const r = await send(method, path, { ...media.example, [name]: edge });
        expect(r.body?.error?.code, `${method} ${path} with ${name} = ${edge}: ${JSON.stringify(r.body)}`).not.toBe('VALIDATION_FAILED');
      }
    }
  }
  return checked;
}

describeEach('openapi', {}, (h) => {
  let doc: Json;
  beforeAll(async () => {
    doc = await openapi(h.app);
  });

  test('the document looks like OpenAPI 3.1: every $ref resolves, every operation has answers and a unique id', () => {
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc.info.title).toBe('Ticketing API');
    const refs: string[] = [];
    const walk = (node: Json) => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') {
        if (typeof node.$ref === 'string') refs.push(node.$ref);
        Object.values(node).forEach(walk);
      }
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(20);
    for (const r of new Set(refs)) expect(() => resolve(doc, { $ref: r }), r).not.toThrow();
    const ids = new Set<string>();
    for (const { method, path, op } of operations(doc)) {
      const name = `${method} ${path}`;
      expect(Object.keys(op.responses ?? {}).length, `${name} has no responses`).toBeGreaterThan(0);
      expect(ids.has(op.operationId), `${name}: operationId ${op.operationId} is not unique`).toBe(false);
      ids.add(op.operationId);
      expect(op.tags?.length, `${name} has no tag`).toBe(1);
      const declared = (op.parameters ?? []).filter((p: Json) => p.in === 'path').map((p: Json) => p.name).sort();
      expect(declared, `${name}: path parameters`).toEqual([...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort());
      for (const s of op.security ?? []) for (const scheme of Object.keys(s)) expect(doc.components.securitySchemes[scheme], scheme).toBeDefined();
    }
    expect(doc.components.securitySchemes.adminKey).toEqual(expect.objectContaining({ type: 'apiKey', in: 'header', name: 'X-Admin-Key' }));
  });

  test('every route the app serves is in the document, and every documented route is served', () => {
    const documented = operations(doc).map(({ method, path }) => `${method.toUpperCase()} ${path}`).sort();
    const served = servedRoutes(h.app);
    expect(served.length).toBeGreaterThan(20);
    const undocumented = served.filter((r) => !documented.includes(r));
    const unserved = documented.filter((r) => !served.includes(r));
    expect(undocumented, `served but missing from src/http/openapi.ts: ${undocumented.join(', ')}`).toEqual([]);
    expect(unserved, `documented but not served: ${unserved.join(', ')}`).toEqual([]);
  });

  test('pages are in the document, tagged "pages", answering their own media types', () => {
    const pages = operations(doc).filter((o) => o.op.tags[0] === 'pages');
    expect(pages.map((o) => o.path)).toEqual(expect.arrayContaining(
      ['/', '/admin', '/assets/{name}', '/concerts/{concertId}', '/docs', '/docs/api-reference.js', '/openapi.json']));
    for (const { path, op } of pages) expect(op.responses['200'].content, path).toBeDefined();
    expect(Object.keys(doc.paths['/docs'].get.responses['200'].content)).toEqual(['text/html']);
  });

  test('a body the document calls invalid gets 400 VALIDATION_FAILED naming the field; its example and bounds pass', async () => {
    const concert = await newConcert(h, [{ seats: 5, price: 1000 }]);
    const token = await userToken(h.app, newUserId());
    const checked = await bodiesAsDocumented(h.app, doc, {
      concertId: String(concert.id), scheduleId: String(concert.schedules[0]!.id), id: `${concert.id}-6f1c2a0e-8b7d-4c3e-9a41-2d5b7e9f0c13`,
    }, token);
    expect(checked).toBeGreaterThan(40);
  });

  test('a path parameter or header the document calls invalid gets 400 VALIDATION_FAILED naming it', async () => {
    const token = await userToken(h.app, newUserId());
    let checked = 0;
    for (const { method, path, op } of operations(doc)) {
      for (const p of (op.parameters ?? []).filter((p: Json) => p.in === 'path' && p.schema.pattern)) {
        const concrete = path.replace(/\{(\w+)\}/g, (_m, name) => (name === p.name ? 'not-an-id' : '1'));
        const r = await call(h.app, method.toUpperCase(), concrete, { token, headers: { 'X-Admin-Key': ADMIN_KEY } });
        expect(r.status, `${method} ${concrete}`).toBe(400);
        expect(r.body.error.details.map((d: Json) => d.field), `${method} ${concrete}`).toContain(p.name);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(6);
    const key = doc.paths['/v1/me/balance/charge'].post.parameters.find((p: Json) => p.name === 'Idempotency-Key');
    expect(key.schema.pattern).toBe('^[\\x20-\\x7e]{1,200}$');
    for (const [value, status] of [['k'.repeat(200), 200], ['k'.repeat(201), 400]] as const) {
      const r = await call(h.app, 'POST', '/v1/me/balance/charge', { token, body: { amount: 1 }, headers: { 'Idempotency-Key': value } });
      expect(r.status, `Idempotency-Key of ${value.length}`).toBe(status);
      if (status === 400) expect(r.body.error.details).toEqual([{ field: 'Idempotency-Key', problem: expect.any(String) }]);
    }
  });

  test('real answers carry exactly the documented fields, under documented statuses', async () => {
    const seen: string[] = [];
    const exchange = async (method: string, path: string, opts: Parameters<typeof call>[3] = {}) => {
      const r = await call(h.app, method, path, opts);
      seen.push(conformTo(doc, method, path, r));
      return r;
    };
    const userId = newUserId();
    const user = (await exchange('POST', '/v1/tokens', { body: { userId } })).body.token as string;
    const created = await exchange('POST', '/admin/concerts', {
      admin: true, body: { title: 'Documented', schedules: [{ date: new Date(h.clock.now() + 86_400_000).toISOString(), seats: 4, price: 500 }] },
    });
    h.clock.advance(1001);
    const concertId = created.body.id as number;
    const scheduleId = created.body.schedules[0].id as number;
    await exchange('GET', '/v1/concerts');
    await exchange('GET', `/admin/concerts/${concertId}/queue`, { admin: true });
    await exchange('PATCH', `/admin/concerts/${concertId}/queue`, { admin: true, body: { admitPerSecond: 100 } });
    await exchange('GET', '/admin/status', { admin: true });
    await exchange('GET', '/healthz');
    await exchange('GET', '/readyz');
    await exchange('POST', '/v1/me/balance/charge', { token: user, body: { amount: 10_000 } });
    await exchange('GET', '/v1/me/balance', { token: user });
    const joined = await exchange('POST', `/v1/concerts/${concertId}/queue`, { token: user });
    const queue = joined.body.token as string;
    await exchange('POST', `/v1/concerts/${concertId}/queue`, { token: queue });
    await exchange('GET', '/v1/queue/me', { token: queue });
    await exchange('GET', `/v1/concerts/${concertId}/schedules`, { token: queue });
    await h.tick();
    await exchange('GET', '/v1/queue/me', { token: queue });
    await exchange('GET', `/v1/concerts/${concertId}/schedules`, { token: queue });
    await exchange('GET', `/v1/concerts/${concertId}/schedules/${scheduleId}/seats`, { token: queue });
    for (let i = 0; i < 2; i++) {
      await h.svc.ctx.sampler.sampleOnce(h.clock.now());
      h.clock.advance(h.svc.config.consoleSampleSeconds * 1000);
    }
    await exchange('GET', '/admin/overview', { admin: true });
    await exchange('GET', `/admin/concerts/${concertId}/samples?minutes=5`, { admin: true });
    await exchange('GET', `/admin/concerts/${concertId}/samples?minutes=0`, { admin: true });
    await exchange('GET', '/admin/concerts/987654321/samples', { admin: true });
    const held = await exchange('POST', '/v1/reservations', { token: queue, body: { scheduleId, seatNumber: 1 } });
    await exchange('POST', '/v1/reservations', { token: queue, body: { scheduleId, seatNumber: 1 } });
    const other = await exchange('POST', '/v1/reservations', { token: queue, body: { scheduleId, seatNumber: 2 } });
    await exchange('POST', '/v1/reservations', { token: queue, body: { scheduleId, seatNumber: 99 } });
    await exchange('GET', `/v1/reservations/${held.body.reservationId}`, { token: queue });
    await exchange('DELETE', `/v1/reservations/${other.body.reservationId}`, { token: queue });
    await exchange('GET', '/v1/me/reservations', { token: queue });
    await exchange('POST', '/v1/payments', { token: queue, body: { reservationId: held.body.reservationId }, headers: { 'Idempotency-Key': `pay-${userId}` } });
    await exchange('POST', '/v1/payments', { token: queue, body: { reservationId: held.body.reservationId } });
    await exchange('POST', '/v1/tokens', { body: { userId: 0 } });
    const again = (await exchange('POST', '/v1/tokens', { body: { userId: newUserId() } })).body.token as string;
    const second = (await join(h.app, concertId, again)).body.token as string;
    await h.tick();
    await exchange('POST', '/v1/reservations', { token: second, body: { scheduleId, seatNumber: 1 } });
    await exchange('DELETE', '/v1/queue/me', { token: second });
    await exchange('GET', '/v1/queue/me', { token: second });
    await exchange('GET', '/admin/status', { admin: 'wrong' });
    // A scheduled sale: its detail, the draw before and after, moving the opening, a pre-queued fan.
    await exchange('GET', `/v1/concerts/${concertId}`);
    await exchange('GET', `/v1/concerts/${concertId}/draw`);
    await exchange('PATCH', `/admin/concerts/${concertId}`, { admin: true, body: { saleStartsAt: new Date(h.clock.now() + 60_000).toISOString() } });
    const sale = await exchange('POST', '/admin/concerts', {
      admin: true,
      body: { title: 'Scheduled', saleStartsAt: new Date(h.clock.now() + 60_000).toISOString(), schedules: [{ date: new Date(h.clock.now() + 86_400_000).toISOString(), seats: 2, price: 500 }] },
    });
    h.clock.advance(1001);
    const saleId = sale.body.id as number;
    const opensAt = new Date(h.clock.now() + 120_000).toISOString();
    await exchange('PATCH', `/admin/concerts/${saleId}`, { admin: true, body: { saleStartsAt: opensAt } });
    await exchange('GET', `/v1/concerts/${saleId}`);
    await exchange('GET', `/v1/concerts/${saleId}/draw`);
    const early = (await exchange('POST', '/v1/tokens', { body: { userId: newUserId() } })).body.token as string;
    const pre = await exchange('POST', `/v1/concerts/${saleId}/queue`, { token: early, body: { drawNonce: '0123456789abcdef0123456789abcdef' } });
    await exchange('GET', '/v1/queue/me', { token: pre.body.token });
    await openSale(h, opensAt);
    await exchange('GET', `/v1/concerts/${saleId}/draw`);
    await exchange('PATCH', `/admin/concerts/${saleId}`, { admin: true, body: { saleStartsAt: new Date(h.clock.now() + 60_000).toISOString() } });
    expect(seen).toEqual(expect.arrayContaining([
      'GET /v1/concerts/{concertId} 200', 'GET /v1/concerts/{concertId}/draw 404', 'GET /v1/concerts/{concertId}/draw 409',
      'GET /v1/concerts/{concertId}/draw 200', 'PATCH /admin/concerts/{concertId} 200', 'PATCH /admin/concerts/{concertId} 409',
      'POST /v1/concerts/{concertId}/queue 201',
    ]));
    expect(seen).toEqual(expect.arrayContaining([
      'POST /v1/concerts/{concertId}/queue 201', 'POST /v1/concerts/{concertId}/queue 200', 'POST /v1/reservations 201',
      'POST /v1/reservations 200', 'POST /v1/reservations 404', 'POST /v1/reservations 409', 'POST /v1/payments 201',
      'DELETE /v1/queue/me 204', 'GET /v1/queue/me 401', 'GET /v1/concerts/{concertId}/schedules 403', 'POST /v1/tokens 400',
      'GET /admin/status 403', 'GET /admin/overview 200', 'GET /admin/concerts/{concertId}/samples 200',
      'GET /admin/concerts/{concertId}/samples 400', 'GET /admin/concerts/{concertId}/samples 404',
    ]));
  });
});

describeEach('openapi with AUTH_MODE=jwt', {
  modes: ['redis'], sqlTargets: ['sqlite'],
  env: { AUTH_MODE: 'jwt', AUTH_SHARED_SECRET: 'an-identity-provider-secret-of-32-bytes+' },
}, (h) => {
  test('POST /v1/tokens is documented with the identity token body the route then validates', async () => {
    const doc = await openapi(h.app);
    const media = doc.paths['/v1/tokens'].post.requestBody.content['application/json'];
    expect(media.schema.$ref).toEndWith('/IdTokenRequest');
    expect(resolve(doc, media.schema).required).toEqual(['idToken']);
    expect(doc.paths['/v1/tokens'].post.responses['401']).toBeDefined();
    // Only the token body: the others need tokens that only the identity provider could sign here.
    const tokensOnly = { ...doc, paths: { '/v1/tokens': doc.paths['/v1/tokens'] } };
    expect(await bodiesAsDocumented(h.app, tokensOnly, {})).toBeGreaterThan(3);
  });
});

describe('/docs in a real browser', () => {
  let svc: TestService;
  let server: ReturnType<typeof Bun.serve>;
  beforeAll(async () => {
    svc = await startService();
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
  });
  afterAll(async () => {
    await server?.stop(true);
    await svc?.stop();
  });

  test('renders the API title and its operations from our own assets: no CSP violation, no request off this host', async () => {
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const offHost: string[] = [];
      const problems: string[] = [];
      page.on('request', (req) => {
        const url = new URL(req.url());
        if ((url.protocol === 'http:' || url.protocol === 'https:' || url.protocol === 'ws:') && url.hostname !== '127.0.0.1') offHost.push(req.url());
      });
      page.on('console', (msg) => {
        if (/Content Security Policy|Refused to/i.test(msg.text())) problems.push(msg.text());
      });
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      const origin = `http://127.0.0.1:${server.port}`;
      const res = await page.goto(`${origin}/docs`);
      expect(res?.status()).toBe(200);
      const csp = res?.headers()['content-security-policy'] ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);

      await page.getByRole('heading', { name: 'Ticketing API' }).first().waitFor({ timeout: 30_000 });
      for (const summary of ['Join a concert\'s queue', 'Hold a seat', 'Pay for held seats', 'Create a concert', 'Liveness']) {
        await page.getByText(summary, { exact: true }).first().waitFor({ timeout: 10_000 });
      }
      const shot = artifact('docs', 'docs');
      await page.screenshot({ path: shot });
      // The README's picture is refreshed on request only: a run leaves tracked files alone.
      if (process.env.UPDATE_DOCS_SCREENSHOTS === '1') {
        mkdirSync(joinPath(ROOT, 'docs', 'screenshots'), { recursive: true });
        copyFileSync(shot, joinPath(ROOT, 'docs', 'screenshots', 'docs.png'));
      }
      expect(problems).toEqual([]);
      expect(offHost).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 90_000);
});
