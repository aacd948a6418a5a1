import type { RedisClient } from '../../redis/connection.ts';
import { restorePlace } from '../../redis/script-calls.ts';
import type { Db } from '../../store/connect.ts';

export interface LostPlace { concertId: number; userId: number; jti: string; seq: number; now: number }

/**
 * Puts back into Redis a place that SQL says is live but Redis does not know: Redis lost it
 * (a failover that promoted a replica without the master's last writes, a master that took
 * writes for a moment after its replacement was elected). Every place is in SQL before it is
 * acknowledged (token and claimed entry, one transaction), so SQL can tell. The caller first
 * drains the concert's write-behind stream, so that SQL also knows every place Redis ended
 * (a lapse, an expiry) and such a place is not brought back. Redis keeps the upper hand: a user
 * it knows with another token (a newer place) is left alone. True when the place is back.
 */
export async function restoreLostPlace(db: Db, redis: RedisClient, p: LostPlace): Promise<boolean> {
  if (!(await liveInSql(db, p))) return false;
  const entry = await db.selectFrom('queue_entries').select(['status', 'active_until'])
    .where('concert_id', '=', p.concertId).where('seq', '=', p.seq).where('user_id', '=', p.userId)
    .executeTakeFirstOrThrow();
  const active = entry.status === 'active' && (entry.active_until ?? 0) > p.now;
  // A master that refuses writes (NOREPLICAS right after a failover) answers 503, not 401.
  const { restored } = await restorePlace(redis, {
    concertId: p.concertId, userId: p.userId, jti: p.jti, seq: p.seq, now: p.now, activeUntil: active ? entry.active_until! : 0,
  });
  return restored;
}

/**
 * SQL's view of the place: its token live and its entry waiting or admitted. Cheap (two primary
 * key reads), so callers ask it first and drain the stream only for places it calls live.
 */
export async function liveInSql(db: Db, p: LostPlace): Promise<boolean> {
  const token = await db.selectFrom('tokens').select('jti')
    .where('jti', '=', p.jti).where('typ', '=', 'queue').where('concert_id', '=', p.concertId).where('user_id', '=', p.userId)
    .where('seq', '=', p.seq).where('revoked_at', 'is', null).where('expires_at', '>', p.now)
    .executeTakeFirst();
  if (!token) return false;
  const entry = await db.selectFrom('queue_entries').select(['status', 'active_until'])
    .where('concert_id', '=', p.concertId).where('seq', '=', p.seq).where('user_id', '=', p.userId)
    .executeTakeFirst();
  const active = entry?.status === 'active' && (entry.active_until ?? 0) > p.now;
  return !!entry && (active || entry.status === 'waiting');
}
