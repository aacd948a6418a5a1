import { randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import { errors } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Db } from '../../store/connect.ts';
import { isUniqueViolation } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';
import type { QueueService } from '../queue/queue.service.ts';
import { countLiveHolds, lockReservation, upsertHeldReservation } from '../reservations/reservations.repo.ts';
import { concertOf, type ReservationService } from '../reservations/reservations.service.ts';
import type { Hold } from '../reservations/types.ts';
import type { Reservation } from '../../store/schema.ts';
import type { Principal } from '../tokens/tokens.service.ts';
import { idempotentRequest, priorAnswer, runIdempotent, type Answer } from './idempotency.ts';
import { debit } from './ledger.repo.ts';
import { duplicateSaleOf, recordSale, seatStatus } from './payments.repo.ts';
import { endPlace } from '../queue/entries.repo.ts';
import { sleep } from '../../runtime/index.ts';

/** How long a payment outside Redis mode waits for its (optional) Redis mirror. */
const MIRROR_OUTSIDE_REDIS_MODE_MS = 250;

export interface PaymentView {
  paymentId: string;
  /** The first of `reservationIds`. */
  reservationId: string;
  reservationIds: string[];
  /** The total, charged once. */
  amount: number;
  status: 'paid';
  concertId: number;
  /** The first reservation's seat. */
  scheduleId: number;
  seatNumber: number;
  balance: number;
  paidAt: string;
}

/** The two forms of POST /v1/payments: one reservation, or several paid together. */
export type PaymentRequest = { reservationId: string } | { reservationIds: string[] };

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

  /**
   * Pays every listed reservation or none: the total is debited once, each seat is sold, and
   * the queue place ends only if the buyer then holds nothing else of the concert live.
   */
  async pay(principal: Principal, request: PaymentRequest, idempotencyKey: string | undefined, now: number): Promise<Answer<PaymentView>> {
    const ids = 'reservationIds' in request ? request.reservationIds : [request.reservationId];
    const concertId = concertOf(ids[0]!);
    if (ids.some((id) => concertOf(id) !== concertId)) {
      throw errors.validation('the reservations of one payment must all be of one concert',
        [{ field: 'reservationIds', problem: 'must all be of one concert' }]);
    }
    // The single form hashes as it always has, so keys stored before the list form stay valid.
    const req = idempotencyKey === undefined ? null : idempotentRequest(principal.userId, 'payment', idempotencyKey, request);
    // Before the gate: after a sale the token is revoked and the hold gone, yet a retry must get the first answer.
    const prior = await priorAnswer<PaymentView>(this.db, req, now);
    if (prior) return prior;

    const store = this.reservations.store();
    // All checks go out together (one round trip each in Redis mode); the token's verdict comes first.
    const [active, ...payable] = await Promise.allSettled([
      this.queue.requireActive(principal, concertId, now),
      ...ids.map((id) => store.payable(concertId, id, principal.userId, now)),
    ]);
    const refused = [active, ...payable].find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (refused) {
      // A concurrent retry of this key may have just paid (spending the token and the holds).
      const late = await priorAnswer<PaymentView>(this.db, req, now);
      if (late) return late;
      throw refused.reason;
    }
    const holds = payable.map((r) => (r as PromiseFulfilledResult<Hold>).value);

    let outcome;
    let placeEnded = false;
    try {
      outcome = await runIdempotent<PaymentView>(this.db, req, now, async (trx) => {
        const sale = await this.decideSale(trx, principal, holds, now);
        placeEnded = sale.placeEnded;
        return sale.answer;
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw duplicateSaleOf(err) === 'reservation' ? errors.alreadyPaid() : errors.seatUnavailable();
      throw err;
    }
    if (!outcome.replayed) await this.mirror(principal, holds, placeEnded, now);
    return outcome.answer;
  }

  /**
   * SQL has committed the sale and refuses a second one whatever Redis says; but a Redis that
   * missed it would show the seats held or free. Then the fleet serves from SQL until the
   * rebuild has reloaded Redis, sold seats included.
   */
  private async mirror(principal: Principal, holds: Hold[], placeEnded: boolean, now: number): Promise<void> {
    const mirror = this.reservations.saleMirror();
    const settled = (async () => {
      for (const [i, hold] of holds.entries()) {
        // The place may end with the last seat's mirror, once every seat is sold there.
        await mirror.store.settle(hold, { jti: principal.jti, seq: principal.typ === 'queue' ? principal.seq : 0, end: placeEnded && i === holds.length - 1 }, now);
      }
    })();
    if (mirror.required) {
      await settled.catch((err) => {
        this.log.error('sale committed but not mirrored to redis; serving from sql until redis is rebuilt',
          { reservationIds: holds.map((h) => h.reservationId), err });
        this.onMirrorLost('a sale could not be mirrored to redis');
      });
    } else {
      // Outside Redis mode Redis may be gone: try, briefly, and leave the rest to the rebuild
      // and its catch-up, which load every sale from SQL.
      await Promise.race([settled.catch(() => {}), sleep(MIRROR_OUTSIDE_REDIS_MODE_MS)]);
    }
  }

  /**
   * The sale itself: every check again under the reservations' locks, then money, payments,
   * seats and queue place together. Any refusal rolls the whole transaction back.
   */
  private async decideSale(trx: Transaction<Database>, principal: Principal, holds: Hold[], now: number):
    Promise<{ answer: Answer<PaymentView>; placeEnded: boolean }> {
    // Locks in id order, so that two payments sharing reservations cannot deadlock.
    const byId = [...holds].sort((a, b) => (a.reservationId < b.reservationId ? -1 : 1));
    const rows = new Map<string, Reservation>();
    for (const hold of byId) {
      // The write-behind stream may not have delivered the hold yet.
      await upsertHeldReservation(trx, hold, now);
      const row = await lockReservation(trx, hold.reservationId);
      if (!row) throw errors.notFound('reservation');
      rows.set(hold.reservationId, row);
    }
    // Refusals in the order the client listed the reservations.
    const listed = holds.map((h) => rows.get(h.reservationId)!);
    for (const row of listed) {
      if (row.user_id !== principal.userId) throw errors.forbidden('this reservation belongs to someone else');
      if (row.status === 'paid') throw errors.alreadyPaid();
      if (row.status !== 'held' || row.expires_at <= now) throw errors.holdExpired();
    }
    for (const row of listed) {
      if ((await seatStatus(trx, row.schedule_id, row.seat_number)) === 'sold') throw errors.seatUnavailable();
    }

    const paymentId = randomUUID();
    const amount = listed.reduce((sum, row) => sum + Number(row.price), 0);
    const balance = await debit(trx, principal.userId, amount, `payment:${paymentId}`, now);
    if (balance === null) throw errors.insufficientBalance();
    for (const [i, row] of listed.entries()) {
      // One payment row per seat (its unique indexes guard each sale); the rows of one payment
      // share its id: the first row carries it, the others `<paymentId>-<n>`.
      await recordSale(trx, {
        paymentId: i === 0 ? paymentId : `${paymentId}-${i + 1}`, reservationId: row.id, userId: row.user_id,
        concertId: row.concert_id, scheduleId: row.schedule_id, seatNumber: row.seat_number, amount: row.price,
      }, now);
    }
    // The place stays for the buyer's other live holds of the concert; it ends with the last.
    // The debit above holds the user's row, which SQL-mode holds lock too, so no new hold slips in.
    let placeEnded = false;
    if (principal.typ === 'queue' && (await countLiveHolds(trx, listed[0]!.concert_id, principal.userId, now)) === 0) {
      await endPlace(trx, listed[0]!.concert_id, principal.seq, principal.jti, 'done', now,
        { userId: principal.userId, issuedAt: principal.iat * 1000, expiresAt: principal.exp * 1000 });
      placeEnded = true;
    }
    const first = listed[0]!;
    const body: PaymentView = {
      paymentId, reservationId: first.id, reservationIds: listed.map((r) => r.id), amount, status: 'paid',
      concertId: first.concert_id, scheduleId: first.schedule_id, seatNumber: first.seat_number, balance,
      paidAt: new Date(now).toISOString(),
    };
    return { answer: { status: 201, body }, placeEnded };
  }
}
