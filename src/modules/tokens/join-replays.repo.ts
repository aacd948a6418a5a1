import { sql, type Transaction } from 'kysely';
import { isPostgres, type Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';

export interface JoinReplay { queueJti: string; userId: number; createdAt: number }

/**
 * A claim given back by a refused join (giveBackJoinClaim) keeps its row, its queue token id
 * marked with this prefix (no token id starts with it): a copy of the refused join that records
 * later finds its own id given back and is refused too, while any other attempt may take the
 * row over with its own id.
 */
const GIVEN_BACK = '~';
export const givenBack = (queueJti: string) => `${GIVEN_BACK}${queueJti}`;
export const isGivenBack = (claimed: string) => claimed.startsWith(GIVEN_BACK);

type ClaimRow = { srcJti: string; concertId: number; queueJti: string; userId: number; now: number };
const keyOf = (src: string, concertId: number) => `${concertId}:${src}`;

/** In one order, so that two batches with copies of the same joins never wait on each other crosswise. */
function inKeyOrder<T extends { srcJti: string; concertId: number }>(cs: T[]): T[] {
  const unique = new Map<string, T>();
  for (const c of cs) if (!unique.has(keyOf(c.srcJti, c.concertId))) unique.set(keyOf(c.srcJti, c.concertId), c);
  return [...unique.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, c]) => c);
}

/** Claim rows for joins, each unless its (token, concert) has one already (whatever it names). */
export async function insertJoinClaims(db: Db | Transaction<Database>, cs: ClaimRow[]): Promise<void> {
  if (cs.length === 0) return;
  const rows = inKeyOrder(cs);
  if (isPostgres(db)) {
    // One array a column (unnest), rows in key order: the same statement text for every batch.
    await sql`INSERT INTO join_replays (src_jti, concert_id, queue_jti, user_id, created_at)
      SELECT src_jti, concert_id, queue_jti, user_id, created_at
      FROM unnest(${rows.map((c) => c.srcJti)}::text[], ${rows.map((c) => c.concertId)}::bigint[], ${rows.map((c) => c.queueJti)}::text[],
        ${rows.map((c) => c.userId)}::bigint[], ${rows.map((c) => c.now)}::bigint[])
        WITH ORDINALITY AS c (src_jti, concert_id, queue_jti, user_id, created_at, n)
      ORDER BY n
      ON CONFLICT (src_jti, concert_id) DO NOTHING`.execute(db);
    return;
  }
  await db.insertInto('join_replays').values(rows.map((c) => ({
    src_jti: c.srcJti, concert_id: c.concertId, queue_jti: c.queueJti, user_id: c.userId, created_at: c.now,
  }))).onConflict((oc) => oc.columns(['src_jti', 'concert_id']).doNothing()).execute();
}

/** Moves a given-back claim to `queueJti`, only while it still says `from`; true when it did. */
export async function takeOverJoinClaim(db: Db | Transaction<Database>, c: ClaimRow, from: string): Promise<boolean> {
  const r = await db.updateTable('join_replays').set({ queue_jti: c.queueJti, user_id: c.userId, created_at: c.now })
    .where('src_jti', '=', c.srcJti).where('concert_id', '=', c.concertId).where('queue_jti', '=', from)
    .executeTakeFirst();
  return Number(r.numUpdatedRows ?? 0) > 0;
}

/**
 * Claims the queue token ids that joins give out, many joins at once (SQL mode's group commit;
 * Redis mode claims in Redis and writes the row with the token, see RedisTokenStore): for a
 * join made with token `srcJti` in a concert, the first caller's `queueJti` is stored, every
 * later one (a double-submit racing it, a retry whose answer was lost) reads that one back. A
 * claim given back by a refused join is taken over by the next caller. The row is also the
 * replay record: SQL, so it outlives a switch between Redis and SQL mode. Answers each claim in
 * order; copies of one join in the same batch read back the same claim; null only when a
 * refused attempt gave the claim back in between.
 */
export async function claimJoins(db: Db, cs: ClaimRow[]): Promise<(JoinReplay | null)[]> {
  await insertJoinClaims(db, cs);
  const read = async () => {
    const rows = await db.selectFrom('join_replays').select(['src_jti', 'concert_id', 'queue_jti', 'user_id', 'created_at'])
      .where('src_jti', 'in', [...new Set(cs.map((c) => c.srcJti))]).execute();
    return new Map(rows.map((r) => [keyOf(r.src_jti, r.concert_id), { queueJti: r.queue_jti, userId: r.user_id, createdAt: r.created_at }]));
  };
  let found = await read();
  const givenBackRows = inKeyOrder(cs).filter((c) => isGivenBack(found.get(keyOf(c.srcJti, c.concertId))?.queueJti ?? ''));
  if (givenBackRows.length > 0) {
    for (const c of givenBackRows) await takeOverJoinClaim(db, c, found.get(keyOf(c.srcJti, c.concertId))!.queueJti);
    found = await read();
  }
  return cs.map((c) => {
    const claim = found.get(keyOf(c.srcJti, c.concertId));
    return claim && !isGivenBack(claim.queueJti) ? claim : null;
  });
}

/**
 * holdJoinClaim for many joins at once, inside the transaction that records their tokens: the
 * claims (`concertId:srcJti` → queue token id) as they stand, locked until commit on PostgreSQL
 * (in one order, so that two batches never wait on each other crosswise).
 */
export async function holdJoinClaims(trx: Transaction<Database>, srcJtis: string[]): Promise<Map<string, string>> {
  if (srcJtis.length === 0) return new Map();
  const src = [...new Set(srcJtis)];
  const rows = isPostgres(trx)
    ? (await sql<{ src_jti: string; concert_id: number; queue_jti: string }>`SELECT src_jti, concert_id, queue_jti
        FROM join_replays WHERE src_jti = ANY(${src}::text[]) ORDER BY src_jti, concert_id FOR UPDATE`.execute(trx)).rows
    : await trx.selectFrom('join_replays').select(['src_jti', 'concert_id', 'queue_jti'])
      .where('src_jti', 'in', src).orderBy('src_jti').orderBy('concert_id').execute();
  return new Map(rows.map((r) => [`${r.concert_id}:${r.src_jti}`, r.queue_jti]));
}

export async function findJoinReplay(db: Db, srcJti: string, concertId: number): Promise<JoinReplay | null> {
  const row = await db.selectFrom('join_replays').select(['queue_jti', 'user_id', 'created_at'])
    .where('src_jti', '=', srcJti).where('concert_id', '=', concertId).executeTakeFirst();
  if (!row || isGivenBack(row.queue_jti)) return null;
  return { queueJti: row.queue_jti, userId: row.user_id, createdAt: row.created_at };
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
 * meanwhile (that copy answered with the place: it must stay). The claim row is locked first
 * (and written, given back, if there was none: a claim made in Redis has no row until its
 * token is recorded): a copy recording right now commits before the check below reads the
 * token, and a copy that records later finds its id given back and is refused.
 * `dropped`: the claim no longer names `queueJti` (the place made under it can go);
 * `claim`: the live claim of another id (and when it was made), which the retry is to take.
 */
export async function giveBackJoinClaim(db: Db, c: ClaimRow): Promise<{ dropped: boolean; claim: { queueJti: string; createdAt: number } | null }> {
  return db.transaction().execute(async (trx) => {
    await insertJoinClaims(trx, [{ ...c, queueJti: givenBack(c.queueJti) }]);
    let q = trx.selectFrom('join_replays').select(['queue_jti', 'created_at']).where('src_jti', '=', c.srcJti).where('concert_id', '=', c.concertId);
    if (isPostgres(trx)) q = q.forUpdate();
    const row = await q.executeTakeFirst();
    const claimed = row?.queue_jti;
    const claim = row ? { queueJti: row.queue_jti, createdAt: row.created_at } : null;
    if (claimed !== undefined && !isGivenBack(claimed) && claimed !== c.queueJti) return { dropped: true, claim };
    if (claimed === c.queueJti) {
      const recorded = await trx.selectFrom('tokens').select('jti').where('jti', '=', c.queueJti).executeTakeFirst();
      if (recorded) return { dropped: false, claim };
    }
    if (claimed !== givenBack(c.queueJti)) {
      await trx.updateTable('join_replays').set({ queue_jti: givenBack(c.queueJti) })
        .where('src_jti', '=', c.srcJti).where('concert_id', '=', c.concertId).execute();
    }
    return { dropped: true, claim: null };
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
