import type { Config } from '../../config.ts';
import { errors } from '../../errors.ts';
import { ScriptCode, scriptError } from '../../redis/codes.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { awaitReplicas } from '../../redis/replication.ts';
import * as script from '../../redis/script-calls.ts';
import { MAX_LINE_USER_ID } from './line.ts';
import { ETA_AGE_BUCKETS, ETA_GAP_TICKS, ETA_WINDOW_MS } from './eta.ts';
import type { AdmitOutcome, JoinOutcome, QueueConfig, QueueCounts, QueuePlace, QueueStore } from './types.ts';

/** Loads a concert's queue counters and config into Redis when they are missing. */
export type QueueLoader = (concertId: number) => Promise<void>;

/**
 * Reserves entry numbers in SQL up to `upTo` for Redis mode; answers the ceiling SQL then has
 * (reserveEntryNumbers).
 */
export type EntryNumberReserver = (concertId: number, upTo: number) => Promise<number>;

/**
 * Entry numbers reserved in SQL at a time. A join reserves more once fewer than half are left, in
 * the background, so only the first join of a loaded queue (or one after a burst outran the
 * reservation) waits for SQL. A concert whose joins come faster reserves about a second of them
 * at a time (reservationSize). SQL mode numbers above the reservation: after a switch, its first
 * fans' positions count the reserved numbers nobody holds, until admission passes them.
 */
export const ENTRY_NUMBER_BLOCK = 100;

/** Reservations one join waits for at most before it answers 503 (each serves every join then waiting). */
const MAX_RESERVATION_ROUNDS = 8;

/** An admission a tick is about to make, as SQL records it. */
export interface PendingAdmission { userId: number; seq: number; activeUntil: number }

/** Commits a tick's admissions to SQL (idempotent: the stream delivers them again later). */
export type AdmissionRecorder = (concertId: number, admissions: PendingAdmission[], now: number) => Promise<void>;

const MAX_SCAN_PER_TICK = 5000;
/** Lapsed active slots one tick frees at most; a backlog (after a stall) is freed over the next ticks. */
export const MAX_EXPIRE_PER_TICK = 1000;
const ETA = { windowMs: ETA_WINDOW_MS, gapTicks: ETA_GAP_TICKS, ageBuckets: ETA_AGE_BUCKETS };

export class RedisQueueStore implements QueueStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly config: Config,
    private readonly loadQueue: QueueLoader,
    private readonly reserveNumbers: EntryNumberReserver,
    private readonly recordAdmissions?: AdmissionRecorder,
  ) {}

  /** This instance's reservation under way, per concert: concurrent joins share it. */
  private readonly reserving = new Map<number, Promise<void>>();
  /** Joins of this instance that found no number left, per concert, until they end: the next reservation covers them all. */
  private readonly starved = new Map<number, number>();
  /** New places this instance gave per concert: this second's count and the last second's. */
  private readonly joinRate = new Map<number, { second: number; count: number; last: number }>();

  /**
   * Numbers to reserve at a time for a concert: a block, or about a second of this instance's
   * joins when they come faster, so that reservations (each a SQL transaction on the concert's
   * state row, which the write-behind also holds while it applies a batch) stay a few a second
   * and the next one is under way long before the numbers run out.
   */
  private reservationSize(concertId: number): number {
    const r = this.joinRate.get(concertId);
    return Math.max(ENTRY_NUMBER_BLOCK, r ? Math.max(r.count, r.last) : 0);
  }

  private countJoin(concertId: number, now: number): void {
    const second = Math.floor(now / 1000);
    const r = this.joinRate.get(concertId);
    if (!r) this.joinRate.set(concertId, { second, count: 1, last: 0 });
    else if (r.second === second) r.count++;
    else {
      r.last = r.second === second - 1 ? r.count : 0;
      r.second = second;
      r.count = 1;
    }
  }

  async join(concertId: number, userId: number, jti: string, now: number, token?: script.JoinTokenRecord): Promise<JoinOutcome> {
    // The line's slot holds the user id in 32 bits (line.ts): a larger id would alias another user.
    if (userId > MAX_LINE_USER_ID) throw new Error(`user id ${userId} does not fit the waiting line's 32-bit slot`);
    const call = () => script.joinQueue(this.redis, { concertId, userId, jti, now, graceMs: this.config.queueGraceSeconds * 1000, token });
    let r = await call();
    // Load the queue (once more at most), reserve entry numbers: a burst of joins waits together
    // and the reservation is sized for all of them, so a few rounds serve any burst (joins of other
    // instances may still use up a reservation between it and this join's next call).
    let starved = false;
    try {
      for (let loads = 0, reservations = 0; loads < 2 && reservations < MAX_RESERVATION_ROUNDS;) {
        if (r.code === ScriptCode.NoQueue) {
          loads++;
          await this.loadQueue(concertId);
        } else if (r.code === ScriptCode.SeqCeiling) {
          reservations++;
          if (!starved) this.starved.set(concertId, (this.starved.get(concertId) ?? 0) + 1);
          starved = true;
          await this.reserve(concertId, r.lastSeq);
        } else break;
        r = await call();
      }
    } finally {
      if (starved) {
        const left = this.starved.get(concertId)! - 1;
        if (left > 0) this.starved.set(concertId, left);
        else this.starved.delete(concertId);
      }
    }
    if (r.code === ScriptCode.SeqCeiling) throw errors.unavailable('the waiting line is busy; join again', 1);
    if (r.code !== ScriptCode.Ok) throw scriptError(r.code);
    if (r.fresh) this.countJoin(concertId, now);
    if (r.fresh && r.seqCeiling - r.seq < this.reservationSize(concertId) / 2) {
      // Ahead of need, off this join's path; a failure shows up in the join that needs it.
      this.reserve(concertId, r.seq).catch(() => {});
    }
    try {
      await this.replicated();
    } catch (err) {
      // Not acknowledged. A place whose token's record went with it into the stream stays: its
      // retry claims the same token id and is handed this very place (a fan who never retries
      // lets it lapse). One without (its caller records the token) would leave SQL an entry
      // without a token: it goes.
      if (r.fresh && !token) await this.leave(concertId, userId, jti, now, 'leave').catch(() => {});
      throw err;
    }
    const { code: _, seqCeiling: __, ...place } = r;
    return place;
  }

  /**
   * Reserves the numbers past `lastSeq` in SQL, then lets Redis give them out (one reservation
   * under way per concert): a block, or twice the joins waiting for numbers when more wait.
   */
  private reserve(concertId: number, lastSeq: number): Promise<void> {
    const running = this.reserving.get(concertId);
    if (running) return running;
    const run = (async () => {
      const size = Math.max(this.reservationSize(concertId), 2 * (this.starved.get(concertId) ?? 0));
      const ceiling = await this.reserveNumbers(concertId, lastSeq + size);
      await script.raiseSeqCeiling(this.redis, { concertId, ceiling });
    })().finally(() => this.reserving.delete(concertId));
    this.reserving.set(concertId, run);
    return run;
  }

  private replicated(): Promise<void> {
    return awaitReplicas(this.redis, this.config.redisWaitReplicas, this.config.redisWaitTimeoutMs);
  }

  async poll(concertId: number, userId: number, jti: string, now: number): Promise<QueuePlace> {
    const r = await script.pollQueue(this.redis, { concertId, userId, jti, now, graceMs: this.config.queueGraceSeconds * 1000 });
    if (r.code !== ScriptCode.Ok) throw scriptError(r.code);
    // The decoded reply is the place (its `code` rides along): no copy on the hot path.
    return r;
  }

  async leave(concertId: number, userId: number, jti: string, now: number, reason: 'leave' | 'done'): Promise<void> {
    const r = await script.leaveQueue(this.redis, { concertId, userId, jti, now, event: reason });
    if (r.code !== ScriptCode.Ok) throw scriptError(r.code);
  }

  async check(concertId: number, userId: number, jti: string, now: number) {
    const r = await script.checkQueueToken(this.redis, { concertId, userId, jti, now });
    if (r.code === ScriptCode.UnknownToken) throw scriptError(ScriptCode.UnknownToken);
    return { active: r.code === ScriptCode.Ok, seq: r.seq, activeUntil: r.activeUntil };
  }

  /**
   * One admission tick. With a recorder, the admissions are committed to SQL before Redis makes
   * them: the tick first asks Redis whom it would admit (peekAdmissions), records those in SQL,
   * then admits only them (admitNext with the list). A fan who sees `active` is thus active in
   * SQL already, so SQL mode never answers `waiting` after Redis said `active`. The reverse can
   * happen and is harmless: an entry SQL recorded that Redis then did not admit (it left, or
   * another instance took the tick) is admitted in SQL a moment early, and its leave reaches SQL
   * through the stream. While SQL refuses the record, ticks admit nobody (they still free the
   * slots whose time is up) and say why (`unrecorded`); after a refusal, SQL is asked again
   * one tick later, so that a SQL that hangs costs one timeout per tick, not one per concert.
   */
  async admitTick(concertId: number, now: number, tickId: number): Promise<AdmitOutcome | null> {
    const tick: script.TickInput = {
      concertId, now, tickId, graceMs: this.config.queueGraceSeconds * 1000, tickMs: this.config.admissionTickMs,
      maxScan: MAX_SCAN_PER_TICK,
    };
    let approved: number[] | undefined;
    let unrecorded: unknown;
    if (this.recordAdmissions) {
      const peek = () => script.peekAdmissions(this.redis, tick);
      let p = await peek();
      if (p.code === ScriptCode.NoQueue) {
        await this.loadQueue(concertId);
        p = await peek();
      }
      if (p.code !== ScriptCode.Ok) return null;
      const activeUntil = p.activeUntil;
      const admissions: PendingAdmission[] = p.admissions.map((a) => ({ ...a, activeUntil }));
      approved = [];
      if (admissions.length > 0 && now < this.recordRefusedUntil) {
        unrecorded = this.recordRefusal;
      } else if (admissions.length > 0) {
        try {
          await this.recordAdmissions(concertId, admissions, now);
          approved = admissions.map((a) => a.seq);
        } catch (err) {
          unrecorded = this.recordRefusal = err;
          this.recordRefusedUntil = now + this.config.admissionTickMs;
        }
      }
    }
    const call = () => script.admitNext(this.redis, { ...tick, maxExpire: MAX_EXPIRE_PER_TICK, eta: ETA, approved });
    let r = await call();
    if (r.code === ScriptCode.NoQueue) {
      await this.loadQueue(concertId);
      r = await call();
    }
    if (r.code !== ScriptCode.Ok) return null;
    if (r.admitted > 0) await this.replicated();
    const { code: _, ...outcome } = r;
    return { ...outcome, ...(unrecorded === undefined ? {} : { unrecorded }) };
  }

  /** The last refusal to record admissions, and until when (the caller's clock) SQL is not asked again. */
  private recordRefusal: unknown;
  private recordRefusedUntil = 0;

  async counts(concertId: number, now: number): Promise<QueueCounts> {
    const [[, active], [, meta]] = (await this.redis.multi()
      .zcount(keys.active(concertId), `(${now}`, '+inf')
      .hmget(keys.queueMeta(concertId), 'admittedTotal', 'lastSeq', 'lastAdmitted', 'waiting')
      .exec()) as [[null, number], [null, (string | null)[]]];
    return {
      waiting: Number(meta[3] ?? 0), active,
      admittedTotal: Number(meta[0] ?? 0), lastSeq: Number(meta[1] ?? 0), lastAdmitted: Number(meta[2] ?? 0),
    };
  }

  async applyConfig(concertId: number, cfg: QueueConfig): Promise<void> {
    const meta = keys.queueMeta(concertId);
    if (!(await this.redis.exists(meta))) {
      await this.loadQueue(concertId);
      return;
    }
    await this.redis.hset(meta, {
      maxActive: cfg.maxActive, admitPerSecond: cfg.admitPerSecond,
      activeTtl: cfg.activeTtlSeconds, paused: cfg.paused ? 1 : 0,
    });
  }
}
