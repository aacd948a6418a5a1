import { sql, type Insertable, type Transaction } from 'kysely';
import { isPostgres, type Db } from '../../store/connect.ts';
import type { Database, Reservation, SeatsTable } from '../../store/schema.ts';
import type { Hold } from './types.ts';

type Conn = Db | Transaction<Database>;
type Trx = Transaction<Database>;

/** Rows per multi-row statement where the values are bound one by one (SQLite, IN lists). */
const CHUNK = 500;

export function toHold(r: Reservation): Hold {
  return {
    reservationId: r.id, userId: r.user_id, concertId: r.concert_id, scheduleId: r.schedule_id,
    seatNumber: r.seat_number, price: r.price, expiresAt: r.expires_at,
  };
}

export function findReservation(db: Conn, id: string): Promise<Reservation | undefined> {
  return db.selectFrom('reservations').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The reservation row, locked until the transaction ends (PostgreSQL; SQLite serialises writers). */
export function lockReservation(trx: Transaction<Database>, id: string): Promise<Reservation | undefined> {
  let q = trx.selectFrom('reservations').selectAll().where('id', '=', id);
  if (isPostgres(trx)) q = q.forUpdate();
  return q.executeTakeFirst();
}

/** Writes a hold the write-behind stream has not delivered yet; an existing row is left alone. */
export async function upsertHeldReservation(db: Conn, h: Hold, now: number): Promise<void> {
  await db.insertInto('reservations').values({
    id: h.reservationId, user_id: h.userId, concert_id: h.concertId, schedule_id: h.scheduleId,
    seat_number: h.seatNumber, price: h.price, status: 'held', expires_at: h.expiresAt,
    created_at: now, updated_at: now,
  }).onConflict((oc) => oc.column('id').doNothing()).execute();
}

export async function countLiveHolds(db: Conn, concertId: number, userId: number, now: number): Promise<number> {
  const r = await db.selectFrom('reservations').select((eb) => eb.fn.countAll<number>().as('n'))
    .where('user_id', '=', userId).where('concert_id', '=', concertId)
    .where('status', '=', 'held').where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(r?.n ?? 0);
}

/**
 * What counts against MAX_TICKETS_PER_USER: the user's live holds and paid seats of the concert.
 * Callers that must not race a concurrent hold of the same user hold the user's lock (lockUser).
 */
export async function countTickets(db: Conn, concertId: number, userId: number, now: number): Promise<{ live: number; paid: number }> {
  const rows = await db.selectFrom('reservations').select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('user_id', '=', userId).where('concert_id', '=', concertId)
    .where((eb) => eb.or([eb('status', '=', 'paid'), eb.and([eb('status', '=', 'held'), eb('expires_at', '>', now)])]))
    .groupBy('status').execute();
  const n = (s: string) => Number(rows.find((r) => r.status === s)?.n ?? 0);
  return { live: n('held'), paid: n('paid') };
}

/** The user's newest reservations, newest first (ties by id, so the order is stable). */
export function listUserReservations(db: Conn, userId: number, limit: number): Promise<Reservation[]> {
  return db.selectFrom('reservations').selectAll().where('user_id', '=', userId)
    .orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
}

/** The seat with its schedule's date, when the seat belongs to that concert's schedule. */
export function findSeat(db: Conn, concertId: number, scheduleId: number, seatNumber: number) {
  return db.selectFrom('seats as t').innerJoin('schedules as s', 's.id', 't.schedule_id')
    .select(['t.price', 't.status', 't.hold_expires_at', 't.hold_reservation_id', 't.hold_user_id', 's.date'])
    .where('t.concert_id', '=', concertId).where('t.schedule_id', '=', scheduleId).where('t.seat_number', '=', seatNumber)
    .executeTakeFirst();
}

export async function scheduleExists(db: Conn, concertId: number, scheduleId: number): Promise<boolean> {
  const r = await db.selectFrom('schedules').select('id').where('id', '=', scheduleId).where('concert_id', '=', concertId)
    .executeTakeFirst();
  return r !== undefined;
}

/** The conditional UPDATE that takes a seat: only one of any number of racing callers matches. */
export async function takeSeat(db: Conn, h: Hold, now: number): Promise<boolean> {
  const r = await db.updateTable('seats')
    .set({ status: 'held', hold_reservation_id: h.reservationId, hold_user_id: h.userId, hold_expires_at: h.expiresAt })
    .where('schedule_id', '=', h.scheduleId).where('seat_number', '=', h.seatNumber)
    .where('status', '!=', 'sold')
    .where((eb) => eb.or([eb('hold_expires_at', 'is', null), eb('hold_expires_at', '<=', now)]))
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/**
 * Records a hold that Redis granted before it is acknowledged (Redis mode writes holds
 * through): the reservation row, and the seat row marked held by it unless the seat is sold or
 * live-held by another reservation, which SQL then refuses. False when refused.
 */
export async function recordGrantedHold(db: Db, h: Hold, now: number): Promise<boolean> {
  const refused = new Error('seat refused');
  try {
    await db.transaction().execute(async (trx) => {
      // Reservation row first, then the seat: the order every other writer (payments, the
      // write-behind) takes them in, so that concurrent transactions cannot deadlock.
      await upsertHeldReservation(trx, h, now);
      const taken = await trx.updateTable('seats')
        .set({ status: 'held', hold_reservation_id: h.reservationId, hold_user_id: h.userId, hold_expires_at: h.expiresAt })
        .where('schedule_id', '=', h.scheduleId).where('seat_number', '=', h.seatNumber)
        .where('status', '!=', 'sold')
        .where((eb) => eb.or([
          eb('hold_expires_at', 'is', null), eb('hold_expires_at', '<=', now), eb('hold_reservation_id', '=', h.reservationId),
        ]))
        .executeTakeFirst();
      if (Number(taken.numUpdatedRows) !== 1) throw refused;
    });
    return true;
  } catch (err) {
    if (err === refused) return false;
    throw err;
  }
}

export async function insertReservation(db: Conn, h: Hold, now: number): Promise<void> {
  await db.insertInto('reservations').values({
    id: h.reservationId, user_id: h.userId, concert_id: h.concertId, schedule_id: h.scheduleId,
    seat_number: h.seatNumber, price: h.price, status: 'held', expires_at: h.expiresAt,
    created_at: now, updated_at: now,
  }).execute();
}

/** Held reservations become released, and their seats free (unless sold): the reservation rows first, then the seats. */
export async function markReleased(db: Conn, ids: string[], now: number): Promise<void> {
  await db.updateTable('reservations').set({ status: 'released', updated_at: now })
    .where('id', 'in', ids).where('status', '=', 'held').execute();
  await db.updateTable('seats')
    .set({ status: 'available', hold_reservation_id: null, hold_user_id: null, hold_expires_at: null })
    .where('hold_reservation_id', 'in', ids).where('status', '!=', 'sold').execute();
}

/** The reservation of a sale becomes paid. */
export async function markPaid(trx: Trx, reservationId: string, now: number): Promise<void> {
  await trx.updateTable('reservations').set({ status: 'paid', updated_at: now }).where('id', '=', reservationId).execute();
}

/** The seat of a sale becomes sold, its hold cleared. */
export async function markSeatSold(trx: Trx, scheduleId: number, seatNumber: number): Promise<void> {
  await trx.updateTable('seats')
    .set({ status: 'sold', hold_reservation_id: null, hold_user_id: null, hold_expires_at: null })
    .where('schedule_id', '=', scheduleId).where('seat_number', '=', seatNumber).execute();
}

/** A new schedule's seat rows, all available. */
export async function insertSeats(trx: Trx, rows: Insertable<SeatsTable>[]): Promise<void> {
  await trx.insertInto('seats').values(rows).execute();
}

/** Reconciliation: holds past their time become `expired`, and their seats free. */
export async function expireHolds(db: Db, now: number): Promise<{ reservations: number; seats: number }> {
  return db.transaction().execute(async (trx) => {
    const r = await trx.updateTable('reservations').set({ status: 'expired', updated_at: now })
      .where('status', '=', 'held').where('expires_at', '<=', now).executeTakeFirst();
    const s = await trx.updateTable('seats')
      .set({ status: 'available', hold_reservation_id: null, hold_user_id: null, hold_expires_at: null })
      .where('status', '!=', 'sold').where('hold_expires_at', 'is not', null).where('hold_expires_at', '<=', now)
      .executeTakeFirst();
    return { reservations: Number(r.numUpdatedRows), seats: Number(s.numUpdatedRows) };
  });
}

/** A hold as the write-behind stream reports it. */
export interface StreamHoldRow {
  id: string; user_id: number; concert_id: number; schedule_id: number; seat_number: number; price: number;
  status: 'held'; expires_at: number; created_at: number; updated_at: number;
}

/**
 * Inserts the reservations SQL does not have yet; answers the ids it inserted. On PostgreSQL
 * one statement whatever the batch size: the columns travel as arrays (unnest), which spares
 * the server parsing and planning thousands of bound values.
 */
export async function insertStreamHolds(trx: Trx, rows: StreamHoldRow[]): Promise<Set<string>> {
  const inserted = new Set<string>();
  if (rows.length === 0) return inserted;
  if (isPostgres(trx)) {
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
export async function mirrorStreamHolds(trx: Trx, holds: StreamHoldRow[]): Promise<void> {
  if (holds.length === 0) return;
  if (isPostgres(trx)) {
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
