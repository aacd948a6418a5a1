import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { issueToken } from '../../redis/script-calls.ts';
import { assertSqlMode } from '../../resilience/sql-fence.ts';
import type { Db } from '../../store/connect.ts';
import { GroupCommit } from './group-commit.ts';
import { recordQueueTokens, type TokenRecord } from './queue-token-records.ts';
import { isTokenLive } from './tokens.repo.ts';
import { forgetUserTokens, tagLimit, tagOf } from './token-slots.ts';

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
}

export class SqlTokenStore implements TokenStore {
  /** Fenced: a SQL-mode place is recorded only while the fleet is in SQL mode (see assertSqlMode). */
  private readonly records = new GroupCommit((items: TokenRecord[]) => recordQueueTokens(this.db, items, assertSqlMode));

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
}

/** Redis mode. A user token Redis does not have (past the limit, or lost) is asked of SQL (`sqlOnly`). */
export class RedisTokenStore implements TokenStore {
  private readonly records = new GroupCommit((items: TokenRecord[]) => recordQueueTokens(this.db, items));

  constructor(private readonly db: Db, private readonly redis: RedisClient, private readonly sqlOnly: TokenStore) {}

  async keepUserToken(t: { jti: string; userId: number; now: number; ttlMs: number; limit: number }): Promise<boolean> {
    const r = await issueToken(this.redis, { userId: t.userId, jti: t.jti, now: t.now, ttlMs: t.ttlMs, limit: tagLimit(t.limit, tagOf(t.jti)) });
    return r.stored;
  }

  async userTokenLive(jti: string, now: number): Promise<boolean> {
    if (await this.redis.exists(keys.userToken(jti))) return true;
    return this.sqlOnly.userTokenLive(jti, now);
  }

  recordQueueToken(r: TokenRecord) {
    return this.records.submit(r);
  }

  forget(jtis: string[]): Promise<void> {
    return forgetUserTokens(this.redis, jtis);
  }
}
