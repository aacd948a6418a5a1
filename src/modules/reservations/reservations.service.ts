import type { Config } from '../../config.ts';
import { errors } from '../../errors.ts';
import type { ModeController } from '../../resilience/mode.ts';
import type { QueueService } from '../queue/queue.service.ts';
import type { Principal } from '../tokens/tokens.service.ts';
import { concertOfReservation, newReservationId } from './reservation-id.ts';
import type { Hold, HoldStore, ReservationRecord } from './types.ts';

export interface HoldStores { redis: HoldStore; sql: HoldStore }

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

/** Holding, reading and releasing seats; the store is chosen per request from the mode. */
export class ReservationService {
  constructor(
    private readonly stores: HoldStores,
    private readonly mode: ModeController,
    private readonly queue: QueueService,
    private readonly config: Config,
  ) {}

  store(): HoldStore {
    return this.mode.useRedis() ? this.stores.redis : this.stores.sql;
  }

  /**
   * Where a committed sale is mirrored: Redis, in every mode (sold is final, so marking it is
   * always safe, and a Redis that another instance has just rebuilt must learn of sales made by
   * an instance still in SQL mode). `required`: only in Redis mode must the mirror succeed.
   */
  saleMirror(): { store: HoldStore; required: boolean } {
    return { store: this.stores.redis, required: this.mode.useRedis() };
  }

  /** The queue token names the concert; the store checks it is current and admitted in the same step. */
  async hold(principal: Principal, scheduleId: number, seatNumber: number, now: number): Promise<Hold> {
    if (principal.typ !== 'queue') throw errors.notAdmitted('an admitted queue token is required');
    const concertId = principal.concertId!;
    this.queue.assertAccepting(concertId);
    const store = this.store();
    return this.queue.withPlace(principal, now, () => store.hold({
      concertId, scheduleId, seatNumber, userId: principal.userId, jti: principal.jti,
      reservationId: newReservationId(concertId), ttlMs: this.config.holdTtlSeconds * 1000,
      maxHolds: this.config.maxHoldsPerUser,
    }, now));
  }

  /** Own reservations only: another user's answers 403, an unknown one 404. */
  async get(principal: Principal, reservationId: string, now: number): Promise<ReservationRecord> {
    const concertId = concertOf(reservationId);
    const store = this.store();
    await this.queue.assertLive(principal, now);
    const rec = await store.find(concertId, reservationId, now);
    if (!rec) throw errors.notFound('reservation');
    if (rec.userId !== principal.userId) throw errors.forbidden('this reservation belongs to someone else');
    return rec;
  }

  async release(principal: Principal, reservationId: string, now: number): Promise<void> {
    const concertId = concertOf(reservationId);
    this.queue.assertWritable();
    const store = this.store();
    await this.queue.assertLive(principal, now);
    await store.release(concertId, reservationId, principal.userId, now);
  }
}

/** Routes validate the shape; this only guards the invariant. */
export function concertOf(reservationId: string): number {
  const c = concertOfReservation(reservationId);
  if (c === null) throw errors.validation('invalid reservation id', [{ field: 'id', problem: 'must be <concertId>-<uuid>' }]);
  return c;
}
