import { errors } from '../../errors.ts';
import { ScriptCode, scriptError } from '../../redis/codes.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { awaitReplicas } from '../../redis/replication.ts';
import { decodeReservationHash, RESERVATION_FIELDS, seatHoldValue } from '../../redis/codecs.ts';
import * as script from '../../redis/script-calls.ts';
import type { ReservationStatus } from '../../store/schema.ts';
import { newReservationId } from './reservation-id.ts';
import type { Hold, HoldOutcome, HoldRequest, HoldStore, QueuePlaceRef, ReservationRecord } from './types.ts';
import { visibleStatus } from './types.ts';
import { sleep } from '../../runtime/index.ts';

/** A held reservation's record outlives its hold by a day, for reads and late payments' answers. */
const RECORD_RETAIN_MS = 86_400_000;
/** Catalog keys live until a day after the concert's last show (as load-concert.ts sets them). */
const CATALOG_RETAIN_MS = 86_400_000;

/** How long a retry waits for a concurrent copy of itself to finish writing its hold through. */
const OWN_HOLD_WAIT_MS = 3_000;

/** Lifetime facts the scripts need to give new keys the catalog's expiry. */
export type ConcertEnd = (concertId: number) => Promise<number>;

/**
 * SQL's side of holds in Redis mode. Holds and releases are written through: SQL has every
 * acknowledged hold, so neither a failover that loses Redis writes nor a switch to SQL mode
 * can hand an acknowledged seat to someone else, and SQL's record of a reservation is the
 * truth that reads return (Redis only ever says `paid` sooner).
 */
export interface HoldRecords {
  find(concertId: number, reservationId: string, now: number): Promise<ReservationRecord | null>;
  /** The user's newest reservations as SQL has them (see HoldStore.listOwn). */
  listOwn(userId: number, now: number, limit: number): Promise<ReservationRecord[]>;
  /** False when SQL refuses the hold (the seat is sold or live-held by another reservation there). */
  recordGranted(hold: Hold, now: number): Promise<boolean>;
  /** The user's own live hold of the seat as SQL has it, or null. */
  ownLiveHold(userId: number, concertId: number, scheduleId: number, seatNumber: number, now: number): Promise<Hold | null>;
  /** Marks a live hold released in SQL under the reservation's lock, then runs `inRedis` before committing. */
  release(reservationId: string, userId: number, now: number, inRedis: () => Promise<void>): Promise<void>;
}

/**
 * Holds in Redis: one Lua call takes a seat (token, seat, limit, hold, stream entry), one
 * releases it, one mirrors a sale. SQL learns of holds through the write-behind stream.
 */
export class RedisHoldStore implements HoldStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly concertEnd: ConcertEnd,
    private readonly sql: HoldRecords,
    private readonly replication: { replicas: number; timeoutMs: number } = { replicas: 0, timeoutMs: 0 },
  ) {}

  async hold(req: HoldRequest, now: number): Promise<HoldOutcome> {
    const first = await this.holdOnce(req, now);
    if (first !== 'again') return first;
    // A new id: the release still on its way for the old one must not end the new hold.
    const again = await this.holdOnce({ ...req, reservationId: newReservationId(req.concertId) }, now);
    if (again === 'again') throw errors.unavailable('the seat\'s earlier hold is being given back; retry in a moment', 1);
    return again;
  }

  /** One attempt; 'again' when it found and released a hold of this user that was never acknowledged. */
  private async holdOnce(req: HoldRequest, now: number): Promise<HoldOutcome | 'again'> {
    const c = req.concertId;
    const catalogUntil = (await this.concertEnd(c)) + CATALOG_RETAIN_MS;
    const deadline = Date.now() + OWN_HOLD_WAIT_MS;
    let reply;
    for (;;) {
      reply = await script.holdSeat(this.redis, {
        concertId: c, scheduleId: req.scheduleId, seatNumber: req.seatNumber, reservationId: req.reservationId,
        userId: req.userId, jti: req.jti, now, ttlMs: req.ttlMs, maxHolds: req.maxHolds, maxTickets: req.maxTickets,
        catalogUntil, recordRetainMs: RECORD_RETAIN_MS,
      });
      if (reply.code !== ScriptCode.Ok) {
        throw scriptError(reply.code, { maxHolds: req.maxHolds, maxTickets: req.maxTickets, what: reply.what ?? 'seat' });
      }
      if (reply.created) break;
      // Redis says the seat is this user's already; SQL, which every acknowledged hold reached, has the record.
      const rec = await this.sql.find(c, reply.reservationId, now);
      if (rec) {
        if (rec.userId !== req.userId || rec.status !== 'held') throw errors.seatUnavailable();
        const { status: _, ...own } = rec;
        return { hold: own, created: false };
      }
      // Not acknowledged yet: a concurrent copy of this request is still writing it through to
      // SQL (or will give it back on failure). Its outcome is this request's answer too.
      if (Date.now() > deadline) throw errors.unavailable('the same hold is being taken by another request; retry in a moment', 1);
      await sleep(10);
    }
    const hold: Hold = {
      reservationId: req.reservationId, userId: req.userId, concertId: c, scheduleId: req.scheduleId,
      seatNumber: req.seatNumber, price: reply.price, expiresAt: reply.expiresAt,
    };
    let recorded: boolean;
    try {
      recorded = await this.sql.recordGranted(hold, now);
    } catch (err) {
      await this.undo(hold, now);
      throw err;
    }
    if (!recorded) {
      // Redis did not know the seat was taken (it lost a sale's mirror or a hold in a failover).
      await this.undo(hold, now);
      // The hold Redis lost may be this user's own: SQL's is then the answer, as if Redis had known it.
      const own = await this.sql.ownLiveHold(req.userId, c, req.scheduleId, req.seatNumber, now);
      if (!own) throw errors.seatUnavailable();
      // Unless Redis gave it back: a write-through whose answer failed (503) after SQL had
      // committed it leaves SQL's hold live until the release, queued in the stream, arrives.
      // Never acknowledged, it must not be now (the release would end it under the fan): it
      // is released in SQL at once and the seat taken afresh.
      if ((await this.redis.hget(keys.reservation(c, own.reservationId), RESERVATION_FIELDS.status)) === 'released') {
        await this.sql.release(own.reservationId, req.userId, now, async () => {}).catch(() => {});
        return 'again';
      }
      return { hold: own, created: false };
    }
    return { hold, created: true };
  }

  /** Gives back a hold that was never acknowledged; if this fails too, its TTL ends it. */
  private async undo(hold: Hold, now: number): Promise<void> {
    await this.releaseInRedis(hold.concertId, hold.reservationId, hold.userId, hold.scheduleId, hold.seatNumber, now).catch(() => {});
  }

  private async releaseInRedis(concertId: number, reservationId: string, userId: number, scheduleId: number, seat: number,
    now: number): Promise<script.ReleaseHoldReply['code']> {
    const r = await script.releaseHold(this.redis, { concertId, reservationId, userId, scheduleId, seatNumber: seat, now });
    return r.code;
  }

  /** The reservation hash, with the hold key's say on whether a `held` one is still live. */
  private async record(concertId: number, reservationId: string, now: number): Promise<ReservationRecord | null> {
    const h = decodeReservationHash(await this.redis.hgetall(keys.reservation(concertId, reservationId)));
    if (!h) return null;
    const rec: ReservationRecord = {
      reservationId, userId: h.userId, concertId, scheduleId: h.scheduleId, seatNumber: h.seatNumber,
      price: h.price, expiresAt: h.expiresAt, status: visibleStatus(h.status as ReservationStatus, h.expiresAt, now),
    };
    if (rec.status === 'held') {
      const holder = await this.redis.get(keys.hold(concertId, rec.scheduleId, rec.seatNumber));
      if (holder !== seatHoldValue.encode(reservationId, rec.userId)) rec.status = 'expired';
    }
    return rec;
  }

  /**
   * Redis answers only when it says `paid` (final, and it may know a sale a moment before a
   * replica of SQL would); otherwise SQL, which has every acknowledged hold, release and sale.
   * A sale whose Redis mirror was lost in a failover so never reads `held` or `expired`.
   */
  async find(concertId: number, reservationId: string, now: number): Promise<ReservationRecord | null> {
    const st = await this.redis.hget(keys.reservation(concertId, reservationId), RESERVATION_FIELDS.status);
    if (st === 'paid') return this.record(concertId, reservationId, now);
    return this.sql.find(concertId, reservationId, now);
  }

  /**
   * SQL first, under the reservation's lock (which a payment takes too), then Redis before the
   * commit: a release and a payment of one hold can never both succeed.
   */
  async release(concertId: number, reservationId: string, userId: number, now: number): Promise<void> {
    await this.sql.release(reservationId, userId, now, async () => {
      const f = RESERVATION_FIELDS;
      const h = await this.redis.hmget(keys.reservation(concertId, reservationId), f.userId, f.scheduleId, f.seatNumber);
      // Redis lost the hold (a failover): SQL's release is the whole release.
      if (!h[0]) return;
      const [owner, scheduleId, seat] = h.map(Number) as [number, number, number];
      const code = await this.releaseInRedis(concertId, reservationId, owner, scheduleId, seat, now);
      // Already gone from Redis (expired there a moment early, or released by a lost retry): SQL decided.
      if (code === ScriptCode.Ok || code === ScriptCode.HoldExpired) return;
      throw scriptError(code, { what: 'reservation' });
    });
  }

  /** SQL's list (it has every acknowledged hold, release and sale), with Redis's sooner `paid`, as `find` reads one. */
  async listOwn(userId: number, now: number, limit: number): Promise<ReservationRecord[]> {
    const recs = await this.sql.listOwn(userId, now, limit);
    const unsettled = recs.filter((r) => r.status !== 'paid');
    // One command each, sent together: reservations of several concerts live in several slots.
    const st = await Promise.all(unsettled.map((r) => this.redis.hget(keys.reservation(r.concertId, r.reservationId), RESERVATION_FIELDS.status)));
    unsettled.forEach((r, i) => { if (st[i] === 'paid') r.status = 'paid'; });
    return recs;
  }

  /** The fast check before a payment; the payment's transaction checks SQL again under the row lock. */
  async payable(concertId: number, reservationId: string, userId: number, now: number): Promise<Hold> {
    let rec = await this.record(concertId, reservationId, now);
    // Not live in Redis: SQL, which every acknowledged hold reached, decides.
    if (!rec || rec.status !== 'held') rec = await this.sql.find(concertId, reservationId, now);
    if (!rec) throw errors.notFound('reservation');
    if (rec.userId !== userId) throw errors.forbidden('this reservation belongs to someone else');
    if (rec.status === 'paid') throw errors.alreadyPaid();
    if (rec.status !== 'held') throw errors.holdExpired();
    const { status: _, ...hold } = rec;
    return hold;
  }

  async settle(hold: Hold, place: QueuePlaceRef, now: number): Promise<void> {
    const c = hold.concertId;
    const catalogUntil = (await this.concertEnd(c)) + CATALOG_RETAIN_MS;
    await script.markSold(this.redis, {
      concertId: c, scheduleId: hold.scheduleId, seatNumber: hold.seatNumber, reservationId: hold.reservationId,
      userId: hold.userId, now, seq: place.seq, catalogUntil, placeMayEnd: place.end,
    });
    await awaitReplicas(this.redis, this.replication.replicas, this.replication.timeoutMs);
  }
}
