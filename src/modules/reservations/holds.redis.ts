import { errors } from '../../errors.ts';
import { ScriptCode, scriptError } from '../../redis/codes.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { runScript } from '../../redis/scripts.ts';
import type { ReservationStatus } from '../../store/schema.ts';
import type { Hold, HoldRequest, HoldStore, QueuePlaceRef, ReservationRecord } from './types.ts';
import { visibleStatus } from './types.ts';

/** A held reservation's record outlives its hold by a day, for reads and late payments' answers. */
const RECORD_RETAIN_MS = 86_400_000;
/** Catalog keys live until a day after the concert's last show (as load-concert.ts sets them). */
const CATALOG_RETAIN_MS = 86_400_000;

/** Lifetime facts the scripts need to give new keys the catalog's expiry. */
export type ConcertEnd = (concertId: number) => Promise<number>;

/** Fallback for reservations Redis no longer (or never) had: SQL's record. */
export type SqlRecord = (reservationId: string, now: number) => Promise<ReservationRecord | null>;

/**
 * Holds in Redis: one Lua call takes a seat (token, seat, limit, hold, stream entry), one
 * releases it, one mirrors a sale. SQL learns of holds through the write-behind stream.
 */
export class RedisHoldStore implements HoldStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly concertEnd: ConcertEnd,
    private readonly sqlRecord: SqlRecord,
  ) {}

  async hold(req: HoldRequest, now: number): Promise<Hold> {
    const c = req.concertId;
    const catalogUntil = (await this.concertEnd(c)) + CATALOG_RETAIN_MS;
    const r = await runScript(this.redis, 'holdSeat', [
      keys.queueTokens(c), keys.active(c), keys.schedule(c, req.scheduleId), keys.seats(c, req.scheduleId),
      keys.sold(c, req.scheduleId), keys.holds(c, req.scheduleId), keys.hold(c, req.scheduleId, req.seatNumber),
      keys.userHolds(c, req.userId), keys.reservation(c, req.reservationId), keys.stream(c),
    ], [
      req.userId, req.jti, now, req.scheduleId, req.seatNumber, req.reservationId, req.ttlMs, req.maxHolds,
      catalogUntil, RECORD_RETAIN_MS,
    ]);
    if (r[0] !== ScriptCode.Ok) throw scriptError(Number(r[0]), { maxHolds: req.maxHolds, what: String(r[1] ?? 'seat') });
    return {
      reservationId: req.reservationId, userId: req.userId, concertId: c, scheduleId: req.scheduleId,
      seatNumber: req.seatNumber, price: Number(r[1]), expiresAt: Number(r[2]),
    };
  }

  /** The reservation hash, with the hold key's say on whether a `held` one is still live. */
  private async record(concertId: number, reservationId: string, now: number): Promise<ReservationRecord | null> {
    const h = await this.redis.hgetall(keys.reservation(concertId, reservationId));
    if (!h.u) return null;
    const rec: ReservationRecord = {
      reservationId, userId: Number(h.u), concertId, scheduleId: Number(h.sc), seatNumber: Number(h.n),
      price: Number(h.p), expiresAt: Number(h.x), status: visibleStatus(h.st as ReservationStatus, Number(h.x), now),
    };
    if (rec.status === 'held') {
      const holder = await this.redis.get(keys.hold(concertId, rec.scheduleId, rec.seatNumber));
      if (holder !== `${reservationId}|${rec.userId}`) rec.status = 'expired';
    }
    return rec;
  }

  async find(concertId: number, reservationId: string, now: number): Promise<ReservationRecord | null> {
    return (await this.record(concertId, reservationId, now)) ?? this.sqlRecord(reservationId, now);
  }

  async release(concertId: number, reservationId: string, userId: number, now: number): Promise<void> {
    const h = await this.redis.hmget(keys.reservation(concertId, reservationId), 'u', 'sc', 'n');
    if (!h[0]) return this.refuseFromSql(reservationId, userId, now);
    const [owner, scheduleId, seat] = h.map(Number) as [number, number, number];
    const r = await runScript(this.redis, 'releaseHold', [
      keys.reservation(concertId, reservationId), keys.hold(concertId, scheduleId, seat), keys.holds(concertId, scheduleId),
      keys.userHolds(concertId, owner), keys.stream(concertId),
    ], [userId, reservationId, now]);
    if (r[0] !== ScriptCode.Ok) throw scriptError(Number(r[0]), { what: 'reservation' });
  }

  async payable(concertId: number, reservationId: string, userId: number, now: number): Promise<Hold> {
    const rec = await this.record(concertId, reservationId, now);
    if (!rec) return this.refuseFromSql(reservationId, userId, now);
    if (rec.userId !== userId) throw errors.forbidden('this reservation belongs to someone else');
    if (rec.status === 'paid') throw errors.alreadyPaid();
    if (rec.status !== 'held') throw errors.holdExpired();
    const { status: _, ...hold } = rec;
    return hold;
  }

  /**
   * Redis has no record (its hash expired, or Redis lost it): SQL tells who owns it and whether
   * it was paid; any hold it had is no longer live, since Redis is the authority on holds.
   */
  private async refuseFromSql(reservationId: string, userId: number, now: number): Promise<never> {
    const rec = await this.sqlRecord(reservationId, now);
    if (!rec) throw errors.notFound('reservation');
    if (rec.userId !== userId) throw errors.forbidden('this reservation belongs to someone else');
    if (rec.status === 'paid') throw errors.alreadyPaid();
    throw errors.holdExpired();
  }

  async settle(hold: Hold, place: QueuePlaceRef, now: number): Promise<void> {
    const c = hold.concertId;
    const catalogUntil = (await this.concertEnd(c)) + CATALOG_RETAIN_MS;
    await runScript(this.redis, 'markSold', [
      keys.sold(c, hold.scheduleId), keys.hold(c, hold.scheduleId, hold.seatNumber), keys.holds(c, hold.scheduleId),
      keys.userHolds(c, hold.userId), keys.reservation(c, hold.reservationId), keys.seats(c, hold.scheduleId),
      keys.schedule(c, hold.scheduleId), keys.active(c), keys.queueTokens(c), keys.seen(c), keys.stream(c),
    ], [hold.seatNumber, hold.reservationId, hold.userId, now, place.seq, catalogUntil]);
  }
}
