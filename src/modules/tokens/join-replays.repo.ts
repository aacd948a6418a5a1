import type { Transaction } from 'kysely';
import { isPostgres, type Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';

export interface JoinReplay { queueJti: string; userId: number; createdAt: number }

/**
 * Claims the queue token ids that joins give out, many joins in two statements (TokenService's
 * group commit): for a join made with token `srcJti` in a concert, the first
 * caller's `queueJti` is stored, every later one (a double-submit racing it, a retry whose answer
 * was lost) reads that one back. The row is also the replay record: SQL, so it outlives a switch
 * between Redis and SQL mode. Answers each claim in order; copies of one join in the same batch
 * read back the same claim; null only when a refused attempt dropped the claim in between.
 */
export async function claimJoins(db: Db, cs: { srcJti: string; concertId: number; queueJti: string; userId: number; now: number }[]):
  Promise<(JoinReplay | null)[]> {
  const keyOf = (src: string, concertId: number) => `${concertId}:${src}`;
  const unique = new Map<string, (typeof cs)[number]>();
  for (const c of cs) if (!unique.has(keyOf(c.srcJti, c.concertId))) unique.set(keyOf(c.srcJti, c.concertId), c);
  // In one order, so that two batches with copies of the same joins never wait on each other crosswise.
  const ordered = [...unique.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, c]) => c);
  await db.insertInto('join_replays').values(ordered.map((c) => ({
    src_jti: c.srcJti, concert_id: c.concertId, queue_jti: c.queueJti, user_id: c.userId, created_at: c.now,
  }))).onConflict((oc) => oc.columns(['src_jti', 'concert_id']).doNothing()).execute();
  const rows = await db.selectFrom('join_replays').select(['src_jti', 'concert_id', 'queue_jti', 'user_id', 'created_at'])
    .where('src_jti', 'in', [...new Set(cs.map((c) => c.srcJti))]).execute();
  const found = new Map(rows.map((r) => [keyOf(r.src_jti, r.concert_id), { queueJti: r.queue_jti, userId: r.user_id, createdAt: r.created_at }]));
  return cs.map((c) => found.get(keyOf(c.srcJti, c.concertId)) ?? null);
}

/**
 * holdJoinClaim for many joins at once, inside the transaction that records their tokens: the
 * claims (`concertId:srcJti` → queue token id) as they stand, locked until commit on PostgreSQL
 * (in one order, so that two batches never wait on each other crosswise).
 */
export async function holdJoinClaims(trx: Transaction<Database>, srcJtis: string[]): Promise<Map<string, string>> {
  if (srcJtis.length === 0) return new Map();
  let q = trx.selectFrom('join_replays').select(['src_jti', 'concert_id', 'queue_jti'])
    .where('src_jti', 'in', [...new Set(srcJtis)]).orderBy('src_jti').orderBy('concert_id');
  if (isPostgres(trx)) q = q.forUpdate();
  const rows = await q.execute();
  return new Map(rows.map((r) => [`${r.concert_id}:${r.src_jti}`, r.queue_jti]));
}

export async function findJoinReplay(db: Db, srcJti: string, concertId: number): Promise<JoinReplay | null> {
  const row = await db.selectFrom('join_replays').select(['queue_jti', 'user_id', 'created_at'])
    .where('src_jti', '=', srcJti).where('concert_id', '=', concertId).executeTakeFirst();
  return row ? { queueJti: row.queue_jti, userId: row.user_id, createdAt: row.created_at } : null;
}

/**
 * Inside the transaction that records a join's queue token: true while the claim still names
 * `queueJti`, and (PostgreSQL) locked until commit, so that a refused copy of the join cannot
 * drop it in between (see dropJoinClaimUnlessRecorded). SQLite runs one writer at a time.
 */
export async function holdJoinClaim(trx: Transaction<Database>, srcJti: string, concertId: number, queueJti: string): Promise<boolean> {
  let q = trx.selectFrom('join_replays').select('queue_jti')
    .where('src_jti', '=', srcJti).where('concert_id', '=', concertId).where('queue_jti', '=', queueJti);
  if (isPostgres(trx)) q = q.forUpdate();
  return (await q.executeTakeFirst()) !== undefined;
}

/**
 * A join that was refused before it was acknowledged gives its claim back, so that its retry
 * takes a new queue token id, unless a concurrent copy of the same join has recorded the token
 * meanwhile (that copy answered with the place: it must stay). The claim row is locked first:
 * a copy recording right now commits before the check below reads the token, and a copy that
 * records later finds the claim gone and is refused. True when the claim was dropped.
 */
export async function dropJoinClaimUnlessRecorded(db: Db, srcJti: string, concertId: number, queueJti: string): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    if (!(await holdJoinClaim(trx, srcJti, concertId, queueJti))) return false;
    const recorded = await trx.selectFrom('tokens').select('jti').where('jti', '=', queueJti).executeTakeFirst();
    if (recorded) return false;
    await trx.deleteFrom('join_replays')
      .where('src_jti', '=', srcJti).where('concert_id', '=', concertId).where('queue_jti', '=', queueJti).execute();
    return true;
  });
}

/**
 * Drops claims made before `before`. The caller keeps them as long as the token a join was made
 * with could still come back with it: past the replay window and the longest token life.
 */
export async function purgeJoinReplays(db: Db, before: number): Promise<number> {
  const r = await db.deleteFrom('join_replays').where('created_at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows ?? 0);
}
