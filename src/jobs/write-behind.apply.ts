import { sql, type RawBuilder, type Transaction } from 'kysely';
import { isPostgres, type Db } from '../store/connect.ts';
import type { Database, QueueEntryStatus } from '../store/schema.ts';
import { decodeStreamEvent, type HoldStreamEvent, type StreamEvent } from '../redis/codecs.ts';

/** One write-behind stream entry (the codec module describes its fields). */
export type { StreamEvent };

const statusOf: Record<string, QueueEntryStatus> = {
  join: 'waiting', admit: 'active', skip: 'expired', lapse: 'expired', expire: 'expired', leave: 'left', done: 'done',
};
const rank: Record<QueueEntryStatus, number> = { waiting: 0, active: 1, left: 2, expired: 2, done: 2 };

const rankOf = (col: string): RawBuilder<number> =>
  sql<number>`(CASE ${sql.ref(col)} WHEN 'waiting' THEN 0 WHEN 'active' THEN 1 ELSE 2 END)`;

interface EntryRow {
  concert_id: number; seq: number; user_id: number; status: QueueEntryStatus; joined_at: number;
  admitted_at: number | null; active_until: number | null; last_seen_at: number; updated_at: number;
}

/**
 * Applies a batch of one concert's stream entries to SQL in one transaction. Idempotent: rows
 * are keyed by (concert, entry number) or reservation id, and a status only moves forward
 * (waiting → active → ended), so a redelivered or reclaimed entry changes nothing.
 */
export async function applyEvents(db: Db, concertId: number, events: StreamEvent[], now: number): Promise<void> {
  const entries = new Map<number, EntryRow>();
  const holds = new Map<string, HoldStreamEvent>();
  const releases: string[] = [];
  let maxSeq = 0;
  let maxAdmitted = 0;

  for (const entry of events) {
    const ev = decodeStreamEvent(entry);
    if (ev === null) continue;
    if ('seq' in ev) {
      const status = statusOf[ev.event]!;
      const seq = ev.seq;
      if (!Number.isSafeInteger(seq) || seq <= 0) continue;
      const t = ev.time;
      maxSeq = Math.max(maxSeq, seq);
      const prev = entries.get(seq);
      const row: EntryRow = prev ?? {
        concert_id: concertId, seq, user_id: ev.userId, status, joined_at: t,
        admitted_at: null, active_until: null, last_seen_at: t, updated_at: now,
      };
      if (rank[status] >= rank[row.status]) row.status = status;
      if (ev.event === 'admit') {
        row.admitted_at = row.admitted_at === null ? t : Math.min(row.admitted_at, t);
        row.active_until = ev.activeUntil;
        maxAdmitted = Math.max(maxAdmitted, seq);
      }
      // Admission passed over a lapsed entry ('skip'): the line has moved past it. A 'lapse'
      // (a poll or rejoin found the heartbeat gone) can be anywhere in the line and moves nothing.
      if (ev.event === 'skip') maxAdmitted = Math.max(maxAdmitted, seq);
      entries.set(seq, row);
    } else if (ev.event === 'hold') {
      holds.set(ev.reservationId, ev);
    } else {
      releases.push(ev.reservationId);
    }
  }

  const pg = isPostgres(db);
  await db.transaction().execute(async (trx) => {
    const rows = [...entries.values()];
    if (rows.length > 0) {
      // The state row first: its lock orders batches of one concert applied at the same time
      // (a reclaimed batch may still be in flight at its first reader), so that the admissions
      // counted below as new are new.
      await trx.updateTable('queue_state')
        .set({
          last_seq: sql`CASE WHEN last_seq < ${maxSeq} THEN ${maxSeq} ELSE last_seq END`,
          last_admitted_seq: sql`CASE WHEN last_admitted_seq < ${maxAdmitted} THEN ${maxAdmitted} ELSE last_admitted_seq END`,
        })
        .where('concert_id', '=', concertId).execute();
    }
    // Then reservations and seats, queue rows last: the order payments (reservation, seat, then
    // the buyer's queue entry), releases and written-through holds take their locks in, so that
    // a batch applied during a payment cannot deadlock with it (it did: PostgreSQL 40P01).
    const holdRows: HoldRow[] = [...holds.values()].map((h) => ({
      id: h.reservationId, user_id: h.userId, concert_id: concertId, schedule_id: h.scheduleId, seat_number: h.seatNumber,
      price: h.price, status: 'held' as const, expires_at: h.expiresAt, created_at: h.time, updated_at: now,
    }));
    // Holds made in Redis mode are written through before they are acknowledged, so their rows
    // usually exist already: only a row inserted here (a hold whose write-through did not
    // finish) still needs its seat mirrored, which keeps this batch off the seat rows that
    // payments and holds lock.
    const inserted = await insertHolds(trx, pg, holdRows);
    // Mirror the hold on the seat row, so SQL mode knows the seat is taken. Only a seat whose
    // previous hold had ended when this one was granted: a hold that SQL refused (and Redis
    // then gave back) must not displace the one SQL keeps. A sold seat is never touched. Of
    // several new holds of one seat in a batch, Redis granted the last one after the others
    // had ended: that one is mirrored.
    const lastPerSeat = new Map<string, HoldRow>();
    for (const hold of holdRows) if (inserted.has(hold.id)) lastPerSeat.set(`${hold.schedule_id}:${hold.seat_number}`, hold);
    await mirrorHolds(trx, pg, [...lastPerSeat.values()]);
    const released = [...new Set(releases)];
    for (let i = 0; i < released.length; i += CHUNK) {
      const ids = released.slice(i, i + CHUNK);
      await trx.updateTable('reservations').set({ status: 'released', updated_at: now })
        .where('id', 'in', ids).where('status', '=', 'held').execute();
      await trx.updateTable('seats')
        .set({ status: 'available', hold_reservation_id: null, hold_user_id: null, hold_expires_at: null })
        .where('hold_reservation_id', 'in', ids).where('status', '!=', 'sold').execute();
    }
    if (rows.length > 0) {
      const admits = rows.filter((r) => r.admitted_at !== null).map((r) => r.seq);
      let known = 0;
      for (let i = 0; i < admits.length; i += CHUNK) {
        const r = await trx.selectFrom('queue_entries').select((eb) => eb.fn.countAll<number>().as('n'))
          .where('concert_id', '=', concertId).where('seq', 'in', admits.slice(i, i + CHUNK)).where('admitted_at', 'is not', null)
          .executeTakeFirst();
        known += Number(r?.n ?? 0);
      }
      await upsertEntries(trx, pg, concertId, rows);
      // admitted_total counts entries admitted once, so a redelivered admission adds nothing.
      if (admits.length > known) {
        await trx.updateTable('queue_state').set({ admitted_total: sql`admitted_total + ${admits.length - known}` })
          .where('concert_id', '=', concertId).execute();
      }
    }
  });
}

/** Rows per multi-row statement where the values are bound one by one (SQLite, IN lists). */
const CHUNK = 500;

interface HoldRow {
  id: string; user_id: number; concert_id: number; schedule_id: number; seat_number: number; price: number;
  status: 'held'; expires_at: number; created_at: number; updated_at: number;
}

/**
 * Inserts the reservations SQL does not have yet; answers the ids it inserted. On PostgreSQL
 * one statement whatever the batch size: the columns travel as arrays (unnest), which spares
 * the server parsing and planning thousands of bound values.
 */
async function insertHolds(trx: Transaction<Database>, pg: boolean, rows: HoldRow[]): Promise<Set<string>> {
  const inserted = new Set<string>();
  if (rows.length === 0) return inserted;
  if (pg) {
    const r = await sql<{ id: string }>`INSERT INTO reservations
        (id, user_id, concert_id, schedule_id, seat_number, price, status, expires_at, created_at, updated_at)
      SELECT v.id, v.user_id, ${rows[0]!.concert_id}, v.schedule_id, v.seat_number, v.price, 'held', v.expires_at, v.created_at, ${rows[0]!.updated_at}
      FROM unnest(${rows.map((h) => h.id)}::text[], ${rows.map((h) => h.user_id)}::bigint[], ${rows.map((h) => h.schedule_id)}::bigint[],
        ${rows.map((h) => h.seat_number)}::int[], ${rows.map((h) => h.price)}::bigint[], ${rows.map((h) => h.expires_at)}::bigint[],
        ${rows.map((h) => h.created_at)}::bigint[]) AS v(id, user_id, schedule_id, seat_number, price, expires_at, created_at)
      ON CONFLICT (id) DO NOTHING RETURNING id`.execute(trx);
    for (const x of r.rows) inserted.add(x.id);
    return inserted;
  }
  for (let i = 0; i < rows.length; i += CHUNK) {
    const r = await trx.insertInto('reservations').values(rows.slice(i, i + CHUNK))
      .onConflict((oc) => oc.column('id').doNothing()).returning('id').execute();
    for (const x of r) inserted.add(x.id);
  }
  return inserted;
}

/** Marks each hold's seat held by it (at most one hold per seat), unless the seat is sold or its hold is still live. */
async function mirrorHolds(trx: Transaction<Database>, pg: boolean, holds: HoldRow[]): Promise<void> {
  if (holds.length === 0) return;
  if (pg) {
    await sql`UPDATE seats SET status = 'held', hold_reservation_id = v.id, hold_user_id = v.user_id, hold_expires_at = v.expires_at
      FROM unnest(${holds.map((h) => h.id)}::text[], ${holds.map((h) => h.user_id)}::bigint[], ${holds.map((h) => h.schedule_id)}::bigint[],
        ${holds.map((h) => h.seat_number)}::int[], ${holds.map((h) => h.expires_at)}::bigint[], ${holds.map((h) => h.created_at)}::bigint[])
        AS v(id, user_id, schedule_id, seat_number, expires_at, created_at)
      WHERE seats.schedule_id = v.schedule_id AND seats.seat_number = v.seat_number AND seats.status <> 'sold'
        AND (seats.hold_expires_at IS NULL OR seats.hold_expires_at <= v.created_at)`.execute(trx);
    return;
  }
  for (const hold of holds) {
    await trx.updateTable('seats')
      .set({ status: 'held', hold_reservation_id: hold.id, hold_user_id: hold.user_id, hold_expires_at: hold.expires_at })
      .where('schedule_id', '=', hold.schedule_id).where('seat_number', '=', hold.seat_number)
      .where('status', '!=', 'sold')
      .where((eb) => eb.or([eb('hold_expires_at', 'is', null), eb('hold_expires_at', '<=', hold.created_at)]))
      .execute();
  }
}

/**
 * Inserts or moves forward one concert's queue entries. An entry number belongs to the user who
 * claimed it: an event of another user for the same number (a Redis place refused at the switch
 * to SQL mode) changes nothing. The first admission counts: a place admitted twice (two masters
 * for a moment during a failover, or a redelivered entry) was let in at the earlier time.
 */
async function upsertEntries(trx: Transaction<Database>, pg: boolean, concertId: number, rows: EntryRow[]): Promise<void> {
  const onConflict = sql`ON CONFLICT (concert_id, seq) DO UPDATE SET
      status = CASE WHEN ${rankOf('excluded.status')} >= ${rankOf('queue_entries.status')} THEN excluded.status ELSE queue_entries.status END,
      admitted_at = CASE WHEN queue_entries.admitted_at IS NULL OR excluded.admitted_at < queue_entries.admitted_at
        THEN excluded.admitted_at ELSE queue_entries.admitted_at END,
      active_until = COALESCE(excluded.active_until, queue_entries.active_until),
      updated_at = excluded.updated_at
    WHERE queue_entries.user_id = excluded.user_id`;
  const cols = sql`(concert_id, seq, user_id, status, joined_at, admitted_at, active_until, last_seen_at, updated_at)`;
  if (pg) {
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
