import { afterAll, beforeAll, expect, test } from 'bun:test';
import { call } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';

let svc: TestService;
beforeAll(async () => {
  svc = await startService({ env: { RATE_LIMIT_PER_SECOND: '5', RATE_LIMIT_BURST: '10' } });
});
afterAll(async () => { await svc.stop(); });

test('one client past its burst gets 429 RATE_LIMITED with Retry-After; another client is unaffected', async () => {
  const token = 'Bearer aaa.bbb.ccc';
  const replies = await Promise.all(Array.from({ length: 30 }, () =>
    call(svc.app, 'GET', '/v1/queue/me', { headers: { Authorization: token } })));
  const limited = replies.filter((r) => r.status === 429);
  // The burst lets 10 through (as 401: the token is garbage); the rest are limited.
  expect(replies.filter((r) => r.status === 401).length).toBe(10);
  expect(limited.length).toBe(20);
  expect(limited[0]!.body.error.code).toBe('RATE_LIMITED');
  expect(Number(limited[0]!.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
  const other = await call(svc.app, 'GET', '/v1/queue/me', { headers: { Authorization: 'Bearer xxx.yyy.zzz' } });
  expect(other.status).toBe(401);
});

test('clients are told apart by address when served over HTTP', async () => {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) {
      const res = await fetch(`http://127.0.0.1:${server.port}/v1/tokens`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ userId: 1000 + i }),
      });
      statuses.push(res.status);
    }
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThanOrEqual(10);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(1);
  } finally {
    server.stop(true);
  }
});
