import type { Config } from '../../config.ts';
import { errors } from '../../errors.ts';
import { ScriptCode, scriptError } from '../../redis/codes.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { awaitReplicas } from '../../redis/replication.ts';
import { runScript } from '../../redis/scripts.ts';
import { MAX_LINE_USER_ID } from './line.ts';
import { ETA_AGE_BUCKETS, ETA_GAP_TICKS, ETA_WINDOW_MS } from './eta.ts';
import type { AdmitOutcome, JoinOutcome, QueueConfig, QueueCounts, QueuePlace, QueueStore } from './types.ts';

/** Loads a concert's queue counters and config into Redis when they are missing. */
export type QueueLoader = (concertId: number) => Promise<void>;

/** An admission a tick is about to make, as SQL records it. */
export interface PendingAdmission { userId: number; seq: number; activeUntil: number }

/** Commits a tick's admissions to SQL (idempotent: the stream delivers them again later). */
export type AdmissionRecorder = (concertId: number, admissions: PendingAdmission[], now: number) => Promise<void>;

const MAX_SCAN_PER_TICK = 5000;

/** The wait estimate's part of a joinQueue / pollQueue reply, from index `at` on (see the scripts' contracts). */
export function estimateFields(r: unknown[], at: number) {
  return {
    paused: r[at] === 1, maxActive: Number(r[at + 1]), activeCount: Number(r[at + 2]), activeTtlSeconds: Number(r[at + 3]),
    meanHoldSeconds: r[at + 4] === '' || r[at + 4] == null ? null : Number(r[at + 4]),
    spread: Number(r[at + 5] ?? 1),
  };
}

export class RedisQueueStore implements QueueStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly config: Config,
    private readonly loadQueue: QueueLoader,
    private readonly recordAdmissions?: AdmissionRecorder,
  ) {}

  /** The five keys of a concert's queue, built once per concert (every poll needs them). */
  private readonly keysByConcert = new Map<number, readonly string[]>();

  private queueKeys(c: number): readonly string[] {
    let k = this.keysByConcert.get(c);
    if (k === undefined) {
      if (this.keysByConcert.size >= 10_000) this.keysByConcert.clear();
      k = Object.freeze([keys.queueMeta(c), keys.line(c), keys.active(c), keys.queueTokens(c), keys.stream(c)]);
      this.keysByConcert.set(c, k);
    }
    return k;
  }

  async join(concertId: number, userId: number, jti: string, now: number): Promise<JoinOutcome> {
    // The line's slot holds the user id in 32 bits (line.ts): a larger id would alias another user.
    if (userId > MAX_LINE_USER_ID) throw new Error(`user id ${userId} does not fit the waiting line's 32-bit slot`);
    const call = () => runScript(this.redis, 'joinQueue', this.queueKeys(concertId),
      [userId, jti, now, this.config.queueGraceSeconds * 1000]);
    let r = await call();
    if (r[0] === ScriptCode.NoQueue) {
      await this.loadQueue(concertId);
      r = await call();
    }
    if (r[0] !== ScriptCode.Ok) throw scriptError(Number(r[0]));
    try {
      await this.replicated();
    } catch (err) {
      // Not acknowledged: a fresh place must not stay behind for nobody (its retry would be
      // handed the same place, and SQL would learn of an entry without a token).
      if (r[8] === 1) await this.leave(concertId, userId, jti, now, 'leave').catch(() => {});
      throw err;
    }
    return {
      seq: Number(r[1]),
      status: r[2] === 1 ? 'active' : 'waiting',
      lastAdmitted: Number(r[3]),
      activeUntil: Number(r[4]),
      replacedJti: r[5] ? String(r[5]) : null,
      observedRate: Number(r[6]) / 1000,
      admitPerSecond: Number(r[7]),
      fresh: r[8] === 1,
      ...estimateFields(r, 9),
    };
  }

  private replicated(): Promise<void> {
    return awaitReplicas(this.redis, this.config.redisWaitReplicas, this.config.redisWaitTimeoutMs);
  }

  async poll(concertId: number, userId: number, jti: string, now: number): Promise<QueuePlace> {
    const r = await runScript(this.redis, 'pollQueue', this.queueKeys(concertId),
      [userId, jti, now, this.config.queueGraceSeconds * 1000]);
    if (r[0] !== ScriptCode.Ok) throw scriptError(Number(r[0]));
    return {
      status: r[1] === 1 ? 'active' : 'waiting',
      seq: Number(r[2]),
      lastAdmitted: Number(r[3]),
      activeUntil: Number(r[4]),
      observedRate: Number(r[5]) / 1000,
      admitPerSecond: Number(r[6]),
      ...estimateFields(r, 7),
    };
  }

  async leave(concertId: number, userId: number, jti: string, now: number, reason: 'leave' | 'done'): Promise<void> {
    const r = await runScript(this.redis, 'leaveQueue', this.queueKeys(concertId), [userId, jti, now, reason]);
    if (r[0] !== ScriptCode.Ok) throw scriptError(Number(r[0]));
  }

  async check(concertId: number, userId: number, jti: string, now: number) {
    const r = await runScript(this.redis, 'checkQueueToken', [keys.queueTokens(concertId), keys.active(concertId)],
      [userId, jti, now]);
    if (r[0] === ScriptCode.UnknownToken) throw scriptError(ScriptCode.UnknownToken);
    return { active: r[0] === ScriptCode.Ok, seq: Number(r[1]), activeUntil: Number(r[2]) };
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
    const grace = this.config.queueGraceSeconds * 1000;
    let gate: (string | number)[] = [];
    let unrecorded: unknown;
    if (this.recordAdmissions) {
      const peek = () => runScript(this.redis, 'peekAdmissions', this.queueKeys(concertId).slice(0, 3),
        [now, tickId, grace, this.config.admissionTickMs, MAX_SCAN_PER_TICK]);
      let p = await peek();
      if (p[0] === ScriptCode.NoQueue) {
        await this.loadQueue(concertId);
        p = await peek();
      }
      if (p[0] === ScriptCode.TickTaken || p[0] === ScriptCode.NoQueue || p[0] === ScriptCode.Reloading) return null;
      const admissions: PendingAdmission[] = [];
      for (let i = 2; i + 1 < p.length; i += 2) admissions.push({ userId: Number(p[i]), seq: Number(p[i + 1]), activeUntil: Number(p[1]) });
      gate = ['1'];
      if (admissions.length > 0 && now < this.recordRefusedUntil) {
        unrecorded = this.recordRefusal;
      } else if (admissions.length > 0) {
        try {
          await this.recordAdmissions(concertId, admissions, now);
          gate.push(...admissions.map((a) => a.seq));
        } catch (err) {
          unrecorded = this.recordRefusal = err;
          this.recordRefusedUntil = now + this.config.admissionTickMs;
        }
      }
    }
    const call = () => runScript(this.redis, 'admitNext', this.queueKeys(concertId),
      [now, tickId, grace, this.config.admissionTickMs, MAX_SCAN_PER_TICK, ETA_WINDOW_MS, ETA_GAP_TICKS, ETA_AGE_BUCKETS, ...gate]);
    let r = await call();
    if (r[0] === ScriptCode.NoQueue) {
      await this.loadQueue(concertId);
      r = await call();
    }
    if (r[0] === ScriptCode.TickTaken || r[0] === ScriptCode.NoQueue || r[0] === ScriptCode.Reloading) return null;
    if (Number(r[1]) > 0) await this.replicated();
    return {
      admitted: Number(r[1]), skipped: Number(r[2]), expired: Number(r[3]), active: Number(r[4]), waiting: Number(r[5]),
      ...(unrecorded === undefined ? {} : { unrecorded }),
    };
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
