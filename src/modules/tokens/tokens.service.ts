import type { Config } from '../../config.ts';
import { errors } from '../../errors.ts';
import type { Backend } from '../../backend/types.ts';
import type { Backends } from '../../backend/backends.ts';
import type { Db } from '../../store/connect.ts';
import { JwtCodec, type TokenClaims } from './jwt.ts';
import { VerifiedTokens } from './verified-tokens.ts';
import { GroupCommitter } from '../../store/group-commit.ts';
import { findJoinReplay } from './join-replays.repo.ts';
import type { QueueTokenFacts } from './queue-token-records.ts';
import { extendTokenExpiry, insertUserTokens, queueTokenRecord, revokeQueueToken, revokeTokens } from './tokens.repo.ts';
import { newUserTokenId } from './token-slots.ts';

/** `iat` and `exp` as the token carries them (seconds). */
interface TokenHolder { userId: number; jti: string; iat: number; exp: number; token: string }
/**
 * A user token names its holder; a queue token also the concert and the entry number (0 while
 * pre-queued). A user token has neither (so `seq` reads undefined on any principal).
 */
export type UserPrincipal = TokenHolder & { typ: 'user'; concertId?: never; seq?: never };
export type QueuePrincipal = TokenHolder & { typ: 'queue'; concertId: number; seq: number };
export type Principal = UserPrincipal | QueuePrincipal;

const REFRESH_PAUSE_MS = 5000;

/**
 * Verified tokens kept per instance. It must hold every token that polls one instance within a
 * poll interval, or a fan's next poll finds its entry evicted (a cyclic scan defeats an LRU).
 * Measured at about 0.5 KB an entry for a queue token (docs/performance.md), so ≈ 50 MB when full.
 */
export const VERIFIED_TOKENS_CAP = 100_000;

/**
 * User tokens issued together are recorded in one SQL commit (GroupCommitter): a token goes at
 * once when no commit is under way, else it waits for that commit to return (at most windowMs,
 * less once maxBatch are waiting) and goes with the others that came meanwhile. 64 rows of 8
 * columns keep a batch's INSERT under SQLite's 999 bound parameters.
 */
export const USER_TOKEN_COMMIT = { windowMs: 2, maxBatch: 64, inFlight: 1 };

/** A queue token as issued: the signed string and what it carries. */
export interface IssuedQueueToken { token: string; jti: string; seq: number; expiresAt: number }

/**
 * Issues and checks tokens. Records are written through: SQL first (the record of truth),
 * then Redis. Past TOKEN_REDIS_LIMIT live user tokens, new ones stay in SQL only.
 */
export class TokenService {
  readonly jwt: JwtCodec;
  readonly verified = new VerifiedTokens<Principal>(VERIFIED_TOKENS_CAP);
  /** Where new user tokens are recorded in SQL, many to a commit. */
  readonly userTokenCommits: GroupCommitter<{ jti: string; userId: number; expiresAt: number; now: number }>;
  private refreshPausedUntil = 0;
  constructor(private readonly db: Db, private readonly backends: Backends, private readonly config: Config) {
    this.jwt = new JwtCodec(config.jwtSecret);
    this.userTokenCommits = new GroupCommitter((items) => insertUserTokens(db, items), USER_TOKEN_COMMIT);
  }

  /**
   * Signature and expiry only; the server-side record is checked by the caller's store. A token
   * verified before and not past its exp is answered from the cache (the same, frozen, Principal).
   */
  async decode(token: string, now: number): Promise<Principal | null> {
    const hit = this.verified.get(token, now);
    if (hit) return hit;
    const c: TokenClaims | null = await this.jwt.verify(token, Math.floor(now / 1000));
    if (!c) return null;
    const p = principalOf(c, token);
    if (!p) return null;
    this.verified.set(token, p, now);
    return p;
  }

  async issueUserToken(userId: number, now: number): Promise<{ token: string; expiresAt: number; inRedis: boolean }> {
    const backend = this.backends.current;
    const limit = this.config.tokenRedisLimit;
    const jti = newUserTokenId(limit);
    const ttlMs = this.config.userTokenTtlSeconds * 1000;
    const expiresAt = now + ttlMs;
    // Signed while the row waits for its commit (with the other tokens issued in the same
    // instant); the token is handed out only once the row is committed, then written to Redis.
    const [token] = await Promise.all([
      this.jwt.sign({ typ: 'user', sub: String(userId), jti, iat: Math.floor(now / 1000), exp: Math.floor(expiresAt / 1000) }),
      this.userTokenCommits.submit({ jti, userId, expiresAt, now }),
    ]);
    const inRedis = await backend.tokens.keepUserToken({ jti, userId, now, ttlMs, limit });
    return { token, expiresAt, inRedis };
  }

  /**
   * Signs a queue token from its server-side record: iat from when it was recorded, exp from its
   * recorded expiry. Whoever signs the same record gets the same string, which is what lets a
   * double-submitted or retried join answer with the token the first one gave out.
   */
  signQueueToken(r: { userId: number; jti: string; concertId: number; seq: number; createdAt: number; expiresAt: number }): Promise<string> {
    return this.jwt.sign({
      typ: 'queue', sub: String(r.userId), jti: r.jti, cid: r.concertId, seq: r.seq,
      iat: Math.floor(r.createdAt / 1000), exp: Math.floor(r.expiresAt / 1000),
    });
  }

  /** A user token's record: Redis first, SQL for tokens that overflowed or when Redis is out. */
  async assertUserTokenLive(p: Principal, now: number, backend: Backend): Promise<void> {
    if (!(await backend.tokens.userTokenLive(p.jti, now))) throw errors.unauthenticated('token revoked or unknown');
  }

  /**
   * Records a queue token and revokes the tokens it replaces, in SQL and in Redis; returns the
   * token as recorded (see recordQueueTokenInSql).
   */
  async recordQueueToken(p: { userId: number; jti: string; concertId: number; seq: number; expiresAt: number }, replaced: string[],
    now: number, backend: Backend): Promise<IssuedQueueToken> {
    const issued = await this.recordQueueTokenInSql({ ...p, issuedAt: now }, replaced, now, backend);
    await backend.tokens.forget(replaced);
    return issued;
  }

  /**
   * The SQL half: the record of truth. The token's entry number is claimed in the same
   * transaction: a number SQL mode has already given to someone else refuses the join (503)
   * before anything is acknowledged. The token id may already be recorded (a double-submit of
   * the same join recorded it first): then that record is the token, if it is this place's.
   * Concurrent joins share one transaction (see recordBatch): a join waits for one commit, not
   * for one of its own.
   */
  async recordQueueTokenInSql(p: QueueTokenFacts, replaced: string[], now: number, backend: Backend,
    claim?: { srcJti: string }): Promise<IssuedQueueToken> {
    const row = await backend.tokens.recordQueueToken({ p, replaced, now, claim });
    const issued = { ...p, createdAt: row.createdAt, expiresAt: row.expiresAt };
    return { token: await this.signQueueToken(issued), jti: p.jti, seq: p.seq, expiresAt: row.expiresAt };
  }

  /**
   * The queue token id a join made with `src` gives out in a concert, claimed in SQL (the
   * pre-queue, whose join is one SQL transaction; queue joins claim through their backend's
   * token store): a new one, or the one a double-submit of the same join already claimed.
   */
  async claimJoin(src: Principal, concertId: number, now: number): Promise<string> {
    return (await this.backends.sql.tokens.claimJoin({ srcJti: src.jti, concertId, userId: src.userId, now })).jti;
  }

  /**
   * Gives back a claim whose join was refused, so that its retry takes a new place under a new
   * id; false (the claim kept) when a concurrent copy of the join recorded the token meanwhile.
   */
  dropJoinClaim(src: Principal, concertId: number, queueJti: string, now = Date.now()): Promise<boolean> {
    return this.backends.sql.tokens.giveBackJoinClaim({ srcJti: src.jti, concertId, userId: src.userId, now, queueJti });
  }

  /**
   * A join retried with the token that a join into this concert replaced (its answer was lost),
   * within JOIN_REPLAY_SECONDS: the queue token that join issued, while SQL still has it live.
   * Whether its place is still live is the caller's question (the place's store).
   */
  async replayableJoin(src: Principal, concertId: number, now: number):
    Promise<{ principal: QueuePrincipal; issued: IssuedQueueToken } | null> {
    const claim = await findJoinReplay(this.db, src.jti, concertId);
    if (!claim || claim.userId !== src.userId || now >= claim.createdAt + this.config.joinReplaySeconds * 1000) return null;
    const row = await queueTokenRecord(this.db, claim.queueJti);
    if (!row || row.user_id !== src.userId || row.concert_id !== concertId || row.seq === null
      || row.revoked_at !== null || row.expires_at <= now) return null;
    const token = await this.signQueueToken({
      userId: src.userId, jti: claim.queueJti, concertId, seq: row.seq, createdAt: row.created_at, expiresAt: row.expires_at,
    });
    return {
      principal: {
        typ: 'queue', userId: src.userId, jti: claim.queueJti, concertId, seq: row.seq,
        iat: Math.floor(row.created_at / 1000), exp: Math.floor(row.expires_at / 1000), token,
      },
      issued: { token, jti: claim.queueJti, seq: row.seq, expiresAt: row.expires_at },
    };
  }

  /** Whether refreshQueueToken would try (a queue token past half its life, refreshes not paused): no I/O. */
  refreshDue(p: Principal, now: number): boolean {
    return p.typ === 'queue' && p.exp * 1000 - now < (this.config.queueTokenTtlSeconds * 1000) / 2 && now >= this.refreshPausedUntil;
  }

  /**
   * A queue token with less than half its life left, whose holder still has the place: the same
   * token id and entry number with a new expiry, recorded in SQL first (every store and the
   * recovery paths read it there; Redis keeps no expiry of its own for queue tokens). The old
   * string stays valid until its own exp, so a lost answer loses nothing. Null when not due.
   */
  async refreshQueueToken(p: QueuePrincipal, now: number): Promise<{ token: string; expiresAt: number } | null> {
    const ttlMs = this.config.queueTokenTtlSeconds * 1000;
    if (!this.refreshDue(p, now)) return null;
    let expiresAt: number | null;
    try {
      expiresAt = await extendTokenExpiry(this.db, p.jti, now + ttlMs, now);
    } catch (err) {
      // SQL is failing (Redis mode keeps serving polls through a SQL outage): the refresh waits
      // a few seconds rather than slowing every poll by a timeout. Half a life is plenty of time.
      this.refreshPausedUntil = now + REFRESH_PAUSE_MS;
      throw err;
    }
    if (expiresAt === null) return null;
    const token = await this.jwt.sign({
      typ: 'queue', sub: String(p.userId), jti: p.jti, cid: p.concertId, seq: p.seq, iat: Math.floor(now / 1000), exp: Math.floor(expiresAt / 1000),
    });
    return { token, expiresAt };
  }

  revoke(jtis: string[], now: number) {
    return revokeTokens(this.db, jtis, now);
  }

  /** Revokes a queue token in SQL, also when its record has not arrived yet (see revokeQueueToken). */
  revokeQueueToken(p: QueuePrincipal, now: number) {
    return revokeQueueToken(this.db, {
      jti: p.jti, userId: p.userId, concertId: p.concertId, seq: p.seq, issuedAt: p.iat * 1000, expiresAt: p.exp * 1000,
    }, now);
  }
}

/**
 * The principal a verified token's claims name; null for a queue token without its concert or
 * entry number (the codec refuses those already). One object shape for both kinds of token.
 */
function principalOf(c: TokenClaims, token: string): Principal | null {
  if (c.typ === 'queue' && (c.cid === undefined || c.seq === undefined)) return null;
  return Object.freeze({ typ: c.typ, userId: Number(c.sub), jti: c.jti, concertId: c.cid, seq: c.seq, iat: c.iat, exp: c.exp, token }) as Principal;
}
