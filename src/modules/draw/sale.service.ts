import { createHash } from 'node:crypto';
import type { Config } from '../../config.ts';
import { AppError, errors } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { withLease } from '../../redis/lease.ts';
import type { Db } from '../../store/connect.ts';
import { holdJoinClaim } from '../tokens/join-replays.repo.ts';
import { insertToken, isTokenLive, queueTokenRecord, revokeTokens } from '../tokens/tokens.repo.ts';
import type { Principal, TokenService } from '../tokens/tokens.service.ts';
import type { Backend } from '../../backend/types.ts';
import type { RedisPrequeueStore } from './prequeue.stores.ts';
import { DRAW_ALGORITHM, drawTicket, newDrawNonce } from './algorithm.ts';
import { applyDrawBatch, drawAppliedFlag, markDrawApplied } from './prequeue.redis.ts';
import {
  drawnPlaces, drawRecord, dueDraws, endPrequeued, findPrequeued, findSale, moveSaleStart, recordDraw,
  recordPrequeued, type DrawResult,
} from './sale.repo.ts';

export type SalePhase = 'open' | 'prequeue' | 'drawing';

interface SaleState { saleStartsAt: number | null; drawnAt: number | null; commitment: string | null; readAt: number }

/** What a pre-queued fan is told. */
export interface PrequeueStanding { opensAt: number; ticket?: string; pollAfterSeconds: number }

/** A pre-queue token's standing: still pre-queued, or drawn (an entry number in the ordinary line). */
export type PrequeueRoad = { kind: 'prequeued'; standing: PrequeueStanding } | { kind: 'placed'; seq: number | null };

const STATE_FRESH_MS = 1000;
/** Places read from SQL at a time, and written to Redis per Lua call (each call stays near a millisecond). */
const APPLY_READ = 1000;
const APPLY_BATCH = 100;
const DRAW_LEASE_MS = 10_000;

const saleError = {
  started: () => new AppError(409, 'SALE_STARTED', 'the sale has opened (or its draw was made): its opening can no longer move'),
  unscheduled: () => new AppError(409, 'SALE_NOT_SCHEDULED', 'this concert opened at creation; it has no scheduled sale to move'),
  notDrawn: (at: number) => new AppError(409, 'DRAW_NOT_MADE', `the draw is made when the sale opens (${new Date(at).toISOString()}); the seed is published then`),
};

/**
 * Scheduled sales: the pre-queue before the opening, the draw at the opening, and the published
 * draw after it. SQL is the record of every pre-queued place and of the drawn order; Redis holds
 * the pre-queue's heartbeats (Redis mode) and, once applied, the drawn places in the ordinary
 * line. See docs/architecture.md, "Scheduled sale".
 */
export class SaleService {
  private readonly states = new Map<number, SaleState>();
  private readonly reading = new Map<number, Promise<SaleState>>();

  constructor(
    private readonly db: Db,
    private readonly redis: RedisClient,
    private readonly config: Config,
    private readonly tokens: TokenService,
    private readonly log: Logger,
    /** Redis's pre-queue, where applyDraw puts the drawn line (whatever the mode of the request). */
    private readonly redisPrequeue: RedisPrequeueStore,
  ) {}

  private get graceMs(): number {
    return this.config.queueGraceSeconds * 1000;
  }

  /**
   * The sale's state, read from SQL at most once a second while it can still change. An opening
   * never appears on a concert that opened at creation, and a draw is never undone: both are
   * kept for good once seen.
   */
  async state(concertId: number, now: number): Promise<SaleState> {
    const known = this.states.get(concertId);
    if (known && (known.saleStartsAt === null || known.drawnAt !== null || now - known.readAt < STATE_FRESH_MS)) return known;
    // Requests that miss at once share one read (a crowd joining a concert just created).
    let reading = this.reading.get(concertId);
    if (!reading) {
      reading = findSale(this.db, concertId).then((row) => {
        if (!row) throw errors.notFound('concert');
        const state = { saleStartsAt: row.saleStartsAt, drawnAt: row.drawnAt, commitment: row.commitment, readAt: now };
        this.states.set(concertId, state);
        return state;
      }).finally(() => this.reading.delete(concertId));
      this.reading.set(concertId, reading);
    }
    return reading;
  }

  /**
   * Before the opening: pre-queue. From the opening until every drawn fan has a place in the line
   * the service uses (Redis mode: the draw applied to Redis): drawing, joins wait. Then open.
   */
  async phase(concertId: number, now: number, backend: Backend): Promise<{ phase: SalePhase; opensAt: number | null }> {
    const s = await this.state(concertId, now);
    if (s.saleStartsAt === null) return { phase: 'open', opensAt: null };
    if (s.drawnAt === null) return { phase: now < s.saleStartsAt ? 'prequeue' : 'drawing', opensAt: s.saleStartsAt };
    if (await backend.prequeue.drawPending(concertId)) return { phase: 'drawing', opensAt: s.saleStartsAt };
    return { phase: 'open', opensAt: s.saleStartsAt };
  }

  async reschedule(concertId: number, saleStartsAt: number, now: number): Promise<void> {
    if (saleStartsAt <= now) throw errors.validation('saleStartsAt: must be in the future', [{ field: 'saleStartsAt', problem: 'must be in the future' }]);
    const r = await moveSaleStart(this.db, concertId, saleStartsAt, now);
    this.states.delete(concertId);
    if (r === 'unknown') throw errors.notFound('concert');
    if (r === 'unscheduled') throw saleError.unscheduled();
    if (r === 'passed') throw saleError.started();
  }

  /** The public part: the opening and the commitment to the draw's seed. */
  async publicView(concertId: number, now: number): Promise<{ saleStartsAt: string | null; draw: { commitment: string; drawn: boolean } | null }> {
    const s = await this.state(concertId, now);
    if (s.saleStartsAt === null || s.commitment === null) return { saleStartsAt: null, draw: null };
    return { saleStartsAt: new Date(s.saleStartsAt).toISOString(), draw: { commitment: s.commitment, drawn: s.drawnAt !== null } };
  }

  /** The published draw: 404 without a scheduled sale, 409 before the draw. */
  async published(concertId: number) {
    const r = await drawRecord(this.db, concertId);
    if (!r || (!r.drawn && r.saleStartsAt === null)) throw errors.notFound('draw');
    if (!r.drawn) throw saleError.notDrawn(r.saleStartsAt!);
    return {
      concertId, seed: r.seed, commitment: r.commitment, algorithm: DRAW_ALGORITHM,
      drawnAt: new Date(r.drawnAt).toISOString(), tickets: r.tickets,
    };
  }

  /**
   * How long a pre-queued fan waits before the next poll. Far from the opening: somewhere in the
   * upper half of what the heartbeat grace allows; near it: just after the opening; both spread
   * by a fraction fixed per fan (a hash of the user id), so a crowd never polls in step.
   */
  pollAfterSeconds(concertId: number, userId: number, opensAt: number, now: number): number {
    const fraction = createHash('sha256').update(`${concertId}:${userId}`).digest().readUInt32BE(0) / 2 ** 32;
    const window = Math.max(2, Math.floor(this.config.queueGraceSeconds / 3));
    const left = Math.ceil((opensAt - now) / 1000);
    if (left <= 0) return 1 + Math.floor(fraction * 3);
    if (left > window) return window - Math.floor(fraction * (window / 2));
    return left + 1 + Math.floor(fraction * Math.min(window, 10));
  }

  private standing(concertId: number, userId: number, opensAt: number, now: number, ticket?: string): PrequeueStanding {
    return { opensAt, ticket, pollAfterSeconds: this.pollAfterSeconds(concertId, userId, opensAt, now) };
  }

  /**
   * A join before the opening. The queue token id comes from the join claim as for any join, so
   * double-submits and retries share one token and one ticket; the place, the token and the
   * revocation of the tokens it replaces are one SQL transaction.
   */
  async joinPrequeue(principal: Principal, concertId: number, now: number, nonce: string | undefined,
    opts: { backend: Backend; moving: boolean }): Promise<{ created: boolean; token: string; expiresAt: number; standing: PrequeueStanding }> {
    opts.backend.prequeue.assertDrawable(principal.userId);
    const jti = await this.tokens.claimJoin(principal, concertId, now);
    const recorded = await this.db.transaction().execute(async (trx) => {
      if (!(await holdJoinClaim(trx, principal.jti, concertId, jti))) {
        throw errors.unavailable('this join was refused while a copy of it was under way; join again', 1);
      }
      const place = await recordPrequeued(trx, {
        concertId, userId: principal.userId, jti, ticket: drawTicket(nonce ?? newDrawNonce(), principal.userId), now,
      });
      if (place === 'closed') throw errors.unavailable('the sale has just opened; join again', 1);
      await insertToken(trx, {
        jti, userId: principal.userId, typ: 'queue', concertId, seq: 0, expiresAt: now + this.config.queueTokenTtlSeconds * 1000, now,
      });
      const row = await queueTokenRecord(trx, jti);
      if (!row || row.user_id !== principal.userId || row.concert_id !== concertId || row.seq !== 0
        || row.revoked_at !== null || row.expires_at <= now) {
        throw errors.unavailable('your place changed while joining; join again', 1);
      }
      const replaced = opts.moving ? [] : [principal.jti];
      if (place.replacedJti && place.replacedJti !== jti) replaced.push(place.replacedJti);
      await revokeTokens(trx, replaced.filter((j) => j !== jti), now);
      return { place, row, replaced };
    });
    const opensAt = (await this.state(concertId, now)).saleStartsAt!;
    await opts.backend.prequeue.put({ concertId, userId: principal.userId, jti }, now);
    await opts.backend.tokens.forget(recorded.replaced);
    const token = await this.tokens.signQueueToken({
      userId: principal.userId, jti, concertId, seq: 0, createdAt: recorded.row.created_at, expiresAt: recorded.row.expires_at,
    });
    return {
      created: recorded.place.fresh, token, expiresAt: recorded.row.expires_at,
      standing: this.standing(concertId, principal.userId, opensAt, now, recorded.place.ticket),
    };
  }

  /**
   * A pre-queue token's poll (and heartbeat). Redis mode asks Redis; what Redis does not know
   * (lost in a failover, or never written) SQL answers and Redis learns again.
   */
  async pollPrequeue(p: { concertId: number; userId: number; jti: string }, now: number, backend: Backend,
    withTicket = false): Promise<PrequeueRoad> {
    const s = await this.state(p.concertId, now);
    if (backend.prequeue.poll) {
      const r = await backend.prequeue.poll(p, now, this.graceMs);
      if (r === 'prequeued') {
        // Joining again answers with the ticket (SQL has it); a poll, the hot path, does not.
        const ticket = withTicket ? (await findPrequeued(this.db, p.concertId, p.userId))?.ticket : undefined;
        return { kind: 'prequeued', standing: this.standing(p.concertId, p.userId, s.saleStartsAt ?? now, now, ticket) };
      }
      if (typeof r === 'object') return { kind: 'placed', seq: r.placed };
      if (r === 'lapsed') await this.lapse(p, now);
    }
    const row = await findPrequeued(this.db, p.concertId, p.userId);
    if (!row || row.jti !== p.jti) return { kind: 'placed', seq: null };
    if (row.drawn_seq !== null) return { kind: 'placed', seq: row.drawn_seq };
    const fresh = s.drawnAt === null ? s : await this.state(p.concertId, now);
    if (row.status !== 'waiting') throw this.lost();
    if (fresh.drawnAt !== null || (await findSale(this.db, p.concertId))?.drawnAt) {
      // Drawn, and this fan was not when the row was read: unless the draw committed in between
      // (it numbers every drawn fan in the transaction that marks the sale drawn).
      const again = await findPrequeued(this.db, p.concertId, p.userId);
      if (again?.jti === p.jti && again.drawn_seq !== null) return { kind: 'placed', seq: again.drawn_seq };
      throw this.lost();
    }
    if (!(await isTokenLive(this.db, p.jti, now))) throw this.lost();
    if ((await backend.prequeue.heartbeat(p, row.last_seen_at, now, this.graceMs)) === 'lapsed') await this.lapse(p, now);
    return { kind: 'prequeued', standing: this.standing(p.concertId, p.userId, fresh.saleStartsAt ?? now, now, withTicket ? row.ticket : undefined) };
  }

  private lost(): AppError {
    return errors.unauthenticated('your place in the pre-queue was lost (left, not polled within the grace period, or not in the draw)');
  }

  private async lapse(p: { concertId: number; userId: number; jti: string }, now: number): Promise<never> {
    await endPrequeued(this.db, { ...p, now }, 'lapsed');
    throw this.lost();
  }

  /** Leaves the pre-queue; false when the token's holder is not pre-queued (drawn: the ordinary leave applies). */
  async leavePrequeue(p: { concertId: number; userId: number; jti: string }, now: number, backend: Backend): Promise<boolean> {
    const row = await findPrequeued(this.db, p.concertId, p.userId);
    if (!row || row.jti !== p.jti || row.drawn_seq !== null) return false;
    await endPrequeued(this.db, { ...p, now }, 'left');
    await backend.prequeue.drop(p.concertId, p.userId);
    return true;
  }

  /**
   * Makes the draw of a concert whose opening has come, once (recordDraw's marker). Redis mode
   * first tells SQL which fans Redis saw polling; SQL mode cannot know the polls Redis saw before
   * the switch, so when it began after the heartbeat window opened, every fan still pre-queued
   * counts as seen.
   */
  async drawConcert(concertId: number, now: number, backend: Backend): Promise<DrawResult | null> {
    const s = await this.state(concertId, now);
    if (s.saleStartsAt === null || s.drawnAt !== null || now < s.saleStartsAt) return null;
    const seenFrom = await backend.prequeue.seenFrom(concertId, s.saleStartsAt - this.graceMs);
    const started = performance.now();
    const r = await recordDraw(this.db, concertId, now, seenFrom);
    this.states.delete(concertId);
    if (r) this.log.info('draw recorded', { concertId, drawn: r.drawn, firstEntry: r.base + 1, ms: Math.round(performance.now() - started) });
    return r;
  }

  /**
   * Puts a recorded draw into Redis's line, in entry order and in bounded batches (each one Lua
   * call of at most APPLY_BATCH places), then marks it applied. Idempotent, so an instance that
   * died midway is simply followed by another; a lease keeps two from doing the same work.
   */
  async applyDraw(concertId: number, now: number): Promise<'applied' | 'busy' | 'unloaded'> {
    const seen = await drawAppliedFlag(this.redis, concertId);
    if (seen !== 'pending') return seen;
    const done = await withLease(this.redis, keys.drawLock(concertId), DRAW_LEASE_MS, async () => {
      const flag = await drawAppliedFlag(this.redis, concertId);
      if (flag !== 'pending') return flag;
      const last = await this.db.selectFrom('queue_state').select('last_seq').where('concert_id', '=', concertId).executeTakeFirstOrThrow();
      let after = 0;
      for (;;) {
        const rows = await drawnPlaces(this.db, concertId, after, APPLY_READ, now);
        if (rows.length === 0) break;
        for (let i = 0; i < rows.length; i += APPLY_BATCH) {
          const applied = await applyDrawBatch(this.redis, concertId, now, last.last_seq,
            rows.slice(i, i + APPLY_BATCH).map((r) => ({ userId: r.user_id, jti: r.jti, seq: r.drawn_seq! })));
          if (applied === null) return 'unloaded' as const;
        }
        after = rows[rows.length - 1]!.drawn_seq!;
      }
      await markDrawApplied(this.redis, concertId);
      this.redisPrequeue.markApplied(concertId);
      return 'applied' as const;
    });
    return done ?? 'busy';
  }

  /** Concerts drawn in SQL whose draw Redis may still lack. */
  async drawnLiveConcerts(now: number): Promise<number[]> {
    const rows = await this.db.selectFrom('concerts').select('id')
      .where('drawn_at', 'is not', null).where('ends_at', '>', now).execute();
    return rows.map((r) => r.id);
  }

  /** Concerts whose opening has come and whose draw is not recorded yet. */
  dueDraws(now: number): Promise<number[]> {
    return dueDraws(this.db, now);
  }

  /** Redis lost the applied draw (joinQueue found the flag missing): look again before letting joins through. */
  forgetApplied(concertId: number): void {
    this.redisPrequeue.forgetApplied(concertId);
  }
}
