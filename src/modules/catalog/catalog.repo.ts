import type { Transaction } from 'kysely';
import type { Db } from '../../store/connect.ts';
import type { Concert, Database, Schedule } from '../../store/schema.ts';
import { drawCommitment, newDrawSeed } from '../draw/algorithm.ts';
import { insertQueueState } from '../queue/queue-state.repo.ts';
import { insertSeats } from '../reservations/reservations.repo.ts';

export interface NewScheduleInput { date: number; seats: number; price: number }

export interface CreatedConcert {
  concert: Concert;
  schedules: Schedule[];
}

const SEAT_INSERT_CHUNK = 500;

export async function insertConcert(
  db: Db,
  input: { title: string; schedules: NewScheduleInput[]; saleStartsAt?: number | null },
  queueDefaults: { maxActive: number; admitPerSecond: number; activeTtlSeconds: number },
  now: number,
): Promise<CreatedConcert> {
  const dates = input.schedules.map((s) => s.date);
  // Every concert commits to a draw seed at creation; only a scheduled sale ever uses (and reveals) it.
  const seed = newDrawSeed();
  return db.transaction().execute(async (trx) => {
    const concert = await trx.insertInto('concerts')
      .values({
        title: input.title, starts_at: Math.min(...dates), ends_at: Math.max(...dates), created_at: now,
        sale_starts_at: input.saleStartsAt ?? null, draw_seed: seed, draw_commitment: drawCommitment(seed), drawn_at: null,
      })
      .returningAll().executeTakeFirstOrThrow();
    const schedules: Schedule[] = [];
    for (const s of input.schedules) {
      const schedule = await trx.insertInto('schedules')
        .values({ concert_id: concert.id, date: s.date, capacity: s.seats, price: s.price })
        .returningAll().executeTakeFirstOrThrow();
      schedules.push(schedule);
      for (let from = 1; from <= s.seats; from += SEAT_INSERT_CHUNK) {
        const rows = [];
        for (let n = from; n < from + SEAT_INSERT_CHUNK && n <= s.seats; n++) {
          rows.push({
            schedule_id: schedule.id, seat_number: n, concert_id: concert.id, price: s.price, status: 'available' as const,
            hold_reservation_id: null, hold_user_id: null, hold_expires_at: null,
          });
        }
        await insertSeats(trx, rows);
      }
    }
    await insertQueueState(trx, concert.id, queueDefaults);
    return { concert, schedules };
  });
}

/**
 * Moves a scheduled sale's opening, only while it is still ahead and nothing was drawn (one
 * conditional UPDATE); false when the concert keeps the opening it has.
 */
export async function rescheduleSale(db: Db, concertId: number, saleStartsAt: number, now: number): Promise<boolean> {
  const r = await db.updateTable('concerts').set({ sale_starts_at: saleStartsAt })
    .where('id', '=', concertId).where('drawn_at', 'is', null).where('sale_starts_at', '>', now).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** The draw's marker: set once, by whoever sets it first, when the sale has opened. False when not set here. */
export async function markDrawn(trx: Transaction<Database>, concertId: number, now: number): Promise<boolean> {
  const r = await trx.updateTable('concerts').set({ drawn_at: now })
    .where('id', '=', concertId).where('drawn_at', 'is', null).where('sale_starts_at', '<=', now).executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export function listConcerts(db: Db): Promise<Concert[]> {
  return db.selectFrom('concerts').selectAll().orderBy('id').execute();
}

export function findConcert(db: Db, id: number): Promise<Concert | undefined> {
  return db.selectFrom('concerts').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findSchedules(db: Db, concertId: number): Promise<Schedule[]> {
  return db.selectFrom('schedules').selectAll().where('concert_id', '=', concertId).orderBy('id').execute();
}

/** Seat states as SQL knows them: sold from the seat rows' status, live holds from their hold columns. */
export async function seatStates(db: Db, scheduleId: number, now: number) {
  return seatStatesWhere(db, 'schedule_id', scheduleId, now);
}

/** The same for every schedule of a concert, in one query (the rebuild's bulk read). */
export async function concertSeatStates(db: Db, concertId: number, now: number) {
  return seatStatesWhere(db, 'concert_id', concertId, now);
}

async function seatStatesWhere(db: Db, column: 'schedule_id' | 'concert_id', id: number, now: number) {
  return db.selectFrom('seats')
    .select(['schedule_id', 'seat_number', 'price', 'status', 'hold_reservation_id', 'hold_user_id', 'hold_expires_at'])
    .where(column, '=', id)
    .orderBy('schedule_id').orderBy('seat_number')
    .execute()
    .then((rows) => rows.map((r) => ({
      scheduleId: r.schedule_id,
      seatNumber: r.seat_number,
      price: r.price,
      status: r.status === 'sold' ? 'sold' as const
        : r.hold_expires_at !== null && r.hold_expires_at > now ? 'held' as const : 'available' as const,
      hold: r.hold_expires_at !== null && r.hold_expires_at > now && r.status !== 'sold'
        ? { reservationId: r.hold_reservation_id!, userId: r.hold_user_id!, expiresAt: r.hold_expires_at }
        : null,
    })));
}
