import type { Config } from '../../config.ts';
import { errors, UnknownQueueTokenError } from '../../errors.ts';
import { isUniqueViolation, type Db } from '../../store/connect.ts';
import type { Transaction } from 'kysely';
import type { Database, QueueEntry, QueueState } from '../../store/schema.ts';
import { assertSqlMode } from '../../resilience/sql-fence.ts';
import { insertToken } from '../tokens/tokens.repo.ts';
import {
  admitEntries, endPlace, expireEntries, expireTimedOutEntries, firstUnheldNumber, highestSeq, insertEntriesOfLiveTokens, insertEntriesUnlessTaken,
  insertWaitingEntries, touchEntry, touchWaitingEntry,
} from './entries.repo.ts';
import { adoptPlace } from './place-recovery.ts';
import { lockQueueState, recordAdmissions, setEtaState, setLastSeq, setLastTick } from './queue-state.repo.ts';
import { stepEtaState, type EtaState } from './eta.ts';
import type { AdmitOutcome, JoinOutcome, QueueConfig, QueueCounts, QueuePlace, QueueStore, UnrecordedPlace } from './types.ts';

type Trx = Transaction<Database>;

type EstimateState = Pick<QueueState, 'paused' | 'max_active' | 'active_ttl_seconds' | 'eta_mean_hold' | 'eta_spread'>;

/** The wait estimate's inputs from the queue_state row and the live active count (see eta.ts). */
function estimateFields(state: EstimateState, activeCount: number) {
  return {
    paused: state.paused === 1, maxActive: state.max_active, activeCount: Number(activeCount), activeTtlSeconds: state.active_ttl_seconds,
    meanHoldSeconds: state.eta_mean_hold === null ? null : Number(state.eta_mean_hold), spread: Number(state.eta_spread),
  };
}

/**
 * How long after its switch this instance trusts Redis to show which places may lack their
 * record: Redis-mode instances follow the mode row within a sync interval (250 ms), and a join
 * one of them makes meanwhile is in the stream (and counted in `lastSeq`) before this.
 */
const MODE_SETTLE_MS = 1000;

/**
 * The waiting room in SQL alone, for when Redis is out. Same semantics as the Lua scripts:
 * entry numbers from the per-concert counter row, admission under that row's lock (one actor
 * per tick across instances), the live queue token in `tokens` as the place's key.
 */
export class SqlQueueStore implements QueueStore {
  /**
   * `sqlSince`: when this instance moved to SQL mode, on the service clock. Polls made in Redis
   * mode never reach SQL, so a waiting user's heartbeat grace counts from no earlier than that.
   */
  constructor(private readonly db: Db, private readonly config: Config, private readonly sqlSince: () => number = () => 0,
    private readonly unrecordedUpTo: (concertId: number, now: number) => Promise<number> = async () => Infinity) {}

  /**
   * The place behind a token: the token must be live and its entry must exist. A token SQL has
   * no row for at all is UnknownQueueTokenError, which sends the caller to `adopt` (a place
   * signed in Redis mode whose record never arrived); revoked, expired or foreign: null.
   */
  private async placeOf(db: Db | Trx, concertId: number, userId: number, jti: string, now: number) {
    const token = await db.selectFrom('tokens').select(['seq', 'user_id', 'created_at', 'concert_id', 'revoked_at', 'expires_at'])
      .where('jti', '=', jti).executeTakeFirst();
    if (!token) throw new UnknownQueueTokenError();
    // Entry number 0: a pre-queue token of a scheduled sale, which has no place in line (yet).
    if (token.concert_id !== concertId || token.revoked_at !== null || token.expires_at <= now
      || token.user_id !== userId || token.seq === null || token.seq <= 0) return null;
    const find = () => db.selectFrom('queue_entries').selectAll()
      .where('concert_id', '=', concertId).where('seq', '=', token.seq!).where('user_id', '=', userId).executeTakeFirst();
    let entry = await find();
    if (!entry) {
      // Joined in Redis mode, and Redis went away before the write-behind stream delivered the
      // entry: the written-through token still proves the place.
      await insertEntriesUnlessTaken(db, [{ concertId, seq: token.seq, userId, joinedAt: token.created_at, now }]);
      entry = await find();
    }
    return { seq: token.seq, entry: entry ?? null };
  }

  /**
   * Once per concert after moving to SQL mode, before admitting anyone: places whose join the
   * write-behind stream had not yet delivered when Redis went away exist only as their
   * written-through tokens. Without their entries admission would pass them over.
   */
  private readonly recoveredSince = new Map<number, number>();
  private async recoverEntriesFromTokens(trx: Trx, concertId: number, now: number): Promise<void> {
    const since = this.sqlSince();
    if (this.recoveredSince.get(concertId) === since) return;
    await insertEntriesOfLiveTokens(trx, concertId, now);
    this.recoveredSince.set(concertId, since);
  }

  /**
   * A correctly signed queue token SQL has no row for: a place Redis mode numbered and
   * acknowledged whose record had not reached SQL when Redis was lost, taken back on the
   * conditions of `adoptPlace`; its heartbeat grace counts from no earlier than this instance's
   * switch to SQL mode (Redis mode's heartbeats are unknown here). True when the place is back.
   */
  adopt(p: UnrecordedPlace, now: number): Promise<boolean> {
    return adoptPlace(this.db, p, now, { since: this.sqlSince(), graceMs: this.config.queueGraceSeconds * 1000, fence: assertSqlMode });
  }

  private isLive(entry: QueueEntry | null, now: number): boolean {
    if (!entry) return false;
    if (entry.status === 'active') return (entry.active_until ?? 0) > now;
    return entry.status === 'waiting' && now - this.lastSeen(entry.last_seen_at) <= this.config.queueGraceSeconds * 1000;
  }

  private lastSeen(lastSeenAt: number): number {
    return Math.max(lastSeenAt, this.sqlSince());
  }

  async join(concertId: number, userId: number, jti: string, now: number): Promise<JoinOutcome> {
    return this.db.transaction().execute(async (trx) => {
      await assertSqlMode(trx);
      const state = await lockQueueState(trx, concertId);
      const current = await trx.selectFrom('tokens as t')
        .innerJoin('queue_entries as e', (j) => j.onRef('e.concert_id', '=', 't.concert_id').onRef('e.seq', '=', 't.seq'))
        .selectAll('e').select('t.jti')
        .where('t.typ', '=', 'queue').where('t.concert_id', '=', concertId).where('t.user_id', '=', userId)
        .where('t.revoked_at', 'is', null).where('t.expires_at', '>', now)
        .where('e.status', 'in', ['waiting', 'active'])
        .orderBy('t.created_at', 'desc')
        .executeTakeFirst();
      const base = {
        lastAdmitted: state.last_admitted_seq, observedRate: 0, admitPerSecond: state.admit_per_second,
        ...estimateFields(state, await this.liveActive(trx, concertId, now)),
      };
      // The place's token is recorded with it, in this transaction: an admission tick must never
      // see the entry without its token (it would pass it over as a join never acknowledged).
      const recordToken = (seq: number) => insertToken(trx, {
        jti, userId, typ: 'queue', concertId, seq, expiresAt: now + this.config.queueTokenTtlSeconds * 1000, now,
      });
      if (current && this.isLive(current, now)) {
        if (current.status === 'waiting') {
          await touchEntry(trx, concertId, current.seq, now);
        }
        await recordToken(current.seq);
        return {
          ...base, seq: current.seq, status: current.status as 'waiting' | 'active',
          activeUntil: current.status === 'active' ? current.active_until! : 0, replacedJti: current.jti, fresh: false,
        };
      }
      if (state.paused) throw errors.queueClosed();
      // Entry numbers given out by Redis are claimed with their tokens, even when the stream
      // that carries the entries lagged, and all lie at or below the ceiling Redis reserved:
      // never hand one out twice (see claimEntries, reserveEntryNumbers).
      const seq = (await highestSeq(trx, concertId, Math.max(state.last_seq, state.seq_ceiling))) + 1;
      await setLastSeq(trx, concertId, seq);
      // A Redis-mode join claiming this very number at this moment makes the insert fail: 503, retry.
      await insertWaitingEntries(trx, concertId, [{ seq, userId, joinedAt: now }], now).catch((err) => {
        if (isUniqueViolation(err)) throw errors.unavailable('that place in line was taken at this instant; join again', 1);
        throw err;
      });
      await recordToken(seq);
      return { ...base, seq, status: 'waiting' as const, activeUntil: 0, replacedJti: current?.jti ?? null, fresh: true };
    });
  }

  async poll(concertId: number, userId: number, jti: string, now: number): Promise<QueuePlace> {
    const place = await this.placeOf(this.db, concertId, userId, jti, now);
    if (!place) throw errors.unauthenticated('token revoked or unknown');
    // The live active count rides in the same statement: the poll stays one read of the state.
    const state = await this.db.selectFrom('queue_state')
      .select(['last_admitted_seq', 'admit_per_second', 'paused', 'max_active', 'active_ttl_seconds',
        'eta_mean_hold', 'eta_spread'])
      .select((eb) => eb.selectFrom('queue_entries').select((c) => c.fn.countAll<number>().as('n'))
        .where('concert_id', '=', concertId).where('status', '=', 'active').where('active_until', '>', now).as('active_count'))
      .where('concert_id', '=', concertId).executeTakeFirstOrThrow();
    const e = place.entry;
    const base = {
      seq: place.seq, lastAdmitted: state.last_admitted_seq, observedRate: 0, admitPerSecond: state.admit_per_second,
      ...estimateFields(state, Number(state.active_count ?? 0)),
    };
    if (e && e.status === 'active' && (e.active_until ?? 0) > now) return { ...base, status: 'active', activeUntil: e.active_until! };
    if (e && this.isLive(e, now)) {
      await touchWaitingEntry(this.db, concertId, e.seq, now);
      return { ...base, status: 'waiting', activeUntil: 0 };
    }
    await this.endPlace(concertId, place.seq, jti, now, e?.status === 'waiting' ? 'expired' : null);
    throw errors.unauthenticated('your place in the queue was lost (left, expired or not polled within the grace period)');
  }

  private async endPlace(concertId: number, seq: number, jti: string, now: number, status: 'expired' | 'left' | 'done' | null) {
    await this.db.transaction().execute(async (trx) => {
      await assertSqlMode(trx);
      await endPlace(trx, concertId, seq, jti, status, now);
    });
  }

  async leave(concertId: number, userId: number, jti: string, now: number, reason: 'leave' | 'done'): Promise<void> {
    const place = await this.placeOf(this.db, concertId, userId, jti, now);
    if (!place) throw errors.unauthenticated('token revoked or unknown');
    await this.endPlace(concertId, place.seq, jti, now, reason === 'leave' ? 'left' : 'done');
  }

  async check(concertId: number, userId: number, jti: string, now: number) {
    const place = await this.placeOf(this.db, concertId, userId, jti, now);
    if (!place) throw errors.unauthenticated('token revoked or unknown');
    const e = place.entry;
    // A place that has ended (left, expired, lapsed, done) kills its token, as in Redis mode
    // where the ending removes the token's record.
    if (e && e.status !== 'waiting' && e.status !== 'active') throw errors.unauthenticated('token revoked or unknown');
    const active = !!e && e.status === 'active' && (e.active_until ?? 0) > now;
    return { active, seq: place.seq, activeUntil: active ? e!.active_until! : 0 };
  }

  async admitTick(concertId: number, now: number, tickId: number): Promise<AdmitOutcome | null> {
    // Within one heartbeat grace of the switch, a number Redis gave out whose record had not
    // reached SQL may still be taken back (adoptPlace), which it refuses once admission has passed
    // the number: admission holds before such numbers, up to the highest one Redis shows may lack
    // its record (none once its stream is drained; see unrecordedUpTo). Asked before the row lock.
    const graceMs = this.config.queueGraceSeconds * 1000;
    const since = this.sqlSince();
    const holdUpTo = now >= since + graceMs ? 0
      : now < since + MODE_SETTLE_MS ? Infinity
      : await this.unrecordedUpTo(concertId, now);
    return this.db.transaction().execute(async (trx) => {
      await assertSqlMode(trx);
      const state = await lockQueueState(trx, concertId);
      if (state.last_tick >= tickId) return null;
      await setLastTick(trx, concertId, tickId);
      await this.recoverEntriesFromTokens(trx, concertId, now);
      const expired = await expireTimedOutEntries(trx, concertId, now);
      const activeCount = await this.count(trx, concertId, 'active');
      let waitingCount = await this.count(trx, concertId, 'waiting');
      // The wait estimate's state, stepped as admitNext-5.lua steps it (see eta.ts), from the
      // active slots once timed-out ones are freed and before this tick admits anyone.
      const activeUntil = (await trx.selectFrom('queue_entries').select('active_until')
        .where('concert_id', '=', concertId).where('status', '=', 'active').execute()).map((r) => Number(r.active_until));
      const etaStep = (positions: number, admittedNow: number) => {
        const step = stepEtaState(state.eta_state ? JSON.parse(state.eta_state) as EtaState : null, {
          now, tickMs: this.config.admissionTickMs, ttlMs: state.active_ttl_seconds * 1000, activeUntil, admitted: admittedNow, positions,
        });
        return { eta_state: JSON.stringify(step.state), eta_mean_hold: step.meanHoldSeconds, eta_spread: step.spread };
      };
      if (state.paused) {
        await setEtaState(trx, concertId, etaStep(0, 0));
        return { admitted: 0, skipped: 0, expired, active: activeCount, waiting: waitingCount };
      }
      // Tick ids are tick start times in ms: by time t, ⌊t × admitPerSecond / 1000⌋ users fall
      // due. A tick admits those due since the last tick taken, at most one tick's budget
      // rounded up: a fractional rate (0.25 or 2.5 a tick) keeps its pace with no stored
      // credit, as the Lua script's credit does.
      const rate = BigInt(state.admit_per_second);
      const due = (tickStartMs: number) => (BigInt(tickStartMs) * rate) / 1000n;
      const cap = Math.max(1, Math.ceil(state.admit_per_second * this.config.admissionTickMs / 1000));
      const perTick = Math.min(cap, Number(due(tickId) - due(state.last_tick)));
      const budget = Math.min(perTick, state.max_active - activeCount);
      let admitted = 0;
      let skipped = 0;
      let lastAdmitted = state.last_admitted_seq;
      while (admitted < budget) {
        // An entry is a place only with a live queue token of its user: an entry the stream
        // recorded for a join that was never acknowledged (its token was never written) has
        // none, and is passed over like a lapsed one, as the rebuild leaves it out of Redis.
        const batch = await trx.selectFrom('queue_entries as e').select(['e.seq', 'e.last_seen_at'])
          .select((eb) => eb.exists(eb.selectFrom('tokens as t').select('t.jti')
            .whereRef('t.concert_id', '=', 'e.concert_id').whereRef('t.seq', '=', 'e.seq').whereRef('t.user_id', '=', 'e.user_id')
            .where('t.revoked_at', 'is', null).where('t.expires_at', '>', now)).as('live'))
          .where('e.concert_id', '=', concertId).where('e.status', '=', 'waiting')
          .orderBy('e.seq').limit(budget - admitted).execute();
        if (batch.length === 0) break;
        // Holding: admission stops before the first number that no entry holds, at or below both
        // the reserved ceiling and the highest number that may lack its record.
        const holdAt = holdUpTo > lastAdmitted
          ? await firstUnheldNumber(trx, concertId, lastAdmitted, Math.min(state.seq_ceiling, holdUpTo, batch[batch.length - 1]!.seq))
          : null;
        const open = holdAt === null ? batch : batch.filter((e) => e.seq < holdAt);
        if (open.length === 0) break;
        const admit: number[] = [];
        const lapse: number[] = [];
        for (const e of open) {
          (Boolean(e.live) && now - this.lastSeen(e.last_seen_at) <= graceMs ? admit : lapse).push(e.seq);
          lastAdmitted = Math.max(lastAdmitted, e.seq);
        }
        if (admit.length) {
          await admitEntries(trx, concertId, admit, now + state.active_ttl_seconds * 1000, now);
        }
        if (lapse.length) {
          await expireEntries(trx, concertId, lapse, now);
        }
        admitted += admit.length;
        skipped += lapse.length;
        waitingCount -= open.length;
        if (open.length < batch.length) break;
      }
      await recordAdmissions(trx, concertId, {
        lastAdmittedSeq: lastAdmitted, admittedTotal: state.admitted_total + admitted,
        eta: etaStep(lastAdmitted - state.last_admitted_seq, admitted),
      });
      return { admitted, skipped, expired, active: activeCount + admitted, waiting: waitingCount };
    });
  }

  /** Active slots in use now (an active entry past its time holds no slot, though no tick has ended it yet). */
  private async liveActive(db: Db | Trx, concertId: number, now: number): Promise<number> {
    const r = await db.selectFrom('queue_entries').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('concert_id', '=', concertId).where('status', '=', 'active').where('active_until', '>', now).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  private async count(db: Db | Trx, concertId: number, status: 'waiting' | 'active'): Promise<number> {
    const r = await db.selectFrom('queue_entries').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('concert_id', '=', concertId).where('status', '=', status).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async counts(concertId: number, now: number): Promise<QueueCounts> {
    const state = await this.db.selectFrom('queue_state').selectAll().where('concert_id', '=', concertId).executeTakeFirst();
    if (!state) throw errors.notFound('concert');
    const active = await this.db.selectFrom('queue_entries').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('concert_id', '=', concertId).where('status', '=', 'active').where('active_until', '>', now).executeTakeFirst();
    return {
      waiting: await this.count(this.db, concertId, 'waiting'), active: Number(active?.n ?? 0),
      admittedTotal: state.admitted_total, lastSeq: state.last_seq, lastAdmitted: state.last_admitted_seq,
    };
  }

  async applyConfig(_concertId: number, _config: QueueConfig): Promise<void> {
    // SQL is where the admin service already wrote the config.
  }
}
