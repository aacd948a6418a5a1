/**
 * Set-up through the public HTTP API (API.md): concerts, user tokens, joins, admission.
 * Nothing here reaches into the service's stores, so every target is prepared alike.
 */
import { BENCH_ADMIN_KEY } from './servers.ts';

export interface Reply<T = any> { status: number; body: T }

export class Api {
  constructor(readonly base: string) {}

  async call<T = any>(method: string, path: string, opts: {
    token?: string; body?: unknown; admin?: boolean; headers?: Record<string, string>; timeoutMs?: number;
  } = {}): Promise<Reply<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.admin) headers['X-Admin-Key'] = BENCH_ADMIN_KEY;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.base + path, {
      method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    let body: any = text;
    try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: res.status, body };
  }

  async expect<T = any>(status: number | number[], method: string, path: string, opts: Parameters<Api['call']>[2] = {}): Promise<T> {
    const r = await this.call<T>(method, path, opts);
    const ok = Array.isArray(status) ? status.includes(r.status) : r.status === status;
    if (!ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  }
}

/** Runs fn over items with at most `concurrency` in flight; keeps the order of results. */
export async function pmap<T, R>(items: T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return out;
}

const SETUP_CONCURRENCY = 32;

export interface Concert { id: number; schedules: { id: number; capacity: number; price: number }[] }

export async function createConcert(api: Api, title: string, schedules: { seats: number; price: number }[]): Promise<Concert> {
  const day = 86_400_000;
  return api.expect<Concert>(201, 'POST', '/admin/concerts', {
    admin: true, timeoutMs: 300_000,
    body: { title, schedules: schedules.map((s, i) => ({ date: new Date(Date.now() + (30 + i) * day).toISOString(), ...s })) },
  });
}

export async function configureQueue(api: Api, concertId: number, cfg: Record<string, number | boolean>): Promise<void> {
  await api.expect(200, 'PATCH', `/admin/concerts/${concertId}/queue`, { admin: true, body: cfg });
}

export async function queueStats(api: Api, concertId: number): Promise<{ waiting: number; active: number }> {
  return api.expect(200, 'GET', `/admin/concerts/${concertId}/queue`, { admin: true });
}

/** Hands out user ids that no other set-up of this target used. */
export class UserIds {
  private next: number;
  constructor(start = 1_000_000) { this.next = start; }
  take(n: number): number[] {
    const ids = Array.from({ length: n }, (_, i) => this.next + i);
    this.next += n;
    return ids;
  }
}

export async function userTokens(api: Api, ids: number[]): Promise<string[]> {
  return pmap(ids, SETUP_CONCURRENCY, async (userId) =>
    (await api.expect<{ token: string }>(201, 'POST', '/v1/tokens', { body: { userId } })).token);
}

export async function joinAll(api: Api, concertId: number, tokens: string[]): Promise<string[]> {
  return pmap(tokens, SETUP_CONCURRENCY, async (token) =>
    (await api.expect<{ token: string }>([200, 201], 'POST', `/v1/concerts/${concertId}/queue`, { token })).token);
}

/** Polls the admin view until at least n users are active (bounded). */
export async function waitActive(api: Api, concertId: number, n: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await queueStats(api, concertId);
    if (s.active >= n) return;
    if (Date.now() > deadline) throw new Error(`concert ${concertId}: ${s.active} of ${n} users admitted after ${timeoutMs} ms`);
    await Bun.sleep(200);
  }
}
