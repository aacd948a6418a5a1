import type { ReservationStatus } from '../../store/schema.ts';

/** A seat hold as both stores describe it. Times are epoch ms, money whole won. */
export interface Hold {
  reservationId: string;
  userId: number;
  concertId: number;
  scheduleId: number;
  seatNumber: number;
  price: number;
  expiresAt: number;
}

/** A reservation as a client sees it; `expired` is a held one whose time is up. */
export interface ReservationRecord extends Hold {
  status: ReservationStatus;
}

export interface HoldRequest {
  concertId: number;
  scheduleId: number;
  seatNumber: number;
  userId: number;
  /** jti of the queue token that asks; it must be current and admitted. */
  jti: string;
  reservationId: string;
  ttlMs: number;
  maxHolds: number;
  /** Most held + paid seats of the concert per user. */
  maxTickets: number;
}

/** A hold request's result: a new hold, or the user's own live hold of that seat (a retried request). */
export interface HoldOutcome {
  hold: Hold;
  created: boolean;
}

/** The queue place that paid; `end`: SQL found no live hold of the buyer left, so the active slot frees at once. */
export interface QueuePlaceRef {
  jti: string;
  seq: number;
  end: boolean;
}

/**
 * Seat holds. Redis mode and SQL mode are two implementations with the same semantics, each
 * part of its mode's Backend (src/backend). Sales themselves are decided in SQL
 * (payments), whichever store holds the seat.
 */
export interface HoldStore {
  /**
   * Checks the queue token (current and admitted), the seat and the user's hold and ticket
   * counts; takes the seat. A seat the user already holds live answers that hold (created false).
   */
  hold(req: HoldRequest, now: number): Promise<HoldOutcome>;
  /** The reservation as the store knows it, or null when it has no record. */
  find(concertId: number, reservationId: string, now: number): Promise<ReservationRecord | null>;
  /** The user's newest `limit` reservations of every concert, newest first, with the status `find` would give. */
  listOwn(userId: number, now: number, limit: number): Promise<ReservationRecord[]>;
  /** Releases the user's live hold: 404, 403, 409 HOLD_EXPIRED or 409 ALREADY_PAID otherwise. */
  release(concertId: number, reservationId: string, userId: number, now: number): Promise<void>;
  /** The hold a payment is about to settle, checked against the store (owner, live), or an error. */
  payable(concertId: number, reservationId: string, userId: number, now: number): Promise<Hold>;
  /** After SQL committed the sale: mirror it (Redis), nothing to do in SQL mode. */
  settle(hold: Hold, place: QueuePlaceRef, now: number): Promise<void>;
}

/** Status a client sees: a held reservation past its expiry reads `expired`. */
export function visibleStatus(status: ReservationStatus, expiresAt: number, now: number): ReservationStatus {
  return status === 'held' && expiresAt <= now ? 'expired' : status;
}
