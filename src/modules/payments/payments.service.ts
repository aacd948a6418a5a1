import { randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import { errors } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Db } from '../../store/connect.ts';
import { isUniqueViolation } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';
import type { QueueService } from '../queue/queue.service.ts';
import { lockReservation, upsertHeldReservation } from '../reservations/reservations.repo.ts';
import { concertOf, type ReservationService } from '../reservations/reservations.service.ts';
import type { Hold } from '../reservations/types.ts';
import type { Principal } from '../tokens/tokens.service.ts';
import { idempotentRequest, priorAnswer, runIdempotent, type Answer } from './idempotency.ts';
import { debit } from './ledger.repo.ts';
import { duplicateSaleOf, endQueuePlace, recordSale, seatStatus } from './payments.repo.ts';

/** How long a payment outside Redis mode waits for its (optional) Redis mirror. */
const MIRROR_OUTSIDE_REDIS_MODE_MS = 250;

export interface PaymentView {
  paymentId: string;
  reservationId: string;
  amount: number;
  status: 'paid';
  concertId: number;
  scheduleId: number;
  seatNumber: number;
  balance: number;
  paidAt: string;
}

/**
 * Payments are decided in one SQL transaction in both modes. The hold store (Redis or SQL) is
 * the fast gate before it; SQL's unique indexes are the last word on a double sale.
 */
export class PaymentService {
  constructor(
    private readonly db: Db,
    private readonly reservations: ReservationService,
    private readonly queue: QueueService,
    private readonly log: Logger,
    /** A committed sale Redis did not take: Redis must be brought up to date before it serves again. */
    private readonly onMirrorLost: (reason: string) => void = () => {},
  ) {}

  async pay(principal: Principal, reservationId: string, idempotencyKey: string | undefined, now: number): Promise<Answer<PaymentView>> {
    const concertId = concertOf(reservationId);
    const req = idempotencyKey === undefined ? null : idempotentRequest(principal.userId, 'payment', idempotencyKey, { reservationId });
    // Before the gate: after a sale the token is revoked and the hold gone, yet a retry must get the first answer.
    const prior = await priorAnswer<PaymentView>(this.db, req, now);
    if (prior) return prior;

    const store = this.reservations.store();
    // Both checks go out together (one round trip in Redis mode); the token's verdict comes first.
    const [active, payable] = await Promise.allSettled([
      this.queue.requireActive(principal, concertId, now),
      store.payable(concertId, reservationId, principal.userId, now),
    ]);
    const refusal = active.status === 'rejected' ? active.reason : payable.status === 'rejected' ? payable.reason : null;
    if (refusal) {
      // A concurrent retry of this key may have just paid (spending the token and the hold).
      const late = await priorAnswer<PaymentView>(this.db, req, now);
      if (late) return late;
      throw refusal;
    }
    const hold = (payable as PromiseFulfilledResult<Hold>).value;

    let outcome;
    try {
      outcome = await runIdempotent<PaymentView>(this.db, req, now, (trx) => this.decideSale(trx, principal, hold, now));
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicateSaleOf(err) === 'reservation' ? errors.alreadyPaid() : errors.seatUnavailable();
      throw err;
    }
    if (!outcome.replayed) {
      // SQL has committed the sale and refuses a second one whatever Redis says; but a Redis that
      // missed it would show the seat held or free. Then the fleet serves from SQL until the
      // rebuild has reloaded Redis, sold seats included.
      const mirror = this.reservations.saleMirror();
      const settled = mirror.store.settle(hold, { jti: principal.jti, seq: principal.seq ?? 0 }, now);
      if (mirror.required) {
        await settled.catch((err) => {
          this.log.error('sale committed but not mirrored to redis; serving from sql until redis is rebuilt', { reservationId, err });
          this.onMirrorLost('a sale could not be mirrored to redis');
        });
      } else {
        // Outside Redis mode Redis may be gone: try, briefly, and leave the rest to the rebuild
        // and its catch-up, which load every sale from SQL.
        await Promise.race([settled.catch(() => {}), Bun.sleep(MIRROR_OUTSIDE_REDIS_MODE_MS)]);
      }
    }
    return outcome.answer;
  }

  /** The sale itself: every check again under the reservation's lock, then money, payment, seat and queue place together. */
  private async decideSale(trx: Transaction<Database>, principal: Principal, hold: Hold, now: number): Promise<Answer<PaymentView>> {
    // The write-behind stream may not have delivered the hold yet.
    await upsertHeldReservation(trx, hold, now);
    const row = await lockReservation(trx, hold.reservationId);
    if (!row) throw errors.notFound('reservation');
    if (row.user_id !== principal.userId) throw errors.forbidden('this reservation belongs to someone else');
    if (row.status === 'paid') throw errors.alreadyPaid();
    if (row.status !== 'held' || row.expires_at <= now) throw errors.holdExpired();
    if ((await seatStatus(trx, row.schedule_id, row.seat_number)) === 'sold') throw errors.seatUnavailable();

    const paymentId = randomUUID();
    const balance = await debit(trx, row.user_id, row.price, `payment:${paymentId}`, now);
    if (balance === null) throw errors.insufficientBalance();
    await recordSale(trx, {
      paymentId, reservationId: row.id, userId: row.user_id, concertId: row.concert_id,
      scheduleId: row.schedule_id, seatNumber: row.seat_number, amount: row.price,
    }, now);
    if (principal.typ === 'queue') await endQueuePlace(trx, row.concert_id, principal.seq!, principal.jti, now);
    return {
      status: 201,
      body: {
        paymentId, reservationId: row.id, amount: row.price, status: 'paid', concertId: row.concert_id,
        scheduleId: row.schedule_id, seatNumber: row.seat_number, balance, paidAt: new Date(now).toISOString(),
      },
    };
  }
}
