import type { RedisClient } from '../../redis/connection.ts';
import type { Db } from '../../store/connect.ts';
import { MAX_LINE_USER_ID } from '../queue/line.ts';
import {
  drawAppliedFlag, dropPrequeued, pollPrequeued, putPrequeued, seenSince, type PrequeuePoll,
} from './prequeue.redis.ts';
import { markSeenSince, touchPrequeued } from './sale.repo.ts';

/**
 * The pre-queue's mode-dependent half. SQL records every pre-queued place in both modes; Redis
 * mode keeps the heartbeats in Redis (and the drawn line, once the draw is applied), SQL mode in SQL.
 */
export interface PrequeueStore {
  /** Throws when the user cannot be drawn into this mode's line. */
  assertDrawable(userId: number): void;
  /** A place SQL has just recorded (or known live), with a fresh heartbeat. */
  put(p: PrequeuePlace, now: number): Promise<void>;
  /**
   * A poll's heartbeat as this store keeps it; absent in SQL mode, where SQL's record (read by
   * the caller) is the only one. 'unknown': ask SQL.
   */
  readonly poll?: (p: PrequeuePlace, now: number, graceMs: number) => Promise<PrequeuePoll>;
  /** A heartbeat of a place SQL has live, last seen there at `lastSeenAt`; 'lapsed' when it came too late. */
  heartbeat(p: PrequeuePlace, lastSeenAt: number, now: number, graceMs: number): Promise<'ok' | 'lapsed'>;
  drop(concertId: number, userId: number): Promise<void>;
  /** True while a recorded draw is not all in this mode's line yet (joins wait). */
  drawPending(concertId: number): Promise<boolean>;
  /**
   * Before the draw: tells SQL which fans were seen polling since `cutoff`; answers the time from
   * which SQL's own heartbeats count (0: every fan still pre-queued counts as seen).
   */
  seenFrom(concertId: number, cutoff: number): Promise<number>;
}

export interface PrequeuePlace { concertId: number; userId: number; jti: string }

export class SqlPrequeueStore implements PrequeueStore {
  constructor(
    private readonly db: Db,
    /** When this instance moved to SQL mode (0 when it never did): heartbeats Redis saw before are unknown to SQL. */
    private readonly sqlSince: () => number,
  ) {}

  assertDrawable(): void {}

  async put(): Promise<void> {}

  async heartbeat(p: PrequeuePlace, lastSeenAt: number, now: number, graceMs: number): Promise<'ok' | 'lapsed'> {
    if (now - Math.max(lastSeenAt, this.sqlSince()) > graceMs) return 'lapsed';
    await touchPrequeued(this.db, p.concertId, p.userId, now);
    return 'ok';
  }

  async drop(): Promise<void> {}

  /** SQL mode's line is SQL's: a recorded draw is in it. */
  async drawPending(): Promise<boolean> {
    return false;
  }

  /** SQL cannot know the polls Redis saw before the switch: when it began after the window opened, all count. */
  async seenFrom(_concertId: number, cutoff: number): Promise<number> {
    return this.sqlSince() >= cutoff ? 0 : cutoff;
  }
}

export class RedisPrequeueStore implements PrequeueStore {
  /** Concerts whose draw this instance saw all in Redis's line (a lost flag is caught by joinQueue's check). */
  private readonly appliedSeen = new Set<number>();

  constructor(private readonly db: Db, private readonly redis: RedisClient) {}

  assertDrawable(userId: number): void {
    // A drawn place goes into the line's slot, which holds the user id in 32 bits (line.ts).
    if (userId > MAX_LINE_USER_ID) throw new Error(`user id ${userId} does not fit the waiting line's 32-bit slot`);
  }

  put(p: PrequeuePlace, now: number): Promise<void> {
    return putPrequeued(this.redis, p.concertId, p.userId, p.jti, now);
  }

  readonly poll = (p: PrequeuePlace, now: number, graceMs: number): Promise<PrequeuePoll> =>
    pollPrequeued(this.redis, p.concertId, p.userId, p.jti, now, graceMs);

  /** Redis learns the place again. */
  async heartbeat(p: PrequeuePlace, _lastSeenAt: number, now: number): Promise<'ok'> {
    await putPrequeued(this.redis, p.concertId, p.userId, p.jti, now);
    return 'ok';
  }

  async drop(concertId: number, userId: number): Promise<void> {
    await dropPrequeued(this.redis, concertId, userId).catch(() => {});
  }

  async drawPending(concertId: number): Promise<boolean> {
    if (this.appliedSeen.has(concertId)) return false;
    const flag = await drawAppliedFlag(this.redis, concertId);
    if (flag === 'pending') return true;
    // Not loaded: the load writes the drawn line from SQL.
    if (flag === 'applied') this.appliedSeen.add(concertId);
    return false;
  }

  /** The whole draw is in Redis's line (see SaleService.applyDraw). */
  markApplied(concertId: number): void {
    this.appliedSeen.add(concertId);
  }

  /** Redis lost the applied draw: look again before letting joins through. */
  forgetApplied(concertId: number): void {
    this.appliedSeen.delete(concertId);
  }

  async seenFrom(concertId: number, cutoff: number): Promise<number> {
    await markSeenSince(this.db, concertId, await seenSince(this.redis, concertId, cutoff), cutoff);
    return cutoff;
  }
}
