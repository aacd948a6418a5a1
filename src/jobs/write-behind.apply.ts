import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../store/connect.ts';
import type { QueueEntryStatus } from '../store/schema.ts';

/** One write-behind stream entry, as the Lua scripts write it (short field names save memory). */
export type StreamEvent = Record<string, string>;

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
  const holds = new Map<string, StreamEvent>();
  const releases: StreamEvent[] = [];
  let maxSeq = 0;
  let maxAdmitted = 0;

  for (const ev of events) {
    const status = statusOf[ev.e ?? ''];
    if (status) {
      const seq = Number(ev.s);
      if (!Number.isSafeInteger(seq) || seq <= 0) continue;
      const t = Number(ev.t);
      maxSeq = Math.max(maxSeq, seq);
      const prev = entries.get(seq);
      const row: EntryRow = prev ?? {
        concert_id: concertId, seq, user_id: Number(ev.u), status, joined_at: t,
        admitted_at: null, active_until: null, last_seen_at: t, updated_at: now,
      };
      if (rank[status] >= rank[row.status]) row.status = status;
      if (ev.e === 'admit') {
        row.admitted_at = row.admitted_at === null ? t : Math.min(row.admitted_at, t);
        row.active_until = Number(ev.x);
        maxAdmitted = Math.max(maxAdmitted, seq);
      }
      // Admission passed over a lapsed entry ('skip'): the line has moved past it. A 'lapse'
      // (a poll or rejoin found the heartbeat gone) can be anywhere in the line and moves nothing.
      if (ev.e === 'skip') maxAdmitted = Math.max(maxAdmitted, seq);
      entries.set(seq, row);
    } else if (ev.e === 'hold') {
      holds.set(ev.r!, ev);
    } else if (ev.e === 'release') {
      releases.push(ev);
    }
  }

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
    const holdRows = [...holds.values()].map((h) => ({
      id: h.r!, user_id: Number(h.u), concert_id: concertId, schedule_id: Number(h.sc), seat_number: Number(h.n),
      price: Number(h.p), status: 'held' as const, expires_at: Number(h.x), created_at: Number(h.t), updated_at: now,
    }));
    // One statement per 500 reservations. Holds made in Redis mode are written through before
    // they are acknowledged, so their rows usually exist already: only a row inserted here (a
    // hold whose write-through did not finish) still needs its seat mirrored, which keeps this
    // batch off the seat rows that payments and holds lock.
    const inserted = new Set<string>();
    for (let i = 0; i < holdRows.length; i += 500) {
      const rows = await trx.insertInto('reservations').values(holdRows.slice(i, i + 500))
        .onConflict((oc) => oc.column('id').doNothing()).returning('id').execute();
      for (const r of rows) inserted.add(r.id);
    }
    for (const hold of holdRows) {
      if (!inserted.has(hold.id)) continue;
      // Mirror the hold on the seat row, so SQL mode knows the seat is taken. Only a seat whose
      // previous hold had ended when this one was granted: a hold that SQL refused (and Redis
      // then gave back) must not displace the one SQL keeps. A sold seat is never touched.
      await trx.updateTable('seats')
        .set({ status: 'held', hold_reservation_id: hold.id, hold_user_id: hold.user_id, hold_expires_at: hold.expires_at })
        .where('schedule_id', '=', hold.schedule_id).where('seat_number', '=', hold.seat_number)
        .where('status', '!=', 'sold')
        .where((eb) => eb.or([eb('hold_expires_at', 'is', null), eb('hold_expires_at', '<=', hold.created_at)]))
        .execute();
    }
    for (const r of releases) {
      await trx.updateTable('reservations').set({ status: 'released', updated_at: now })
        .where('id', '=', r.r!).where('status', '=', 'held').execute();
      await trx.updateTable('seats')
        .set({ status: 'available', hold_reservation_id: null, hold_user_id: null, hold_expires_at: null })
        .where('hold_reservation_id', '=', r.r!).where('status', '!=', 'sold').execute();
    }
    if (rows.length > 0) {
      const admits = rows.filter((r) => r.admitted_at !== null).map((r) => r.seq);
      let known = 0;
      for (let i = 0; i < admits.length; i += 500) {
        const r = await trx.selectFrom('queue_entries').select((eb) => eb.fn.countAll<number>().as('n'))
          .where('concert_id', '=', concertId).where('seq', 'in', admits.slice(i, i + 500)).where('admitted_at', 'is not', null)
          .executeTakeFirst();
        known += Number(r?.n ?? 0);
      }
      for (let i = 0; i < rows.length; i += 500) {
        await trx.insertInto('queue_entries').values(rows.slice(i, i + 500))
          // An entry number belongs to the user who claimed it: an event of another user for
          // the same number (a Redis place refused at the switch to SQL mode) changes nothing.
          .onConflict((oc) => oc.columns(['concert_id', 'seq']).doUpdateSet({
            status: sql`CASE WHEN ${rankOf('excluded.status')} >= ${rankOf('queue_entries.status')} THEN excluded.status ELSE queue_entries.status END`,
            // The first admission counts: a place admitted twice (two masters for a moment
            // during a failover, or a redelivered entry) was let in at the earlier time.
            admitted_at: sql`CASE WHEN queue_entries.admitted_at IS NULL OR excluded.admitted_at < queue_entries.admitted_at
              THEN excluded.admitted_at ELSE queue_entries.admitted_at END`,
            active_until: sql`COALESCE(excluded.active_until, queue_entries.active_until)`,
            updated_at: sql`excluded.updated_at`,
          }).where(sql.ref('queue_entries.user_id'), '=', sql.ref('excluded.user_id')))
          .execute();
      }
      // admitted_total counts entries admitted once, so a redelivered admission adds nothing.
      if (admits.length > known) {
        await trx.updateTable('queue_state').set({ admitted_total: sql`admitted_total + ${admits.length - known}` })
          .where('concert_id', '=', concertId).execute();
      }
    }
  });
}
