import { forgetUserTokens } from '../../modules/tokens/token-slots.ts';
import type { RedisClient } from '../../redis/connection.ts';
import type { Db } from '../../store/connect.ts';

/** User tokens forgotten per call (one pipeline per tag inside). */
const TOKENS_PER_BATCH = 1000;

/**
 * A user token revoked while Redis was not in use (joining in SQL mode revokes it in SQL only)
 * still has its Redis record, which would make it valid again once Redis serves: remove the
 * records of every revoked user token that has not expired yet.
 */
export async function purgeRevokedUserTokens(db: Db, redis: RedisClient, now: number): Promise<number> {
  const rows = await db.selectFrom('tokens').select('jti')
    .where('typ', '=', 'user').where('revoked_at', 'is not', null).where('expires_at', '>', now).execute();
  for (let i = 0; i < rows.length; i += TOKENS_PER_BATCH) {
    const jtis = rows.slice(i, i + TOKENS_PER_BATCH).map((r) => r.jti);
    await forgetUserTokens(redis, jtis);
  }
  return rows.length;
}
