import { sql, type RawBuilder, type Transaction } from 'kysely';
import { isPostgres, type Db } from '../../store/connect.ts';
import type { Database, QueueEntryStatus } from '../../store/schema.ts';
import { revokeQueueToken, revokeToken } from '../tokens/tokens.repo.ts';

type Conn = Db | Transaction<Database>;
type Trx = Transaction<Database>;

/** Rows per multi-row statement where the values are bound one by one (SQLite, IN lists). */
const CHUNK = 500;

/**
 * Claims entry numbers of places, in the transaction that records their queue tokens: inserts
 * each waiting entry unless its row exists, and answers who holds each number afterwards
 * (`concertId:seq` → user id). Entry numbers come from Redis in Redis mode and from SQL in SQL mode;
 * around a switch both may hand out the same number (a Redis join whose token was still being
 * written when SQL mode began). Whoever claims the row first keeps the number; the other place
 * is refused before it is acknowledged, so no two fans ever share one.
 */
export async function claimEntries(db: Conn, es: { concertId: number; seq: number; userId: number; now: number }[]): Promise<Map<string, number>> {
  const owners = new Map<string, number>();
  if (es.length === 0) return owners;
  const unique = new Map<string, (typeof es)[number]>();
  for (const e of es) if (!unique.has(`${e.concertId}:${e.seq}`)) unique.set(`${e.concertId}:${e.seq}`, e);
  await insertEntriesUnlessTaken(db, [...unique.values()].map((e) => ({ ...e, joinedAt: e.now })));
  for (const concertId of new Set(es.map((e) => e.concertId))) {
    const seqs = es.filter((e) => e.concertId === concertId).map((e) => e.seq);
    const rows = isPostgres(db)
      ? (await sql<{ seq: number; user_id: number }>`SELECT seq, user_id FROM queue_entries
          WHERE concert_id = ${concertId} AND seq = ANY(${seqs}::bigint[])`.execute(db)).rows
      : await db.selectFrom('queue_entries').select(['seq', 'user_id']).where('concert_id', '=', concertId).where('seq', 'in', seqs).execute();
    for (const r of rows) owners.set(`${concertId}:${r.seq}`, r.user_id);
  }
  return owners;
}

/** Waiting entries, each unless its number's row exists (whoever holds it). */
export async function insertEntriesUnlessTaken(db: Conn, es: { concertId: number; seq: number; userId: number; joinedAt: number; now: number }[]): Promise<void> {
  if (es.length === 0) return;
  if (isPostgres(db)) {
    // One array a column (unnest), rows in the given order: the same statement text for every batch.
    await sql`INSERT INTO queue_entries (concert_id, seq, user_id, status, joined_at, admitted_at, active_until, last_seen_at, updated_at)
      SELECT concert_id, seq, user_id, 'waiting', joined_at, NULL, NULL, at, at
      FROM unnest(${es.map((e) => e.concertId)}::bigint[], ${es.map((e) => e.seq)}::bigint[], ${es.map((e) => e.userId)}::bigint[],
        ${es.map((e) => e.joinedAt)}::bigint[], ${es.map((e) => e.now)}::bigint[]) WITH ORDINALITY AS e (concert_id, seq, user_id, joined_at, at, n)
      ORDER BY n
      ON CONFLICT (concert_id, seq) DO NOTHING`.execute(db);
    return;
  }
  await db.insertInto('queue_entries').values(es.map((e) => ({
    concert_id: e.concertId, seq: e.seq, user_id: e.userId, status: 'waiting' as const, joined_at: e.joinedAt,
    admitted_at: null, active_until: null, last_seen_at: e.now, updated_at: e.now,
  }))).onConflict((oc) => oc.columns(['concert_id', 'seq']).doNothing()).execute();
}

/**
 * The first entry number above `after`, up to `upTo`, that no entry row of the concert holds
 * (whatever its status); null when every one is held. Reads the rows of that range only.
 */
export async function firstUnheldNumber(db: Conn, concertId: number, after: number, upTo: number): Promise<number | null> {
  if (upTo <= after) return null;
  const rows = await db.selectFrom('queue_entries').select('seq').where('concert_id', '=', concertId)
    .where('seq', '>', after).where('seq', '<=', upTo).orderBy('seq').execute();
  let expect = after + 1;
  for (const r of rows) {
    if (Number(r.seq) !== expect) return expect;
    expect++;
  }
  return expect <= upTo ? expect : null;
}

/** The highest entry number of a concert that any table knows of (entries, tokens, counters). */
export async function highestSeq(db: Conn, concertId: number, counter: number): Promise<number> {
  const [issued, entered] = await Promise.all([
    db.selectFrom('tokens').select((eb) => eb.fn.max<number | null>('seq').as('m')).where('concert_id', '=', concertId).executeTakeFirst(),
    db.selectFrom('queue_entries').select((eb) => eb.fn.max<number | null>('seq').as('m')).where('concert_id', '=', concertId).executeTakeFirst(),
  ]);
  return Math.max(counter, Number(issued?.m ?? 0), Number(entered?.m ?? 0));
}

/** New waiting entries, as numbered; a number already taken fails the insert (a unique violation). */
export async function insertWaitingEntries(db: Conn, concertId: number, es: { seq: number; userId: number; joinedAt: number }[], now: number): Promise<void> {
  await db.insertInto('queue_entries').values(es.map((e) => ({
    concert_id: concertId, seq: e.seq, user_id: e.userId, status: 'waiting' as const, joined_at: e.joinedAt,
    admitted_at: null, active_until: null, last_seen_at: now, updated_at: now,
  }))).execute();
}

/**
 * A waiting entry for every live queue token of the concert that has none (its join's stream
 * entry never reached SQL): the token is the place's key, so the place is kept, in line at its number.
 */
export async function insertEntriesOfLiveTokens(trx: Trx, concertId: number, now: number): Promise<void> {
  await trx.insertInto('queue_entries')
    .columns(['concert_id', 'seq', 'user_id', 'status', 'joined_at', 'admitted_at', 'active_until', 'last_seen_at', 'updated_at'])
    .expression((eb) => eb.selectFrom('tokens as t')
      .select((s) => [
        't.concert_id', 't.seq', 't.user_id', sql<string>`'waiting'`.as('status'), 't.created_at',
        sql<null>`NULL`.as('admitted_at'), sql<null>`NULL`.as('active_until'), sql<number>`${now}`.as('last_seen_at'),
        sql<number>`${now}`.as('updated_at'),
      ].map((x) => x as never))
      .where('t.typ', '=', 'queue').where('t.concert_id', '=', concertId)
      .where('t.revoked_at', 'is', null).where('t.expires_at', '>', now).where('t.seq', '>', 0)
      .where((w) => w.not(w.exists(w.selectFrom('queue_entries as e').select('e.seq')
        .where('e.concert_id', '=', concertId).whereRef('e.seq', '=', 't.seq')))))
    .onConflict((oc) => oc.columns(['concert_id', 'seq']).doNothing())
    .execute();
}

/** A heartbeat of the entry (its rejoin, found live and waiting). */
export async function touchEntry(db: Conn, concertId: number, seq: number, now: number): Promise<void> {
  await db.updateTable('queue_entries').set({ last_seen_at: now, updated_at: now })
    .where('concert_id', '=', concertId).where('seq', '=', seq).execute();
}

/** A heartbeat of the entry, if it is still waiting (its poll). */
export async function touchWaitingEntry(db: Conn, concertId: number, seq: number, now: number): Promise<void> {
  await db.updateTable('queue_entries').set({ last_seen_at: now, updated_at: now })
    .where('concert_id', '=', concertId).where('seq', '=', seq).where('status', '=', 'waiting').execute();
}

/**
 * Ends a place: its entry, if still waiting or active, takes `status` (null: the entry is left as
 * it is), and its queue token is revoked. The entry first, then the token: the order every
 * writer of both takes them in.
 */
export async function endPlace(trx: Trx, concertId: number, seq: number, jti: string, status: 'expired' | 'left' | 'done' | null, now: number,
  token?: { userId: number; issuedAt: number; expiresAt: number }): Promise<void> {
  if (status) {
    await trx.updateTable('queue_entries').set({ status, updated_at: now })
      .where('concert_id', '=', concertId).where('seq', '=', seq).where('status', 'in', ['waiting', 'active']).execute();
  }
  // With the token's facts: revoked even if its record (written behind) has not arrived yet.
  if (token) await revokeQueueToken(trx, { jti, concertId, seq, ...token }, now);
  else await revokeToken(trx, jti, now);
}

/** Active entries whose time ran out end as expired; answers how many. */
export async function expireTimedOutEntries(trx: Trx, concertId: number, now: number): Promise<number> {
  const r = await trx.updateTable('queue_entries').set({ status: 'expired', updated_at: now })
    .where('concert_id', '=', concertId).where('status', '=', 'active').where('active_until', '<=', now)
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function admitEntries(trx: Trx, concertId: number, seqs: number[], activeUntil: number, now: number): Promise<void> {
  await trx.updateTable('queue_entries')
    .set({ status: 'active', admitted_at: now, active_until: activeUntil, updated_at: now })
    .where('concert_id', '=', concertId).where('seq', 'in', seqs).execute();
}

/** Entries passed over by admission (their heartbeat or their token lapsed). */
export async function expireEntries(trx: Trx, concertId: number, seqs: number[], now: number): Promise<void> {
  await trx.updateTable('queue_entries').set({ status: 'expired', updated_at: now })
    .where('concert_id', '=', concertId).where('seq', 'in', seqs).execute();
}

/** A queue entry as the write-behind stream reports it. */
export interface StreamEntryRow {
  concert_id: number; seq: number; user_id: number; status: QueueEntryStatus; joined_at: number;
  admitted_at: number | null; active_until: number | null; last_seen_at: number; updated_at: number;
}

const rankOf = (col: string): RawBuilder<number> =>
  sql<number>`(CASE ${sql.ref(col)} WHEN 'waiting' THEN 0 WHEN 'active' THEN 1 ELSE 2 END)`;

/**
 * Inserts or moves forward one concert's queue entries. An entry number belongs to the user who
 * claimed it: an event of another user for the same number (a Redis place refused at the switch
 * to SQL mode) changes nothing. The first admission counts: a place admitted twice (two masters
 * for a moment during a failover, or a redelivered entry) was let in at the earlier time. On
 * PostgreSQL one statement whatever the batch size: the columns travel as arrays (unnest).
 */
export async function upsertStreamEntries(trx: Trx, concertId: number, rows: StreamEntryRow[]): Promise<void> {
  const onConflict = sql`ON CONFLICT (concert_id, seq) DO UPDATE SET
      status = CASE WHEN ${rankOf('excluded.status')} >= ${rankOf('queue_entries.status')} THEN excluded.status ELSE queue_entries.status END,
      admitted_at = CASE WHEN queue_entries.admitted_at IS NULL OR excluded.admitted_at < queue_entries.admitted_at
        THEN excluded.admitted_at ELSE queue_entries.admitted_at END,
      active_until = COALESCE(excluded.active_until, queue_entries.active_until),
      updated_at = excluded.updated_at
    WHERE queue_entries.user_id = excluded.user_id`;
  const cols = sql`(concert_id, seq, user_id, status, joined_at, admitted_at, active_until, last_seen_at, updated_at)`;
  if (isPostgres(trx)) {
    await sql`INSERT INTO queue_entries ${cols}
      SELECT ${concertId}, v.seq, v.user_id, v.status, v.joined_at, v.admitted_at, v.active_until, v.last_seen_at, v.updated_at
      FROM unnest(${rows.map((r) => r.seq)}::bigint[], ${rows.map((r) => r.user_id)}::bigint[], ${rows.map((r) => r.status)}::text[],
        ${rows.map((r) => r.joined_at)}::bigint[], ${rows.map((r) => r.admitted_at)}::bigint[], ${rows.map((r) => r.active_until)}::bigint[],
        ${rows.map((r) => r.last_seen_at)}::bigint[], ${rows.map((r) => r.updated_at)}::bigint[])
        AS v(seq, user_id, status, joined_at, admitted_at, active_until, last_seen_at, updated_at)
      ${onConflict}`.execute(trx);
    return;
  }
  for (let i = 0; i < rows.length; i += CHUNK) {
    const values = sql.join(rows.slice(i, i + CHUNK).map((r) =>
      sql`(${r.concert_id}, ${r.seq}, ${r.user_id}, ${r.status}, ${r.joined_at}, ${r.admitted_at}, ${r.active_until}, ${r.last_seen_at}, ${r.updated_at})`));
    await sql`INSERT INTO queue_entries ${cols} VALUES ${values} ${onConflict}`.execute(trx);
  }
}
