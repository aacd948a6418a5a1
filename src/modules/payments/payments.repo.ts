import type { Transaction } from 'kysely';
import type { Database } from '../../store/schema.ts';
import { markPaid, markSeatSold } from '../reservations/reservations.repo.ts';

type Trx = Transaction<Database>;

export interface NewSale {
  paymentId: string; reservationId: string; userId: number; concertId: number; scheduleId: number;
  seatNumber: number; amount: number;
}

export async function seatStatus(trx: Trx, scheduleId: number, seatNumber: number): Promise<string | null> {
  const r = await trx.selectFrom('seats').select('status')
    .where('schedule_id', '=', scheduleId).where('seat_number', '=', seatNumber).executeTakeFirst();
  return r?.status ?? null;
}

/**
 * Records the sale: the payment row (its unique indexes allow one sale per seat and per
 * reservation, whatever Redis said), the reservation paid, the seat sold with its hold cleared.
 */
export async function recordSale(trx: Trx, s: NewSale, now: number): Promise<void> {
  await trx.insertInto('payments').values({
    id: s.paymentId, reservation_id: s.reservationId, user_id: s.userId, concert_id: s.concertId,
    schedule_id: s.scheduleId, seat_number: s.seatNumber, amount: s.amount, created_at: now,
  }).execute();
  await markPaid(trx, s.reservationId, now);
  await markSeatSold(trx, s.scheduleId, s.seatNumber);
}

/** Which unique index refused the payment row. */
export function duplicateSaleOf(err: unknown): 'reservation' | 'seat' {
  const e = err as { constraint?: string; message?: string };
  return /reservation_id/.test(`${e?.constraint ?? ''} ${e?.message ?? ''}`) ? 'reservation' : 'seat';
}
