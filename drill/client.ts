/**
 * The drill's HTTP client: every request is recorded (operation, time, status, error code),
 * and none waits longer than its deadline, so a drill always ends.
 */

export type Op =
  | 'token' | 'charge' | 'join' | 'poll' | 'leave' | 'schedules' | 'hold' | 'readHold' | 'release' | 'pay' | 'status';

/** Operations that change state: a success is a write the service acknowledged. */
export const WRITE_OPS: ReadonlySet<Op> = new Set<Op>(['token', 'charge', 'join', 'leave', 'hold', 'release', 'pay']);

export interface Outcome<T = any> {
  op: Op;
  /** Epoch ms when the answer arrived. */
  at: number;
  ms: number;
  /** 0 when no HTTP answer came (network error, deadline). */
  status: number;
  /** The API's error code, or NETWORK / TIMEOUT, or null on success. */
  code: string | null;
  message?: string;
  body: T;
}

export interface CallOptions {
  body?: unknown;
  token?: string;
  admin?: boolean;
  idempotencyKey?: string;
}

export class DrillClient {
  readonly outcomes: Outcome[] = [];

  constructor(private readonly baseUrl: string, private readonly adminKey: string, private readonly timeoutMs = 10_000) {}

  async call<T = any>(op: Op, method: string, path: string, opts: CallOptions = {}): Promise<Outcome<T>> {
    const headers: Record<string, string> = {};
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.admin) headers['X-Admin-Key'] = this.adminKey;
    if (opts.idempotencyKey) headers['Idempotency-Key'] = opts.idempotencyKey;
    const started = Date.now();
    let outcome: Outcome<T>;
    try {
      const res = await fetch(this.baseUrl + path, {
        method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await res.text();
      let body: any = null;
      try { body = text ? JSON.parse(text) : null; } catch { body = text; }
      const ok = res.status >= 200 && res.status < 300;
      outcome = {
        op, at: Date.now(), ms: Date.now() - started, status: res.status, body,
        code: ok ? null : String(body?.error?.code ?? `HTTP_${res.status}`),
        message: ok ? undefined : body?.error?.message,
      };
    } catch (err) {
      const e = err as Error;
      const code = e.name === 'TimeoutError' || e.name === 'AbortError' ? 'TIMEOUT' : 'NETWORK';
      outcome = { op, at: Date.now(), ms: Date.now() - started, status: 0, code, message: e.message, body: null as T };
    }
    if (op !== 'status') this.outcomes.push(outcome);
    return outcome;
  }
}

export const ok = (o: Outcome) => o.status >= 200 && o.status < 300;

/** 503 and transport failures: the service refused for now, a client retries. */
export const retryable = (o: Outcome) => o.status === 503 || o.status === 0 || o.status === 429;
