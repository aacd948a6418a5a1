/**
 * The fans' HTTP client: plain fetch against one of the service instances, a deadline on every
 * request, and every request appended to the history with what it carried and what came back.
 */
import { tokenFacts, type History, type HistoryOp, type OpKind, type Phase, type RunClock } from './history.ts';

export interface CallSpec {
  fan: number;
  userId: number;
  instance: number;
  op: OpKind;
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  token?: string;
  body?: unknown;
  idempotencyKey?: string;
  req?: HistoryOp['req'];
  /**
   * A request about several reservations (a payment of a list): recorded as one op per entry,
   * with the same times and answer, so that every rule judges each reservation on its own.
   */
  reqs?: NonNullable<HistoryOp['req']>[];
  phase?: Phase;
}

export interface CallResult {
  op: HistoryOp;
  body: any;
  /** Retry-After in ms (0 when absent). */
  retryAfterMs: number;
}

export class ChaosClient {
  private nextId = 1;

  constructor(
    private readonly baseUrls: () => string[],
    private readonly history: History,
    private readonly clock: RunClock,
    private readonly timeoutMs = 3_000,
  ) {}

  get instanceCount(): number {
    return this.baseUrls().length;
  }

  async call(spec: CallSpec): Promise<CallResult> {
    const headers: Record<string, string> = {};
    if (spec.body !== undefined) headers['Content-Type'] = 'application/json';
    if (spec.token) headers.Authorization = `Bearer ${spec.token}`;
    if (spec.idempotencyKey) headers['Idempotency-Key'] = spec.idempotencyKey;
    const op: HistoryOp = {
      id: this.nextId++, fan: spec.fan, userId: spec.userId, instance: spec.instance, op: spec.op, phase: spec.phase ?? 'run',
      invokeMs: this.clock.now(), completeMs: 0, status: 0, code: null,
      ...(spec.token ? { auth: tokenFacts(spec.token, this.clock) } : {}),
      ...(spec.req ? { req: spec.req } : {}),
    };
    let body: any = null;
    let retryAfterMs = 0;
    try {
      const res = await fetch(this.baseUrls()[spec.instance] + spec.path, {
        method: spec.method, headers, body: spec.body === undefined ? undefined : JSON.stringify(spec.body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await res.text();
      try { body = text ? JSON.parse(text) : null; } catch { body = text; }
      op.status = res.status;
      const ok = res.status >= 200 && res.status < 300;
      op.code = ok ? null : String(body?.error?.code ?? `HTTP_${res.status}`);
      if (res.status >= 500) {
        op.retryAfter = res.headers.get('Retry-After');
        if (res.status !== 503) op.error = String(body?.error?.message ?? text).slice(0, 200);
      }
      const ra = Number(res.headers.get('Retry-After'));
      if (Number.isFinite(ra) && ra > 0) retryAfterMs = ra * 1000;
      if (ok) op.res = this.facts(spec.op, body);
    } catch (err) {
      const e = err as Error;
      op.status = 0;
      op.code = e.name === 'TimeoutError' || e.name === 'AbortError' ? 'TIMEOUT' : 'NETWORK';
      op.error = e.message.slice(0, 120);
    }
    op.completeMs = this.clock.now();
    if (!spec.reqs?.length) {
      this.history.ops.push(op);
      return { op, body, retryAfterMs };
    }
    const ops = spec.reqs.map((req, i) => ({
      ...op, id: i === 0 ? op.id : this.nextId++, req,
      ...(op.res ? { res: { ...op.res, reservationId: req.reservationId } } : {}),
    }));
    this.history.ops.push(...ops);
    return { op: ops[0]!, body, retryAfterMs };
  }

  /** The body fields that matter to the checker, on the run's time axis. */
  private facts(kind: OpKind, b: any): HistoryOp['res'] {
    if (!b || typeof b !== 'object') return undefined;
    const r: NonNullable<HistoryOp['res']> = {};
    if (typeof b.token === 'string') r.token = tokenFacts(b.token, this.clock);
    if (typeof b.status === 'string') r.status = b.status;
    if (typeof b.position === 'number') r.position = b.position;
    if (typeof b.concertId === 'number') r.concertId = b.concertId;
    if (typeof b.activeUntil === 'string') r.activeUntilMs = this.clock.fromWall(b.activeUntil);
    if (typeof b.reservationId === 'string') r.reservationId = b.reservationId;
    if (typeof b.scheduleId === 'number') r.scheduleId = b.scheduleId;
    if (typeof b.seatNumber === 'number') r.seatNumber = b.seatNumber;
    if (typeof b.expiresAt === 'string' && kind !== 'token' && kind !== 'join') r.expiresAtMs = this.clock.fromWall(b.expiresAt);
    if (typeof b.paymentId === 'string') r.paymentId = b.paymentId;
    if (typeof b.balance === 'number') r.balance = b.balance;
    if (kind === 'seats' && Array.isArray(b.seats)) {
      const max = Math.max(0, ...b.seats.map((s: any) => Number(s.seatNumber) || 0));
      const letters = Array.from({ length: max }, () => '?');
      for (const s of b.seats) {
        const n = Number(s.seatNumber);
        if (n >= 1) letters[n - 1] = s.status === 'available' ? 'a' : s.status === 'held' ? 'h' : s.status === 'sold' ? 's' : '?';
      }
      r.seatMap = letters.join('');
    }
    return r;
  }
}
