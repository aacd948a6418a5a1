import type { Config } from '../../config.ts';
import { AppError, errors, UnknownQueueTokenError } from '../../errors.ts';
import type { Backends } from '../../backend/backends.ts';
import type { Backend } from '../../backend/types.ts';
import type { CatalogService } from '../catalog/catalog.service.ts';
import type { PrequeueStanding, SaleService } from '../draw/sale.service.ts';
import type { IssuedQueueToken, Principal, QueuePrincipal, TokenService } from '../tokens/tokens.service.ts';
import { estimateWaitSeconds } from './eta.ts';
import type { QueueTokenFacts } from '../tokens/queue-token-records.ts';
import type { JoinClaim } from '../tokens/token.stores.ts';
import type { QueuePlace } from './types.ts';

export interface PlaceView {
  status: 'waiting' | 'active' | 'prequeue';
  concertId: number;
  /** null while pre-queued: the draw has not given the place its number yet. */
  position: number | null;
  ahead: number | null;
  /** null while the queue is paused: nobody is admitted, so no time can be promised. */
  estimatedWaitSeconds: number | null;
  paused: boolean;
  pollAfterSeconds: number;
  activeUntil: string | null;
  /** Pre-queued only: when the sale opens (and the draw is made), and the fan's draw ticket (on joining). */
  opensAt?: string;
  drawTicket?: string;
}

export interface JoinAnswer { created: boolean; token: string; expiresAt: number; place: PlaceView }

/** A pre-queue token (entry number 0) that is still pre-queued, or the token to take the ordinary road with. */
type Road = { view: PlaceView } | { principal: QueuePrincipal };

const isUnauthenticated = (err: unknown) => err instanceof AppError && err.status === 401;

export class QueueService {
  constructor(
    private readonly backends: Backends,
    private readonly tokens: TokenService,
    private readonly catalog: CatalogService,
    private readonly config: Config,
    /** Told of every place withPlace put back, with the mode that served it. */
    private readonly restored: (mode: Backend['kind']) => void = () => {},
  ) {}

  /** Scheduled sales (src/modules/draw): set once by the composition root. */
  private sale: SaleService | null = null;

  attachSale(sale: SaleService): void {
    this.sale = sale;
  }

  prequeueView(concertId: number, s: PrequeueStanding): PlaceView {
    return {
      status: 'prequeue', concertId, position: null, ahead: null, estimatedWaitSeconds: null, paused: false,
      pollAfterSeconds: s.pollAfterSeconds, activeUntil: null, opensAt: new Date(s.opensAt).toISOString(),
      ...(s.ticket ? { drawTicket: s.ticket } : {}),
    };
  }

  /**
   * Queue tokens issued before a sale's draw carry entry number 0: while their holder is
   * pre-queued the pre-queue answers for them; once drawn they take the ordinary road, under
   * the entry number the draw gave.
   */
  private async road(principal: QueuePrincipal, now: number, backend: Backend, withTicket = false): Promise<Road> {
    if (!this.sale || principal.seq !== 0) return { principal };
    const concertId = principal.concertId;
    const r = await this.sale.pollPrequeue({ concertId, userId: principal.userId, jti: principal.jti }, now, backend, withTicket);
    if (r.kind === 'prequeued') return { view: this.prequeueView(concertId, r.standing) };
    return { principal: r.seq ? { ...principal, seq: r.seq } : principal };
  }

  /**
   * Runs a step that checks a queue token; when the backend does not know the token, asks it
   * whether it lost the place (Redis: SQL has it live; SQL: Redis numbered it, and its record
   * never arrived) and, once it is back, runs the step again.
   * A token that was replaced or whose place ended stays unknown: 401 as before.
   */
  withPlace<T>(backend: Backend, principal: QueuePrincipal, now: number, step: () => Promise<T>): Promise<T> {
    // A plain catch, not an async wrapper: one Promise fewer on every poll.
    return step().catch(async (err: unknown) => {
      if (!(err instanceof UnknownQueueTokenError)) throw err;
      const back = await backend.restoreLostPlace({
        concertId: principal.concertId, userId: principal.userId, jti: principal.jti, seq: principal.seq,
        issuedAt: principal.iat * 1000, expiresAt: principal.exp * 1000,
      }, now);
      if (!back) throw err;
      this.restored(backend.kind);
      return step();
    });
  }

  /** New places and holds of a concert: refused while the cache is rebuilt or its record is too far behind. */
  assertAccepting(concertId: number, backend: Backend): void {
    this.backends.assertWritable();
    if (backend.writeBehind.full(concertId)) {
      throw errors.unavailable('changes are waiting to be recorded in the database; retry in a moment', 2);
    }
  }

  /** Position is O(1): my entry number minus the last admitted entry number. */
  view(concertId: number, place: QueuePlace): PlaceView {
    if (place.status === 'active') {
      return {
        status: 'active', concertId, position: 0, ahead: 0, estimatedWaitSeconds: 0, paused: place.paused,
        pollAfterSeconds: 30, activeUntil: new Date(place.activeUntil).toISOString(),
      };
    }
    const position = Math.max(1, place.seq - place.lastAdmitted);
    // Far from the front there is no news worth a request every second; the heartbeat grace
    // bounds the interval so that a polling user never loses the place. While paused nothing
    // moves until an operator resumes: the longest interval the grace allows.
    const ceiling = Math.max(1, Math.min(30, Math.floor(this.config.queueGraceSeconds / 3)));
    const eta = place.paused ? null : estimateWaitSeconds({ ...place, position });
    const pollAfterSeconds = eta === null ? ceiling : Math.min(ceiling, Math.max(1, Math.ceil(eta / 10)));
    return {
      status: 'waiting', concertId, position, ahead: position - 1, estimatedWaitSeconds: eta, paused: place.paused,
      pollAfterSeconds, activeUntil: null,
    };
  }

  /**
   * Joins a concert's line. A client that retries is never locked out (docs/api.md, token
   * lifecycle): joining again with the live queue token of this concert answers with that very
   * token; a join made with a given token always gives out one queue token id (claimed first: in
   * Redis in Redis mode, in SQL in SQL mode; SQL records it only under its claim), so
   * double-submits share one place and one answer; and a retry with the token a join just
   * replaced gets that join's answer again for JOIN_REPLAY_SECONDS. `beforeNewPlace` runs
   * only when the join is about to take a new place (the proof of work on joins).
   */
  async join(principal: Principal, concertId: number, now: number,
    opts: { beforeNewPlace?: () => Promise<void>; drawNonce?: string } = {}): Promise<JoinAnswer> {
    const concert = await this.catalog.concert(concertId);
    if (concert.endsAt <= now) throw errors.queueClosed('the concert is over');
    const backend = this.backends.current;
    const sale = this.sale ? await this.sale.phase(concertId, now, backend) : { phase: 'open' as const };
    if (sale.phase === 'drawing') throw errors.unavailable('the sale opens with a draw that is being made; retry in a moment', 1);
    this.assertAccepting(concertId, backend);
    const store = backend.queue;
    try {
      await this.assertLiveWith(backend, principal, now);
    } catch (err) {
      if (!isUnauthenticated(err)) throw err;
      const replay = await this.replayJoin(backend, principal, concertId, now);
      if (!replay) throw err;
      return replay;
    }
    if (principal.typ === 'queue' && principal.concertId === concertId) {
      const kept = await this.keepPlace(backend, principal, now);
      if (kept) return kept;
    }
    // One ticket at a time: joining another concert gives up the place held in this one, once
    // the new place is recorded. Until then the old token stays live, so that a double-submit
    // racing this join takes the same road (and a refused join keeps the old place).
    const moving = principal.typ === 'queue' && principal.concertId !== concertId;
    // Proof of work (when asked for) covers every new place, a pre-queued one too.
    await opts.beforeNewPlace?.();
    if (sale.phase === 'prequeue') return this.joinPrequeue(backend, principal, concertId, now, opts.drawNonce, moving);
    const claim = { srcJti: principal.jti, concertId, userId: principal.userId, now };
    // The token's times are the claim's: every copy of this join signs the same token.
    const { jti, issuedAt } = await backend.tokens.claimJoin(claim);
    const expiresAt = issuedAt + this.config.queueTokenTtlSeconds * 1000;
    const outcome = await store.join(concertId, principal.userId, jti, now, {
      issuedAt, expiresAt, srcJti: principal.jti, replacesSrc: !moving,
    });
    // A double-submit that got here second finds its own place under the claimed id: nothing to revoke.
    const replaced = moving ? [] : [principal.jti];
    if (outcome.replacedJti && outcome.replacedJti !== principal.jti && outcome.replacedJti !== jti) replaced.push(outcome.replacedJti);
    const facts = { userId: principal.userId, jti, concertId, seq: outcome.seq, issuedAt, expiresAt };
    // Redis mode: the place's stream entry carries the token's record (written behind); the place
    // is acknowledged once Redis has it (and, with Sentinel, a replica: store.join).
    const issued: IssuedQueueToken = backend.joinsRecordedBehind
      ? { token: await this.tokens.signQueueToken({ ...facts, createdAt: issuedAt }), jti, seq: outcome.seq, expiresAt }
      : await this.recordInSql(backend, facts, replaced, { ...claim, queueJti: jti }, outcome.fresh);
    // Acknowledged: from here a failure keeps the place, and the retry (the claim) finds it.
    if (moving) {
      // Leaving revokes the old token; if the leave fails, the token dies all the same.
      await this.leave(principal, now).catch(() => this.tokens.revoke([principal.jti], now)).catch(() => {});
    }
    // The only user token a join replaces is the one it was made with (the others are queue
    // tokens, which have no user-token record in Redis).
    if (principal.typ === 'user') await backend.tokens.markSpent(principal.jti);
    return { created: outcome.fresh, token: issued.token, expiresAt: issued.expiresAt, place: this.view(concertId, outcome) };
  }

  /**
   * SQL mode: the join's token recorded before the answer. Not acknowledged when that fails: a
   * fresh place must not outlive the refusal, or the retry would be handed the same (refused)
   * entry number again; the retry takes a new token id. Unless a concurrent copy of this join
   * recorded the token meanwhile and answered with the place. When SQL cannot say (it is down),
   * the place is kept: the retry's claim finds it again.
   */
  private async recordInSql(backend: Backend, facts: QueueTokenFacts, replaced: string[], claim: JoinClaim & { queueJti: string },
    fresh: boolean): Promise<IssuedQueueToken> {
    try {
      return await this.tokens.recordQueueTokenInSql(facts, replaced, claim.now, backend, { srcJti: claim.srcJti });
    } catch (err) {
      if (fresh && (await backend.tokens.giveBackJoinClaim(claim).catch(() => false))) {
        await backend.queue.leave(facts.concertId, facts.userId, facts.jti, claim.now, 'leave').catch(() => {});
      }
      throw err;
    }
  }

  private async joinPrequeue(backend: Backend, principal: Principal, concertId: number, now: number, nonce: string | undefined,
    moving: boolean): Promise<JoinAnswer> {
    const r = await this.sale!.joinPrequeue(principal, concertId, now, nonce, { backend, moving });
    if (moving) await this.leave(principal, now).catch(() => this.tokens.revoke([principal.jti], now)).catch(() => {});
    return { created: r.created, token: r.token, expiresAt: r.expiresAt, place: this.prequeueView(concertId, r.standing) };
  }

  /**
   * Joining again with the live queue token of this concert: the same token and place, the
   * heartbeat refreshed as a poll would. Null when the waiting place has lapsed: the token
   * then takes a new place at the back, as it always did.
   */
  private async keepPlace(backend: Backend, principal: QueuePrincipal, now: number): Promise<JoinAnswer | null> {
    const concertId = principal.concertId;
    const store = backend.queue;
    let place: QueuePlace;
    try {
      const road = await this.road(principal, now, backend, true);
      if ('view' in road) return { created: false, token: principal.token, expiresAt: principal.exp * 1000, place: road.view };
      const p = road.principal;
      place = await this.withPlace(backend, p, now, () => store.poll(concertId, p.userId, p.jti, now));
    } catch (err) {
      if (isUnauthenticated(err)) return null;
      throw err;
    }
    return { created: false, token: principal.token, expiresAt: principal.exp * 1000, place: this.view(concertId, place) };
  }

  /** The answer of the join that replaced `principal` in this concert, while it may be replayed and its place lives. */
  private async replayJoin(backend: Backend, principal: Principal, concertId: number, now: number): Promise<JoinAnswer | null> {
    const replay = await this.tokens.replayableJoin(principal, concertId, now);
    if (!replay) return this.replayUnrecordedJoin(backend, principal, concertId, now);
    const store = backend.queue;
    let place: QueuePlace;
    try {
      const road = await this.road(replay.principal, now, backend, true);
      if ('view' in road) return { created: false, token: replay.issued.token, expiresAt: replay.issued.expiresAt, place: road.view };
      const q = road.principal;
      place = await this.withPlace(backend, q, now, () => store.poll(concertId, q.userId, q.jti, now));
    } catch (err) {
      if (isUnauthenticated(err)) return null; // the place has ended: the replaced token is just that
      throw err;
    }
    return { created: false, token: replay.issued.token, expiresAt: replay.issued.expiresAt, place: this.view(concertId, place) };
  }

  /**
   * Redis mode, a join whose token's record has not reached SQL yet: its claim in Redis names the
   * token and its issue time, the place (Redis's) its entry number; signed as the join signed it.
   */
  private async replayUnrecordedJoin(backend: Backend, principal: Principal, concertId: number, now: number): Promise<JoinAnswer | null> {
    if (!backend.joinsRecordedBehind) return null;
    const claim = await backend.tokens.joinClaimOf(principal.jti, concertId, now);
    if (!claim || now >= claim.issuedAt + this.config.joinReplaySeconds * 1000) return null;
    let place: QueuePlace;
    try {
      place = await backend.queue.poll(concertId, principal.userId, claim.jti, now);
    } catch (err) {
      if (isUnauthenticated(err)) return null;
      throw err;
    }
    const expiresAt = claim.issuedAt + this.config.queueTokenTtlSeconds * 1000;
    const token = await this.tokens.signQueueToken({
      userId: principal.userId, jti: claim.jti, concertId, seq: place.seq, createdAt: claim.issuedAt, expiresAt,
    });
    return { created: false, token, expiresAt, place: this.view(concertId, place) };
  }

  /**
   * A poll is the heartbeat, and it keeps the token alive too: past half its life the answer
   * carries a refreshed `token` (same place, new exp). Refreshing is best effort: a poll that
   * could not record it answers without one, and the next poll tries again.
   */
  async poll(principal: Principal, now: number): Promise<PlaceView & { token?: string }> {
    const queueToken = asQueueToken(principal);
    const concertId = queueToken.concertId;
    const backend = this.backends.current;
    const store = backend.queue;
    const road = await this.road(queueToken, now, backend);
    const p = 'view' in road ? queueToken : road.principal;
    const view = 'view' in road ? road.view
      : this.view(concertId, await this.withPlace(backend, p, now, () => store.poll(concertId, p.userId, p.jti, now)));
    if (this.tokens.refreshDue(p, now)) {
      const refreshed = await this.tokens.refreshQueueToken(p, now).catch(() => null);
      if (refreshed) return { ...view, token: refreshed.token };
    }
    // Drawn: from now on the token names the entry number the draw gave.
    if (p.seq !== queueToken.seq && p.seq) {
      const token = await this.tokens.signQueueToken({
        userId: p.userId, jti: p.jti, concertId, seq: p.seq, createdAt: now, expiresAt: p.exp * 1000,
      });
      return { ...view, token };
    }
    return view;
  }

  async leave(principal: Principal, now: number): Promise<void> {
    const p = asQueueToken(principal);
    const { concertId, seq, userId, jti } = p;
    this.backends.assertWritable();
    const backend = this.backends.current;
    if (this.sale && seq === 0 && (await this.sale.leavePrequeue({ concertId, userId, jti }, now, backend))) return;
    // Redis mode: the token's SQL record first (a revoked row even if its record has not arrived),
    // so that a failure leaves the place untouched for the retry (which finds it still live in
    // Redis and completes the leave). SQL mode ends the place and revokes the token in one
    // transaction, after taking back a place it never recorded (withPlace), so that it ends too.
    if (!backend.leaveRevokesToken) await this.tokens.revokeQueueToken(p, now);
    await this.withPlace(backend, p, now, () => backend.queue.leave(concertId, userId, jti, now, 'leave'));
  }

  /** Active-only endpoints: a queue token of this concert whose holder has been admitted. */
  async requireActive(principal: Principal, concertId: number, now: number): Promise<{ activeUntil: number }> {
    if (principal.typ !== 'queue') throw errors.notAdmitted('an admitted queue token is required');
    if (principal.concertId !== concertId) throw errors.notAdmitted('this queue token belongs to another concert');
    const backend = this.backends.current;
    const store = backend.queue;
    const road = await this.road(principal, now, backend);
    if ('view' in road) throw errors.notAdmitted('the sale has not opened yet: you are pre-queued for its draw');
    const p = road.principal;
    const r = await this.withPlace(backend, p, now, () => store.check(concertId, p.userId, p.jti, now));
    if (!r.active) throw errors.notAdmitted();
    return { activeUntil: r.activeUntil };
  }

  /** Any live token: user tokens by their record, queue tokens by their place. */
  assertLive(principal: Principal, now: number): Promise<void> {
    return this.assertLiveWith(this.backends.current, principal, now);
  }

  async assertLiveWith(backend: Backend, principal: Principal, now: number): Promise<void> {
    if (principal.typ === 'user') return this.tokens.assertUserTokenLive(principal, now, backend);
    const store = backend.queue;
    const road = await this.road(principal, now, backend);
    if ('view' in road) return;
    const p = road.principal;
    await this.withPlace(backend, p, now, () => store.check(p.concertId, p.userId, p.jti, now));
  }
}

function asQueueToken(principal: Principal): QueuePrincipal {
  if (principal.typ !== 'queue') throw errors.unauthenticated('a queue token is required');
  return principal;
}
