import { errors } from '../../errors.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { issueToken } from '../../redis/script-calls.ts';
import { assertSqlMode } from '../../resilience/sql-fence.ts';
import type { Db } from '../../store/connect.ts';
import { GroupCommit } from './group-commit.ts';
import { claimJoins, giveBackJoinClaim } from './join-replays.repo.ts';
import { recordQueueTokens, type TokenRecord } from './queue-token-records.ts';
import { isTokenLive } from './tokens.repo.ts';
import { forgetUserTokens, markUserTokenSpent, newQueueTokenId, SPENT_USER_TOKEN, tagLimit, tagOf } from './token-slots.ts';

/**
 * The tokens' mode-dependent half. SQL has every token's record in both modes; Redis mode also
 * keeps user tokens in Redis (up to TOKEN_REDIS_LIMIT live ones) so that checking one costs no
 * SQL read.
 */
export interface TokenStore {
  /** A user token SQL has just recorded: true when this store keeps it too (Redis, under the limit). */
  keepUserToken(t: { jti: string; userId: number; now: number; ttlMs: number; limit: number }): Promise<boolean>;
  userTokenLive(jti: string, now: number): Promise<boolean>;
  /** Records a join's queue token in SQL, many joins to a transaction (see recordQueueTokens). */
  recordQueueToken(r: TokenRecord): Promise<{ createdAt: number; expiresAt: number }>;
  /** Tokens SQL has revoked leave the store's copy (Redis); SQL has nothing more to do. */
  forget(jtis: string[]): Promise<void>;
  /**
   * A user token a join spent, whose revocation SQL gets with the join's record (written behind:
   * Redis mode): refused from now on, though SQL's row may still say live for a moment.
   */
  markSpent(userJti: string): Promise<void>;
  /**
   * The queue token a join made with `srcJti` gives out in a concert: a new id, or the one a
   * double-submit of the same join (or an earlier attempt whose answer was lost) already claimed,
   * with the time of that first claim, which is the token's issue time for every copy.
   */
  claimJoin(c: JoinClaim): Promise<ClaimedJoin>;
  /**
   * Gives back the claim of a join refused before it was acknowledged, so that its retry takes a
   * new id (see giveBackJoinClaim); false when a concurrent copy recorded the token meanwhile
   * (the place stays).
   */
  giveBackJoinClaim(c: JoinClaim & { queueJti: string }): Promise<boolean>;
  /**
   * The claim of the join made with `srcJti` in a concert, while this store keeps it: what a
   * replay of that join answers with before its token's record has reached SQL (Redis mode).
   */
  joinClaimOf(srcJti: string, concertId: number, now: number): Promise<ClaimedJoin | null>;
}

export interface JoinClaim { srcJti: string; concertId: number; userId: number; now: number }
/** A join's claim: the queue token id it gives out, and when that id was first claimed (ms). */
export interface ClaimedJoin { jti: string; issuedAt: number }

export class SqlTokenStore implements TokenStore {
  /** Fenced: a SQL-mode place is recorded only while the fleet is in SQL mode (see assertSqlMode). */
  private readonly records = new GroupCommit((items: TokenRecord[]) => recordQueueTokens(this.db, items, assertSqlMode));

  /** Claims in SQL: concurrent joins' claims go together (two statements for the lot). */
  private readonly claims = new GroupCommit((cs: Parameters<typeof claimJoins>[1]) => claimJoins(this.db, cs));

  constructor(private readonly db: Db) {}

  async keepUserToken(): Promise<boolean> {
    return false;
  }

  userTokenLive(jti: string, now: number): Promise<boolean> {
    return isTokenLive(this.db, jti, now);
  }

  recordQueueToken(r: TokenRecord) {
    return this.records.submit(r);
  }

  async forget(): Promise<void> {}

  /** SQL mode revokes a spent token with the join's record, before the answer. */
  async markSpent(): Promise<void> {}

  async claimJoin(c: JoinClaim): Promise<ClaimedJoin> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const claim = await this.claims.submit({ ...c, queueJti: newQueueTokenId() });
      if (claim) return { jti: claim.queueJti, issuedAt: claim.createdAt };
    }
    throw errors.unavailable('this join is being retried at the same time; join again', 1);
  }

  async giveBackJoinClaim(c: JoinClaim & { queueJti: string }): Promise<boolean> {
    return (await giveBackJoinClaim(this.db, c)).dropped;
  }

  /** SQL records every join before its answer: the replay reads the record itself (replayableJoin). */
  async joinClaimOf(): Promise<ClaimedJoin | null> {
    return null;
  }
}

/**
 * Redis mode. A user token Redis does not have (past the limit, or lost) is asked of SQL
 * (`sqlOnly`). A join's claim is made in Redis, with no SQL on the way: the claim's row is
 * written with the join's token when the write-behind records it (recordStreamedTokens), so SQL
 * has the claim, the replay record, of every recorded join; Redis keeps it for the copies and
 * retries that come before that (joinClaimOf).
 */
export class RedisTokenStore implements TokenStore {
  private readonly records = new GroupCommit((items: TokenRecord[]) => recordQueueTokens(this.db, items));
  private readonly claimMs: number;

  constructor(private readonly db: Db, private readonly redis: RedisClient, private readonly sqlOnly: TokenStore,
    joinReplayMs: number) {
    // As long as a join may be replayed, and never so short that a double-submit outlives it.
    this.claimMs = Math.max(joinReplayMs, MIN_CLAIM_MS);
  }

  async keepUserToken(t: { jti: string; userId: number; now: number; ttlMs: number; limit: number }): Promise<boolean> {
    const r = await issueToken(this.redis, { userId: t.userId, jti: t.jti, now: t.now, ttlMs: t.ttlMs, limit: tagLimit(t.limit, tagOf(t.jti)) });
    return r.stored;
  }

  async userTokenLive(jti: string, now: number): Promise<boolean> {
    const held = await this.redis.get(keys.userToken(jti));
    if (held !== null) return held !== SPENT_USER_TOKEN;
    return this.sqlOnly.userTokenLive(jti, now);
  }

  recordQueueToken(r: TokenRecord) {
    return this.records.submit(r);
  }

  forget(jtis: string[]): Promise<void> {
    return forgetUserTokens(this.redis, jtis);
  }

  markSpent(userJti: string): Promise<void> {
    return markUserTokenSpent(this.redis, userJti, SPENT_MARK_MS);
  }

  /** One command: the claim is set unless there is one, and whichever there is comes back. */
  async claimJoin(c: JoinClaim): Promise<ClaimedJoin> {
    const mine = { jti: newQueueTokenId(), issuedAt: c.now };
    const claimed = await this.redis.set(keys.joinClaim(c.concertId, c.srcJti), claimValue(mine), 'PX', this.claimMs, 'NX', 'GET');
    return claimed === null ? mine : parseClaimValue(claimed, c.now);
  }

  /**
   * SQL decides, under the claim's row lock, as in SQL mode; then the Redis claim is moved to
   * what the retry must take: the live claim SQL has, or a fresh id when the claim was given back.
   */
  async giveBackJoinClaim(c: JoinClaim & { queueJti: string }): Promise<boolean> {
    const r = await giveBackJoinClaim(this.db, c);
    if (r.claim !== null && r.claim.queueJti !== c.queueJti) {
      const live = { jti: r.claim.queueJti, issuedAt: r.claim.createdAt };
      await this.redis.set(keys.joinClaim(c.concertId, c.srcJti), claimValue(live), 'PX', this.claimMs);
    } else if (r.dropped) {
      const fresh = { jti: newQueueTokenId(), issuedAt: c.now };
      await this.redis.set(keys.joinClaim(c.concertId, c.srcJti), claimValue(fresh), 'PX', this.claimMs);
    }
    return r.dropped;
  }

  async joinClaimOf(srcJti: string, concertId: number, now: number): Promise<ClaimedJoin | null> {
    const value = await this.redis.get(keys.joinClaim(concertId, srcJti));
    return value === null ? null : parseClaimValue(value, now);
  }
}

/**
 * A claim in Redis: the id, a dot, the issue time in base 36 (a queue token id is base64url, which
 * has no dot). A value without a time (written by an earlier version) counts from `now`.
 */
export function claimValue(c: ClaimedJoin): string {
  return `${c.jti}.${c.issuedAt.toString(36)}`;
}

export function parseClaimValue(value: string, now: number): ClaimedJoin {
  const dot = value.indexOf('.');
  if (dot < 0) return { jti: value, issuedAt: now };
  const issuedAt = Number.parseInt(value.slice(dot + 1), 36);
  return { jti: value.slice(0, dot), issuedAt: Number.isSafeInteger(issuedAt) ? issuedAt : now };
}

/** The shortest life of a join's claim in Redis. */
const MIN_CLAIM_MS = 30_000;

/**
 * How long a spent user token's mark stays: far beyond the write-behind's lag (under a second
 * at the bench's peak, docs/performance.md), short enough to cost little memory (about 70 B a
 * join for a minute). A backlog older than this (SQL down for longer) lets the token verify
 * again from SQL until its record arrives; a join made with it again still finds its claim.
 */
const SPENT_MARK_MS = 60_000;
