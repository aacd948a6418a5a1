import { createHash } from 'node:crypto';
import type { createApp } from '../../src/http/app.ts';
import { ADMIN_KEY } from './service.ts';

type App = ReturnType<typeof createApp>;

export interface Reply<T = any> { status: number; body: T; headers: Headers }

/** JSON request through app.request(): no port needed. */
export async function call<T = any>(app: App, method: string, path: string, opts: {
  body?: unknown; token?: string; admin?: boolean | string; headers?: Record<string, string>; raw?: string;
} = {}): Promise<Reply<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.body !== undefined || opts.raw !== undefined) headers['Content-Type'] ??= 'application/json';
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.admin) headers['X-Admin-Key'] = opts.admin === true ? ADMIN_KEY : opts.admin;
  const res = await app.request(path, {
    method, headers, body: opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
  });
  const text = await res.text();
  let body: any = text;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, body, headers: res.headers };
}

export function futureIso(daysAhead = 30): string {
  return new Date(Date.now() + daysAhead * 86_400_000).toISOString();
}

export async function createConcert(app: App, schedules = [{ seats: 10, price: 50_000 }], title = 'Test concert') {
  const r = await call(app, 'POST', '/admin/concerts', {
    admin: true,
    body: { title, schedules: schedules.map((s, i) => ({ date: futureIso(30 + i), ...s })) },
  });
  if (r.status !== 201) throw new Error(`create concert: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { id: number; schedules: { id: number; capacity: number; price: number }[] };
}

export async function userToken(app: App, userId: number): Promise<string> {
  const r = await call(app, 'POST', '/v1/tokens', { body: { userId } });
  if (r.status !== 201) throw new Error(`token: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.token;
}

/**
 * A join as a client makes it: without a body, and, when the service asks for a proof of work
 * (428 CHALLENGE_REQUIRED, JOIN_POW_BITS > 0), again with a solved challenge.
 */
export async function join(app: App, concertId: number, token: string) {
  const r = await call(app, 'POST', `/v1/concerts/${concertId}/queue`, { token });
  if (r.status !== 428) return r;
  const challenge = await call(app, 'GET', '/v1/challenge');
  if (challenge.status !== 200) return r;
  const { challenge: text, bits } = challenge.body as { challenge: string; bits: number };
  for (let i = 0; ; i++) {
    const nonce = i.toString(36);
    const word = createHash('sha256').update(`${text}:${nonce}`).digest().readUInt32BE(0);
    if (word >>> (32 - bits) === 0) {
      return call(app, 'POST', `/v1/concerts/${concertId}/queue`, { token, body: { pow: { challenge: text, nonce } } });
    }
  }
}

/** Polls a condition until it holds or the deadline passes; no sleeping for luck. */
export async function eventually<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 5000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await Bun.sleep(everyMs);
  }
}
