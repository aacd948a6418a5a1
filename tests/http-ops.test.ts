/**
 * Operations endpoints (/healthz, /readyz, /metrics), request ids on every answer, and the
 * answer to a route that does not exist.
 */
import { expect, test } from 'bun:test';
import { loadConfig } from '../src/config.ts';
import { createContext } from '../src/context.ts';
import { createApp } from '../src/http/app.ts';
import { openDatabase } from '../src/store/connect.ts';
import { describeEach, newConcert, newUserId } from './helpers/harness.ts';
import { call, eventually, join, userToken } from './helpers/http.ts';
import { JWT_SECRET } from './helpers/service.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describeEach('operations', {}, (h) => {
  test('GET /healthz → 200', async () => {
    const r = await call(h.app, 'GET', '/healthz');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: 'ok' });
  });

  test('GET /readyz → 200 with the mode while SQL answers', async () => {
    const r = await call(h.app, 'GET', '/readyz');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'ready', mode: h.mode, sql: true });
  });

  test('GET /readyz without SQL: ready in Redis mode (polls go on), 503 in SQL mode', async () => {
    const config = loadConfig({ JWT_SECRET, LOG_LEVEL: 'silent', REDIS_URL: h.svc.redisProc.url, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    const db = openDatabase(config.databaseUrl, { poolSize: 1 });
    try {
      const ctx = createContext(config, { db, redis: h.svc.redis });
      const app = createApp(ctx);
      const inRedisMode = await call(app, 'GET', '/readyz');
      expect(inRedisMode.status).toBe(200);
      expect(inRedisMode.body).toMatchObject({ status: 'ready', mode: 'redis', sql: false, redis: true });
      ctx.mode.set('sql', 'test');
      const r = await call(app, 'GET', '/readyz');
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ status: 'unavailable', mode: 'sql', sql: false, redis: false });
      expect((await call(app, 'GET', '/healthz')).status).toBe(200);
    } finally {
      await db.destroy();
    }
  });

  test('GET /metrics → Prometheus text with requests by route pattern, queue gauges, write-behind and mode', async () => {
    const concert = await newConcert(h);
    await join(h.app, concert.id, await userToken(h.app, newUserId()));
    await call(h.app, 'GET', `/v1/concerts/${concert.id}/schedules`);
    // The gauges cover live concerts, a list read at most once a second: a new one shows soon.
    const gauge = new RegExp(`queue_waiting_users\\{concert="${concert.id}"\\} 1\\n`);
    const r = await eventually(async () => {
      const m = await call(h.app, 'GET', '/metrics');
      return gauge.test(m.body) && m;
    }, 3000, 100);
    expect(r.status).toBe(200);
    expect(r.headers.get('Content-Type')).toContain('text/plain');
    const text = r.body as string;
    expect(text).toContain('http_requests_total{route="/v1/tokens",method="POST",status="201"}');
    // Routes are labelled by their pattern, never by the raw path (bounded label values).
    expect(text).toContain('route="/v1/concerts/:concertId/schedules",method="GET",status="401"');
    expect(text).not.toContain(`/v1/concerts/${concert.id}/`);
    expect(text).toMatch(new RegExp(`queue_active_users\\{concert="${concert.id}"\\} 0\\n`));
    expect(text).toMatch(/write_behind_pending_entries \d+/);
    expect(text).toMatch(/write_behind_lag_seconds [\d.]+/);
    expect(text).toContain(`service_mode{mode="${h.mode}"} 1`);
    expect(text).toContain('http_request_duration_seconds_bucket');
  });

  test('X-Request-Id: echoed when sane, generated otherwise, on every answer', async () => {
    const echoed = await call(h.app, 'GET', '/healthz', { headers: { 'X-Request-Id': 'client-42.a:b_c' } });
    expect(echoed.headers.get('X-Request-Id')).toBe('client-42.a:b_c');
    const generated = await call(h.app, 'GET', '/healthz');
    expect(generated.headers.get('X-Request-Id')).toMatch(UUID);
    expect(generated.headers.get('X-Request-Id')).not.toBe((await call(h.app, 'GET', '/healthz')).headers.get('X-Request-Id'));
    for (const bad of ['has spaces in it', 'x'.repeat(129), '<script>', '']) {
      const r = await call(h.app, 'GET', '/healthz', { headers: { 'X-Request-Id': bad } });
      expect(r.headers.get('X-Request-Id')).toMatch(UUID);
    }
    // Error answers carry it too.
    for (const [method, path, opts] of [
      ['GET', '/nowhere', {}], ['POST', '/v1/tokens', { raw: '{' }], ['GET', '/v1/queue/me', {}], ['GET', '/admin/status', {}],
    ] as const) {
      const r = await call(h.app, method, path, { ...opts, headers: { 'X-Request-Id': 'trace-1' } });
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.headers.get('X-Request-Id')).toBe('trace-1');
    }
  });

  test('an unknown route or method → 404 NOT_FOUND as JSON', async () => {
    for (const [method, path] of [['GET', '/v2/tokens'], ['PUT', '/v1/tokens'], ['GET', '/v1/concerts/1/lineup'], ['POST', '/healthz']]) {
      const r = await call(h.app, method!, path!);
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('NOT_FOUND');
    }
  });
});
