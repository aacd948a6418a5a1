import type { Config } from '../../config.ts';
import { AppError, errors } from '../../errors.ts';
import type { Backends } from '../../backend/backends.ts';
import type { Db } from '../../store/connect.ts';
import { idempotentRequest, priorAnswer, runIdempotent, type Answer } from '../payments/idempotency.ts';
import type { QueueService } from '../queue/queue.service.ts';
import type { Principal } from '../tokens/tokens.service.ts';
import { concertOfReservation, newReservationId } from './reservation-id.ts';
import type { Hold, HoldOutcome, HoldStore, ReservationRecord } from './types.ts';

/** GET /v1/me/reservations answers the user's newest this many reservations. */
export const OWN_RESERVATIONS_LIMIT = 100;

export interface ReservationView {
  reservationId: string;
  status: ReservationRecord['status'];
  concertId: number;
  scheduleId: number;
  seatNumber: number;
  price: number;
  expiresAt: string;
}

export const reservationView = (r: Hold, status: ReservationRecord['status']): ReservationView => ({
  reservationId: r.reservationId, status, concertId: r.concertId, scheduleId: r.scheduleId,
  seatNumber: r.seatNumber, price: r.price, expiresAt: new Date(r.expiresAt).toISOString(),
});

/** Holding, reading and releasing seats, in the hold store of the backend that serves the request. */
export class ReservationService {
  constructor(
    private readonly backends: Backends,
    private readonly queue: QueueService,
    private readonly config: Config,
    /** Where Idempotency-Keys of holds are kept (the money endpoints' table). */
    private readonly db: Db,
  ) {}

  store(): HoldStore {
    return this.backends.current.holds;
  }

  /** Where a committed sale is mirrored (see Backend.saleMirror). */
  saleMirror(): { store: HoldStore; required: boolean } {
    return this.backends.current.saleMirror;
  }

  /**
   * 201 with a new hold, or 200 with the user's own live hold of that seat (a retry whose answer
   * was lost). With an Idempotency-Key the first answer is kept and a retry gets it back, even
   * once the token is spent or the hold has ended; another body with the key is 422.
   */
  async hold(principal: Principal, scheduleId: number, seatNumber: number, idempotencyKey: string | undefined,
    now: number): Promise<Answer<ReservationView>> {
    const req = idempotencyKey === undefined ? null
      : idempotentRequest(principal.userId, 'hold', idempotencyKey, { scheduleId, seatNumber });
    const prior = await priorAnswer<ReservationView>(this.db, req, now);
    if (prior) return prior;
    let outcome;
    try {
      outcome = await this.holdSeat(principal, scheduleId, seatNumber, now);
    } catch (err) {
      // A concurrent copy of this request may have been answered (and spent what this one needed).
      const late = await priorAnswer<ReservationView>(this.db, req, now);
      if (late) return late;
      throw err;
    }
    const answer: Answer<ReservationView> = { status: outcome.created ? 201 : 200, body: reservationView(outcome.hold, 'held') };
    if (!req) return answer;
    // The hold is already taken (Redis and SQL); the key records the answer. Should a concurrent
    // copy have recorded its own first, that one (the same reservation) is the first answer.
    try {
      return (await runIdempotent<ReservationView>(this.db, req, now, async () => answer)).answer;
    } catch (err) {
      // A concurrent request with this key and another seat recorded first: this one is refused,
      // so the seat it took must not stay taken (best effort; its expiry ends it otherwise).
      if (outcome.created && err instanceof AppError && err.code === 'IDEMPOTENCY_KEY_REUSED') {
        await this.store().release(outcome.hold.concertId, outcome.hold.reservationId, principal.userId, now).catch(() => {});
      }
      throw err;
    }
  }

  /** The queue token names the concert; the store checks it is current and admitted in the same step. */
  private async holdSeat(principal: Principal, scheduleId: number, seatNumber: number, now: number): Promise<HoldOutcome> {
    if (principal.typ !== 'queue') throw errors.notAdmitted('an admitted queue token is required');
    const concertId = principal.concertId;
    const backend = this.backends.current;
    this.queue.assertAccepting(concertId, backend);
    const store = backend.holds;
    return this.queue.withPlace(backend, principal, now, () => store.hold({
      concertId, scheduleId, seatNumber, userId: principal.userId, jti: principal.jti,
      reservationId: newReservationId(concertId), ttlMs: this.config.holdTtlSeconds * 1000,
      maxHolds: this.config.maxHoldsPerUser, maxTickets: this.config.maxTicketsPerUser,
    }, now));
  }

  /** The user's newest OWN_RESERVATIONS_LIMIT reservations (every concert), newest first, with any live token. */
  async listOwn(principal: Principal, now: number): Promise<ReservationRecord[]> {
    const backend = this.backends.current;
    const store = backend.holds;
    await this.queue.assertLiveWith(backend, principal, now);
    return store.listOwn(principal.userId, now, OWN_RESERVATIONS_LIMIT);
  }

  /** Own reservations only: another user's answers 403, an unknown one 404. */
  async get(principal: Principal, reservationId: string, now: number): Promise<ReservationRecord> {
    const concertId = concertOf(reservationId);
    const backend = this.backends.current;
    const store = backend.holds;
    await this.queue.assertLiveWith(backend, principal, now);
    const rec = await store.find(concertId, reservationId, now);
    if (!rec) throw errors.notFound('reservation');
    if (rec.userId !== principal.userId) throw errors.forbidden('this reservation belongs to someone else');
    return rec;
  }

  async release(principal: Principal, reservationId: string, now: number): Promise<void> {
    const concertId = concertOf(reservationId);
    this.backends.assertWritable();
    const backend = this.backends.current;
    const store = backend.holds;
    await this.queue.assertLiveWith(backend, principal, now);
    await store.release(concertId, reservationId, principal.userId, now);
  }
}

/** Routes validate the shape; this only guards the invariant. */
export function concertOf(reservationId: string): number {
  const c = concertOfReservation(reservationId);
  if (c === null) throw errors.validation('invalid reservation id', [{ field: 'id', problem: 'must be <concertId>-<uuid>' }]);
  return c;
}
