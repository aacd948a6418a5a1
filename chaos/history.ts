/**
 * The history of a run: every operation a fan (or the final checks) performed, with its
 * invocation and completion times on one clock, what it carried and what came back. The
 * checker (checker.ts) judges only this, plus the SQL facts read at the end.
 *
 * Times are milliseconds since the run started, from performance.now() (monotonic). Times the
 * service sends (expiresAt, activeUntil) are wall-clock; they are put on the same axis through
 * the wall-clock time of the start (the service runs on this machine, on the same clock).
 */

export type OpKind =
  | 'token' | 'charge' | 'challenge' | 'join' | 'poll' | 'leave' | 'schedules' | 'seats' | 'hold' | 'readRes' | 'release' | 'pay' | 'balance';

/** Writes whose success means the service accepted a change (for the unavailability measure). */
export const WRITE_OPS: ReadonlySet<OpKind> = new Set<OpKind>(['join', 'hold', 'pay']);

export interface TokenFacts {
  typ: 'user' | 'queue';
  jti: string;
  sub: number;
  cid?: number;
  seq?: number;
  /** Expiry on the run's axis (ms). */
  expMs: number;
}

export type Phase = 'run' | 'settle' | 'final';

export interface HistoryOp {
  id: number;
  /** Fan number; the harness's own calls carry the fan that owns the place or reservation. */
  fan: number;
  userId: number;
  instance: number;
  op: OpKind;
  phase: Phase;
  invokeMs: number;
  completeMs: number;
  /** HTTP status; 0 when no answer came (network error or timeout): indeterminate. */
  status: number;
  /** error.code of the answer, TIMEOUT / NETWORK for no answer, null on success. */
  code: string | null;
  retryAfter?: string | null;
  /** The bearer token the request carried. */
  auth?: TokenFacts;
  req?: {
    concertId?: number; reservationId?: string; scheduleId?: number; seatNumber?: number; idempotencyKey?: string; amount?: number;
    /** A join's proof-of-work challenge (JOIN_POW_BITS) and when it expires, on the run's axis. */
    challenge?: string; challengeExpiresMs?: number;
  };
  res?: {
    token?: TokenFacts;
    status?: string;
    position?: number;
    concertId?: number;
    activeUntilMs?: number;
    reservationId?: string;
    scheduleId?: number;
    seatNumber?: number;
    expiresAtMs?: number;
    paymentId?: string;
    balance?: number;
    /** Seat map: one letter per seat, seat n at index n-1: a(vailable), h(eld), s(old), ? other. */
    seatMap?: string;
  };
  /** Short text of a network error or a 5xx body, for reports. */
  error?: string;
}

export type FaultKind = 'kill' | 'freeze' | 'failover' | 'redis-down' | 'pg-restart' | 'app-kill';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'freeze', 'failover', 'redis-down', 'pg-restart', 'app-kill'];

export interface FaultRecord {
  id: number;
  kind: FaultKind;
  /** What was broken: "redis 127.0.0.1:40001", "app 1", "postgres". */
  target: string;
  startMs: number;
  /** When the heal finished (or when the harness stopped waiting for it). */
  healMs: number;
  notes: string[];
}

export interface ReadySample {
  instance: number;
  invokeMs: number;
  completeMs: number;
  status: number;
  /** The instance was down on purpose (app-kill): no answer is expected. */
  expectedDown: boolean;
}

export interface StatusSample {
  instance: number;
  atMs: number;
  mode: string | null;
  pending: number | null;
  lagSeconds: number | null;
}

/** An instance that exited while nobody meant it to. The harness restarts it, as a supervisor would. */
export interface CrashRecord {
  instance: number;
  atMs: number;
  how: string;
  /** Last lines of its log. */
  logTail: string;
  restartedMs: number | null;
}

export interface History {
  ops: HistoryOp[];
  faults: FaultRecord[];
  ready: ReadySample[];
  status: StatusSample[];
  crashes: CrashRecord[];
}

export function emptyHistory(): History {
  return { ops: [], faults: [], ready: [], status: [], crashes: [] };
}

/** One clock for the whole run: ms since start, and the conversion of service times to it. */
export class RunClock {
  private readonly perf0 = performance.now();
  readonly epoch0 = Date.now();

  now(): number {
    return Math.round((performance.now() - this.perf0) * 10) / 10;
  }

  /** An ISO time or epoch ms from the service, on the run's axis. */
  fromWall(value: string | number): number {
    const ms = typeof value === 'number' ? value : Date.parse(value);
    return ms - this.epoch0;
  }
}

/** The claims of a JWT, unverified: the harness only reads what the service put there. */
export function tokenFacts(token: string, clock: RunClock): TokenFacts | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return {
      typ: claims.typ, jti: String(claims.jti), sub: Number(claims.sub),
      ...(claims.cid !== undefined ? { cid: Number(claims.cid) } : {}),
      ...(claims.seq !== undefined ? { seq: Number(claims.seq) } : {}),
      expMs: clock.fromWall(Number(claims.exp) * 1000),
    };
  } catch {
    return undefined;
  }
}

export const answered = (o: HistoryOp) => o.status !== 0;
export const succeeded = (o: HistoryOp) => o.status >= 200 && o.status < 300;
/** Refused for now or no answer: says nothing about the state. */
export const indeterminate = (o: HistoryOp) => o.status === 0 || o.status === 503;

/** One line per op, for reports. */
export function formatOp(o: HistoryOp): string {
  const t = (ms: number) => `${(ms / 1000).toFixed(3)}s`;
  const auth = o.auth ? ` [${o.auth.typ}${o.auth.seq !== undefined ? ` c${o.auth.cid} seq=${o.auth.seq}` : ''} jti=${o.auth.jti.slice(0, 8)}]` : '';
  const req = o.req ? ` ${JSON.stringify(o.req)}` : '';
  const answer = o.status === 0 ? `no answer (${o.code}${o.error ? `: ${o.error}` : ''})` : `${o.status}${o.code ? ` ${o.code}` : ''}`;
  const res = o.res ? ` ${JSON.stringify(o.res, (k, v) => (k === 'token' && v ? `${v.typ}${v.seq !== undefined ? ` seq=${v.seq}` : ''} jti=${String(v.jti).slice(0, 8)}` : v))}` : '';
  const phase = o.phase === 'run' ? '' : ` (${o.phase})`;
  return `#${o.id} ${t(o.invokeMs)}..${t(o.completeMs)} fan ${o.fan} user ${o.userId} app${o.instance} ${o.op}${phase}${auth}${req} → ${answer}${res}`;
}

export function formatFault(f: FaultRecord): string {
  return `fault #${f.id} ${f.kind} ${f.target} ${(f.startMs / 1000).toFixed(3)}s..${(f.healMs / 1000).toFixed(3)}s${f.notes.length ? ` (${f.notes.join('; ')})` : ''}`;
}
