import { randomUUID } from 'node:crypto';
import type { Config } from '../../config.ts';
import { errors } from '../../errors.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { runScript } from '../../redis/scripts.ts';
import type { Db } from '../../store/connect.ts';
import { JwtCodec, type TokenClaims } from './jwt.ts';
import { assertSqlMode } from '../../resilience/sql-fence.ts';
import { claimEntry } from '../queue/entries.repo.ts';
import { ensureUser, insertToken, isTokenLive, revokeTokens } from './tokens.repo.ts';

export interface Principal {
  typ: 'user' | 'queue';
  userId: number;
  jti: string;
  concertId?: number;
  seq?: number;
  exp: number;
  token: string;
}

/**
 * Issues and checks tokens. Records are written through: SQL first (the record of truth),
 * then Redis. Past TOKEN_REDIS_LIMIT live user tokens, new ones stay in SQL only.
 */
export class TokenService {
  readonly jwt: JwtCodec;
  constructor(private readonly db: Db, private readonly redis: RedisClient, private readonly config: Config) {
    this.jwt = new JwtCodec(config.jwtSecret);
  }

  /** Signature and expiry only; the server-side record is checked by the caller's store. */
  decode(token: string, now: number): Principal | null {
    const c: TokenClaims | null = this.jwt.verify(token, Math.floor(now / 1000));
    if (!c) return null;
    return { typ: c.typ, userId: Number(c.sub), jti: c.jti, concertId: c.cid, seq: c.seq, exp: c.exp, token };
  }

  async issueUserToken(userId: number, now: number, useRedis: boolean): Promise<{ token: string; expiresAt: number; inRedis: boolean }> {
    const jti = randomUUID();
    const ttlMs = this.config.userTokenTtlSeconds * 1000;
    const expiresAt = now + ttlMs;
    await this.db.transaction().execute(async (trx) => {
      await ensureUser(trx, userId, now);
      await insertToken(trx, { jti, userId, typ: 'user', expiresAt, now });
    });
    let inRedis = false;
    if (useRedis) {
      const r = await runScript(this.redis, 'issueToken', [keys.userToken(jti), keys.liveUserTokens],
        [userId, jti, now, ttlMs, this.config.tokenRedisLimit]);
      inRedis = r[1] === 1;
    }
    const token = this.jwt.sign({ typ: 'user', sub: String(userId), jti, iat: Math.floor(now / 1000), exp: Math.floor(expiresAt / 1000) });
    return { token, expiresAt, inRedis };
  }

  signQueueToken(userId: number, jti: string, concertId: number, seq: number, now: number): { token: string; expiresAt: number } {
    const expiresAt = now + this.config.queueTokenTtlSeconds * 1000;
    const token = this.jwt.sign({
      typ: 'queue', sub: String(userId), jti, cid: concertId, seq, iat: Math.floor(now / 1000), exp: Math.floor(expiresAt / 1000),
    });
    return { token, expiresAt };
  }

  /** A user token's record: Redis first, SQL for tokens that overflowed or when Redis is out. */
  async assertUserTokenLive(p: Principal, now: number, useRedis: boolean): Promise<void> {
    if (useRedis && (await this.redis.exists(keys.userToken(p.jti)))) return;
    if (!(await isTokenLive(this.db, p.jti, now))) throw errors.unauthenticated('token revoked or unknown');
  }

  async assertQueueTokenLiveInSql(p: Principal, now: number): Promise<void> {
    if (!(await isTokenLive(this.db, p.jti, now))) throw errors.unauthenticated('token revoked or unknown');
  }

  /**
   * Records a queue token and revokes the tokens it replaces, in SQL and in Redis. The token's
   * entry number is claimed in the same transaction: a number SQL mode has already given to
   * someone else refuses the join (503) before anything is acknowledged.
   */
  async recordQueueToken(p: { userId: number; jti: string; concertId: number; seq: number; expiresAt: number }, replaced: string[],
    now: number, useRedis: boolean): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      // A SQL-mode place is recorded only while the fleet is in SQL mode (see assertSqlMode).
      if (!useRedis) await assertSqlMode(trx);
      if (!(await claimEntry(trx, { concertId: p.concertId, seq: p.seq, userId: p.userId, now }))) {
        throw errors.unavailable('that place in line was taken while the service switched stores; join again', 1);
      }
      await insertToken(trx, { jti: p.jti, userId: p.userId, typ: 'queue', concertId: p.concertId, seq: p.seq, expiresAt: p.expiresAt, now });
      await revokeTokens(trx, replaced, now);
    });
    if (useRedis && replaced.length > 0) {
      await this.redis.pipeline()
        .del(...replaced.map((j) => keys.userToken(j)))
        .zrem(keys.liveUserTokens, ...replaced)
        .exec();
    }
  }

  revoke(jtis: string[], now: number) {
    return revokeTokens(this.db, jtis, now);
  }

  /** Copies an overflowed user's token into Redis (the seed: when the user becomes active). */
  async promoteToRedis(jti: string, userId: number, expiresAt: number, now: number): Promise<void> {
    if (expiresAt <= now) return;
    await this.redis.pipeline().set(keys.userToken(jti), userId, 'PXAT', expiresAt).zadd(keys.liveUserTokens, expiresAt, jti).exec();
  }
}
