import type { Db } from '../../store/connect.ts';

export interface JoinReplay { queueJti: string; userId: number; createdAt: number }

/**
 * Claims the queue token id a join made with token `srcJti` gives out in a concert: the first
 * caller's `queueJti` is stored, every later one (a double-submit racing it, a retry whose answer
 * was lost) reads that one back. The row is also the replay record: SQL, so it outlives a switch
 * between Redis and SQL mode.
 */
export async function claimJoin(db: Db, c: { srcJti: string; concertId: number; queueJti: string; userId: number; now: number }):
  Promise<JoinReplay | null> {
  await db.insertInto('join_replays').values({
    src_jti: c.srcJti, concert_id: c.concertId, queue_jti: c.queueJti, user_id: c.userId, created_at: c.now,
  }).onConflict((oc) => oc.columns(['src_jti', 'concert_id']).doNothing()).execute();
  // Null only when a refused attempt dropped its claim between the two statements: claim again.
  return findJoinReplay(db, c.srcJti, c.concertId);
}

export async function findJoinReplay(db: Db, srcJti: string, concertId: number): Promise<JoinReplay | null> {
  const row = await db.selectFrom('join_replays').select(['queue_jti', 'user_id', 'created_at'])
    .where('src_jti', '=', srcJti).where('concert_id', '=', concertId).executeTakeFirst();
  return row ? { queueJti: row.queue_jti, userId: row.user_id, createdAt: row.created_at } : null;
}

/** A join that was refused before it was acknowledged: its retry must get a new queue token id. */
export async function dropJoinClaim(db: Db, srcJti: string, concertId: number, queueJti: string): Promise<void> {
  await db.deleteFrom('join_replays')
    .where('src_jti', '=', srcJti).where('concert_id', '=', concertId).where('queue_jti', '=', queueJti).execute();
}

/**
 * Drops claims made before `before`. The caller keeps them as long as the token a join was made
 * with could still come back with it: past the replay window and the longest token life.
 */
export async function purgeJoinReplays(db: Db, before: number): Promise<number> {
  const r = await db.deleteFrom('join_replays').where('created_at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows ?? 0);
}
