import type { JoinTokenRecord } from '../../redis/script-calls.ts';
export type QueueStatus = 'waiting' | 'active';

export interface QueueConfig {
  maxActive: number;
  admitPerSecond: number;
  activeTtlSeconds: number;
  paused: boolean;
}

/** A user's place as the store sees it; positions and estimates are derived by the service. */
export interface QueuePlace {
  seq: number;
  status: QueueStatus;
  lastAdmitted: number;
  activeUntil: number;
  /** Observed admissions per second (0 when none observed yet). */
  observedRate: number;
  admitPerSecond: number;
  /** What the wait estimate needs (see eta.ts), read in the same round trip as the place. */
  paused: boolean;
  maxActive: number;
  /** Active slots in use now (unexpired). */
  activeCount: number;
  activeTtlSeconds: number;
  /** Measured at the last tick (see eta.ts); null before any. */
  meanHoldSeconds: number | null;
  spread: number;
}

export interface JoinOutcome extends QueuePlace {
  /** jti of the queue token this join replaced, when the user already had a place. */
  replacedJti: string | null;
  fresh: boolean;
}

export interface AdmitOutcome {
  admitted: number;
  skipped: number;
  expired: number;
  active: number;
  waiting: number;
  /** Redis mode: why this tick admitted nobody although some were due (SQL refused to record them). */
  unrecorded?: unknown;
}

export interface QueueCounts {
  waiting: number;
  active: number;
  admittedTotal: number;
  lastSeq: number;
  lastAdmitted: number;
}

/**
 * A place as its signed queue token names it: the entry number, the token's issue and expiry
 * (ms). What SQL mode needs to take back a place whose record Redis lost (SqlQueueStore.adopt).
 */
export interface UnrecordedPlace { concertId: number; userId: number; jti: string; seq: number; issuedAt: number; expiresAt: number }

/**
 * The waiting room's state. Redis mode and SQL mode are two implementations with the same
 * semantics, each part of its mode's Backend (src/backend).
 */
export interface QueueStore {
  /**
   * Takes a place for the queue token `jti`, or hands it the user's live place. `token`: what the
   * token's record says (Redis mode writes it behind, in the place's stream entry; SQL mode records
   * the token itself and ignores it).
   */
  join(concertId: number, userId: number, jti: string, now: number, token?: JoinTokenRecord): Promise<JoinOutcome>;
  poll(concertId: number, userId: number, jti: string, now: number): Promise<QueuePlace>;
  leave(concertId: number, userId: number, jti: string, now: number, reason: 'leave' | 'done'): Promise<void>;
  /** Throws UNAUTHENTICATED for an unknown token; reports whether the holder is admitted. */
  check(concertId: number, userId: number, jti: string, now: number): Promise<{ active: boolean; seq: number; activeUntil: number }>;
  /** One admission step for the tick starting at `tickId` (ms); null when another instance already took it. */
  admitTick(concertId: number, now: number, tickId: number): Promise<AdmitOutcome | null>;
  counts(concertId: number, now: number): Promise<QueueCounts>;
  applyConfig(concertId: number, config: QueueConfig): Promise<void>;
}
