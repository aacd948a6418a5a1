import { errors } from '../../errors.ts';
import { assertSqlMode } from '../../resilience/sql-fence.ts';
import type { Db } from '../../store/connect.ts';
import type { QueueStore } from '../queue/types.ts';
import {
  countTickets, findReservation, findSeat, insertReservation, listUserReservations, lockReservation, markReleased,
  scheduleExists, takeSeat, toHold,
} from './reservations.repo.ts';
import { lockUser } from '../identity/users.repo.ts';
import type { Hold, HoldOutcome, HoldRequest, HoldStore, ReservationRecord } from './types.ts';
import { visibleStatus } from './types.ts';

/**
 * Holds in SQL alone, for when Redis is out: the seat row carries the hold (a conditional
 * UPDATE takes it) and a `reservations` row records it. Same answers as the Lua scripts.
 */
export class SqlHoldStore implements HoldStore {
  constructor(private readonly db: Db, private readonly queue: QueueStore) {}

  async hold(req: HoldRequest, now: number): Promise<HoldOutcome> {
    const place = await this.queue.check(req.concertId, req.userId, req.jti, now);
    if (!place.active) throw errors.notAdmitted();
    return this.db.transaction().execute(async (trx): Promise<HoldOutcome> => {
      await assertSqlMode(trx);
      const seat = await findSeat(trx, req.concertId, req.scheduleId, req.seatNumber);
      if (!seat) {
        throw errors.notFound((await scheduleExists(trx, req.concertId, req.scheduleId)) ? 'seat' : 'schedule');
      }
      if (seat.date <= now) throw errors.seatUnavailable('this show has already started');
      const own = await this.ownLiveHold(trx, seat, req.userId, now);
      if (own) return { hold: own, created: false };
      if (seat.status === 'sold' || (seat.hold_expires_at !== null && seat.hold_expires_at > now)) throw errors.seatUnavailable();
      // One user's holds are serialised from here on, so neither count can be passed by a race.
      await lockUser(trx, req.userId, now);
      const tickets = await countTickets(trx, req.concertId, req.userId, now);
      if (tickets.live >= req.maxHolds) throw errors.holdLimit(req.maxHolds);
      if (tickets.live + tickets.paid >= req.maxTickets) throw errors.ticketLimit(req.maxTickets);
      const hold: Hold = {
        reservationId: req.reservationId, userId: req.userId, concertId: req.concertId, scheduleId: req.scheduleId,
        seatNumber: req.seatNumber, price: seat.price, expiresAt: now + req.ttlMs,
      };
      // The read above only shapes the error; this conditional UPDATE decides the race.
      if (!(await takeSeat(trx, hold, now))) {
        // A concurrent copy of this very request (a client's retry) may have taken it first.
        const again = await findSeat(trx, req.concertId, req.scheduleId, req.seatNumber);
        const mine = again && await this.ownLiveHold(trx, again, req.userId, now);
        if (mine) return { hold: mine, created: false };
        throw errors.seatUnavailable();
      }
      await insertReservation(trx, hold, now);
      return { hold, created: true };
    });
  }

  /** The user's own live hold of the seat, outside any transaction (Redis mode asks when Redis lost it). */
  async ownLiveHoldOf(userId: number, concertId: number, scheduleId: number, seatNumber: number, now: number): Promise<Hold | null> {
    const seat = await findSeat(this.db, concertId, scheduleId, seatNumber);
    return seat ? this.ownLiveHold(this.db, seat, userId, now) : null;
  }

  /** The user's own live hold on this seat row, as its reservation records it. */
  private async ownLiveHold(trx: Parameters<typeof findReservation>[0],
    seat: { status: string; hold_reservation_id: string | null; hold_user_id: number | null; hold_expires_at: number | null },
    userId: number, now: number): Promise<Hold | null> {
    if (seat.status === 'sold' || seat.hold_reservation_id === null || seat.hold_expires_at === null || seat.hold_expires_at <= now) return null;
    if (Number(seat.hold_user_id) !== userId) return null;
    const row = await findReservation(trx, seat.hold_reservation_id);
    if (!row || row.user_id !== userId || visibleStatus(row.status, row.expires_at, now) !== 'held') return null;
    return toHold(row);
  }

  async listOwn(userId: number, now: number, limit: number): Promise<ReservationRecord[]> {
    const rows = await listUserReservations(this.db, userId, limit);
    return rows.map((row) => ({ ...toHold(row), status: visibleStatus(row.status, row.expires_at, now) }));
  }

  async find(_concertId: number, reservationId: string, now: number): Promise<ReservationRecord | null> {
    const row = await findReservation(this.db, reservationId);
    if (!row) return null;
    return { ...toHold(row), status: visibleStatus(row.status, row.expires_at, now) };
  }

  async release(_concertId: number, reservationId: string, userId: number, now: number): Promise<void> {
    await this.releaseWith(reservationId, userId, now, undefined, true);
  }

  /**
   * Releases under the reservation's lock; `beforeCommit` (Redis mode: the Redis release) runs
   * last inside it. `sqlMode`: a SQL-mode release, fenced by the mode row (see assertSqlMode).
   */
  async releaseWith(reservationId: string, userId: number, now: number, beforeCommit?: () => Promise<void>, sqlMode = false): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      if (sqlMode) await assertSqlMode(trx);
      const row = await lockReservation(trx, reservationId);
      if (!row) throw errors.notFound('reservation');
      if (row.user_id !== userId) throw errors.forbidden('this reservation belongs to someone else');
      if (row.status === 'paid') throw errors.alreadyPaid();
      if (row.status !== 'held' || row.expires_at <= now) throw errors.holdExpired();
      await markReleased(trx, [reservationId], now);
      await beforeCommit?.();
    });
  }

  async payable(_concertId: number, reservationId: string, userId: number, now: number): Promise<Hold> {
    const row = await findReservation(this.db, reservationId);
    if (!row) throw errors.notFound('reservation');
    if (row.user_id !== userId) throw errors.forbidden('this reservation belongs to someone else');
    if (row.status === 'paid') throw errors.alreadyPaid();
    if (row.status !== 'held' || row.expires_at <= now) throw errors.holdExpired();
    return toHold(row);
  }

  async settle(): Promise<void> {
    // The payment's own transaction already wrote everything SQL mode needs.
  }
}
