import { errors } from '../../errors.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { withLease } from '../../redis/lease.ts';
import { keys, WRITE_BEHIND_GROUP } from '../../redis/keys.ts';
import { encodeReservationHash, prequeueRecord, queueTokenRecord, seatHoldValue } from '../../redis/codecs.ts';
import { restorePlace } from '../../redis/script-calls.ts';
import type { Db } from '../../store/connect.ts';
import { concertSeatStates, findConcert, findSchedules } from './catalog.repo.ts';
import { sleep } from '../../runtime/index.ts';
import { packSlots, SLOT_BYTES, UNKNOWN_SLOT_SEEN, type LinePlace } from '../queue/line.ts';

/** Catalog and queue keys outlive the concert's last show by a day, then Redis drops them. */
const RETAIN_AFTER_END_MS = 86_400_000;
const PIPELINE_CHUNK = 10_000;
/** Waiting places written to the line per SETRANGE (a gap between them is written as empty slots). */
const LINE_WRITE_SLOTS = 10_000;
/** Token records or active places per HSET / ZADD of a load. */
const RECORDS_PER_COMMAND = 1000;

export interface LoadReport { concertId: number; seats: number; holds: number; waiting: number; active: number }

/** A lease renewed while the load runs: a loader that dies frees the concert within this time. */
const LOAD_LOCK_MS = 10_000;
const LOAD_WAIT_MS = 5_000;
/**
 * Loads a concert that Redis does not have, once. A load starts by deleting the queue keys it is
 * about to rewrite, so two loaders of one concert must never overlap: the second would wipe
 * places taken after the first one finished (every place acknowledged in between would be
 * lost). Loaders therefore take the concert's load lock and look again once they hold it;
 * whoever finds the concert loaded leaves it alone. Returns false for an unknown concert.
 */
export async function loadConcertIfMissing(db: Db, redis: RedisClient, concertId: number, now: number): Promise<boolean> {
  const deadline = Date.now() + LOAD_WAIT_MS;
  for (;;) {
    if (await redis.exists(keys.concert(concertId))) return true;
    const report = await withLoadLock(redis, concertId, async () => {
      if (await redis.exists(keys.concert(concertId))) return 'loaded' as const;
      return (await loadConcert(db, redis, concertId, now)) ? 'loaded' as const : 'unknown' as const;
    });
    if (report === 'loaded') return true;
    if (report === 'unknown') return false;
    // Another loader is at work: its result is what we want.
    if (Date.now() > deadline) throw errors.unavailable('the concert is being loaded; retry in a moment', 1);
    await sleep(20);
  }
}

/** Runs `fn` holding the concert's load lock; null (without running it) when another holds it. */
export function withLoadLock<T>(redis: RedisClient, concertId: number, fn: () => Promise<T>): Promise<T | null> {
  return withLease(redis, keys.loadLock(concertId), LOAD_LOCK_MS, fn);
}

/**
 * A forced reload (the rebuild, a new concert): waits for a loader already at work, then loads.
 * `beforeLoad` runs under the lock once joins and admissions of the concert are held off
 * (`loadingUntil` in the meta hash, which the load itself clears): the rebuild drains the
 * concert's stream there, so nothing Redis acknowledged after the drain is overwritten.
 */
export async function reloadConcert(db: Db, redis: RedisClient, concertId: number, now: number,
  beforeLoad?: () => Promise<unknown>): Promise<LoadReport | null> {
  const deadline = Date.now() + 3 * LOAD_LOCK_MS;
  for (;;) {
    const done = await withLoadLock(redis, concertId, async () => {
      if (beforeLoad) {
        // A deadline, not a flag: a loader that dies here holds nothing off for longer.
        if (await redis.exists(keys.queueMeta(concertId))) await redis.hset(keys.queueMeta(concertId), 'loadingUntil', Date.now() + LOAD_LOCK_MS);
        await beforeLoad();
      }
      return { report: await loadConcert(db, redis, concertId, now) };
    });
    if (done) return done.report;
    if (Date.now() > deadline) throw new Error(`the load lock of concert ${concertId} stayed busy`);
    await sleep(20);
  }
}

/**
 * Writes one concert's state from SQL into Redis (callers hold the concert's load lock): catalog, seat states, live holds with their
 * remaining time, the queue's counters and config, waiting users in entry order and active
 * users with their remaining time. Used on a cache miss and by the rebuild job. Idempotent.
 */
export async function loadConcert(db: Db, redis: RedisClient, concertId: number, now: number): Promise<LoadReport | null> {
  const c = concertId;
  // Every SQL read at once: they are independent, and on PostgreSQL they overlap on the pool.
  const [concert, schedules, state, allSeats, payments, sqlEntries, liveTokens, ended, issued, admittedRow] = await Promise.all([
    findConcert(db, c),
    findSchedules(db, c),
    db.selectFrom('queue_state').selectAll().where('concert_id', '=', c).executeTakeFirst(),
    concertSeatStates(db, c, now),
    db.selectFrom('payments').select(['reservation_id', 'user_id']).where('concert_id', '=', c).execute(),
    // Queue: waiting users in entry order and active users with their remaining time. Queue
    // tokens are written through to SQL, so an entry the write-behind stream had not yet
    // delivered is still recovered from its token.
    db.selectFrom('queue_entries')
      .select(['user_id', 'seq', 'status', 'active_until', 'last_seen_at'])
      .where('concert_id', '=', c).where('status', 'in', ['waiting', 'active'])
      .orderBy('seq').execute(),
    db.selectFrom('tokens').select(['jti', 'user_id', 'seq'])
      .where('typ', '=', 'queue').where('concert_id', '=', c).where('seq', '>', 0)
      .where('revoked_at', 'is', null).where('expires_at', '>', now)
      .orderBy('created_at').execute(),
    db.selectFrom('queue_entries').select('seq')
      .where('concert_id', '=', c).where('status', 'not in', ['waiting', 'active']).execute(),
    // Entry numbers handed out so far: every written-through queue token counts, revoked ones
    // too (a paid user's entry may not have reached queue_entries), so none is handed out twice.
    db.selectFrom('tokens').select((eb) => eb.fn.max<number | null>('seq').as('m'))
      .where('concert_id', '=', c).executeTakeFirst(),
    db.selectFrom('queue_entries').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('concert_id', '=', c).where('admitted_at', 'is not', null).executeTakeFirst(),
  ]);
  if (!concert) return null;
  const expireAt = concert.ends_at + RETAIN_AFTER_END_MS;

  let batch = redis.pipeline();
  let pending = 0;
  const flush = async (force = false) => {
    if (pending === 0 || (!force && pending < PIPELINE_CHUNK)) return;
    const results = await batch.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
    batch = redis.pipeline();
    pending = 0;
  };
  const add = async (fn: (p: typeof batch) => void) => {
    fn(batch);
    pending++;
    await flush();
  };

  let seatCount = 0;
  let holdCount = 0;
  const seatsBySchedule = new Map<number, typeof allSeats>();
  for (const seat of allSeats) {
    const list = seatsBySchedule.get(seat.scheduleId);
    if (list) list.push(seat);
    else seatsBySchedule.set(seat.scheduleId, [seat]);
  }
  for (const s of schedules) {
    const seats = seatsBySchedule.get(s.id) ?? [];
    const seatsKey = keys.seats(c, s.id);
    const soldKey = keys.sold(c, s.id);
    const holdsKey = keys.holds(c, s.id);
    // The sold set is only ever added to: sold is final, and a sale mirrored by a payment that
    // committed after this load read SQL must not be wiped by the load.
    await add((p) => p.del(seatsKey, holdsKey));
    const sold = seats.filter((x) => x.status === 'sold').map((x) => x.seatNumber);
    for (let i = 0; i < seats.length; i += 500) {
      const fields: Record<string, number> = {};
      for (const seat of seats.slice(i, i + 500)) fields[seat.seatNumber] = seat.price;
      await add((p) => p.hset(seatsKey, fields));
    }
    for (let i = 0; i < sold.length; i += 500) {
      const chunk = sold.slice(i, i + 500);
      // A sold seat has no hold: drop any hold key a lost sale mirror left behind.
      await add((p) => p.sadd(soldKey, ...chunk).del(...chunk.map((n) => keys.hold(c, s.id, n))));
    }
    for (const seat of seats) {
      if (!seat.hold) continue;
      const { reservationId, userId, expiresAt } = seat.hold;
      holdCount++;
      await add((p) => p.set(keys.hold(c, s.id, seat.seatNumber), seatHoldValue.encode(reservationId, userId), 'PXAT', expiresAt));
      await add((p) => p.zadd(holdsKey, expiresAt, seat.seatNumber));
      await add((p) => p.zadd(keys.userHolds(c, userId), expiresAt, reservationId).pexpireat(keys.userHolds(c, userId), expiresAt));
      await add((p) => p.hset(keys.reservation(c, reservationId), encodeReservationHash({
        userId, scheduleId: s.id, seatNumber: seat.seatNumber, price: seat.price, expiresAt, status: 'held',
      })).pexpireat(keys.reservation(c, reservationId), expireAt));
    }
    await add((p) => p.hset(keys.schedule(c, s.id), { id: s.id, date: s.date, capacity: s.capacity, price: s.price }));
    for (const k of [seatsKey, soldKey, holdsKey, keys.schedule(c, s.id)]) await add((p) => p.pexpireat(k, expireAt));
    seatCount += seats.length;
  }

  // Each buyer's paid reservations, for MAX_TICKETS_PER_USER. Like the sold sets they are only
  // added to (a sale is final), so a sale mirrored after this load read SQL is kept.
  await addPaidReservations(payments, c, expireAt, add);

  const entries = [...sqlEntries];
  const tokenBySeq = new Map<number, { jti: string; user: number }>();
  for (const t of liveTokens) tokenBySeq.set(Number(t.seq), { jti: t.jti, user: t.user_id });
  const known = new Set(entries.map((e) => e.seq));
  for (const e of ended) known.add(e.seq);
  for (const [seq, t] of tokenBySeq) {
    if (!known.has(seq)) {
      entries.push({ user_id: t.user, seq, status: 'waiting', active_until: null, last_seen_at: now });
      known.add(seq);
    }
  }
  entries.sort((a, b) => a.seq - b.seq);

  // A queue Redis still has was drained before this load (the rebuild drains under the load lock):
  // SQL has every place it gave out. One Redis lost (no meta) may have given out numbers up to the
  // reserved ceiling whose records went with it: `unknownUpTo`, with the heartbeats it saw lost
  // from `loadedAt` on. A reload within that window keeps both.
  const [metaAdmit, metaLoadedAt, metaUnknownUpTo] = await redis.hmget(keys.queueMeta(c), 'admitPerSecond', 'loadedAt', 'unknownUpTo');
  const queueKept = metaAdmit !== null;
  const loadedAt = queueKept ? Number(metaLoadedAt) || now : now;
  const unknownUpTo = queueKept ? Number(metaUnknownUpTo) || 0 : state?.seq_ceiling ?? 0;
  const qKeys = [keys.line(c), keys.active(c), keys.queueTokens(c), keys.prequeue(c)];
  await add((p) => p.del(...qKeys));
  // A scheduled sale not drawn yet: its pre-queued fans, whose heartbeat starts again now (as
  // waiting users' does). Once drawn, the drawn fans are ordinary entries, loaded below.
  if (concert.sale_starts_at !== null && concert.drawn_at === null) {
    const pre = await db.selectFrom('prequeue_entries').select(['user_id', 'jti'])
      .where('concert_id', '=', c).where('status', '=', 'waiting').where('drawn_seq', 'is', null).execute();
    for (let i = 0; i < pre.length; i += 1000) {
      const fields: Record<string, string> = {};
      for (const f of pre.slice(i, i + 1000)) fields[f.user_id] = prequeueRecord.encode(f.jti, now);
      await add((p) => p.hset(keys.prequeue(c), fields));
    }
  }
  const line: LinePlace[] = [];
  const records: (string | Buffer)[] = [];
  const activeUntil: number[] = [];
  let waiting = 0;
  let active = 0;
  // Numbers up to the ceiling may have been given out by a Redis that is gone, their places not yet
  // in SQL: new places start above it (reserveEntryNumbers).
  let maxSeq = Math.max(state?.last_seq ?? 0, state?.seq_ceiling ?? 0, Number(issued?.m ?? 0));
  let lastAdmitted = state?.last_admitted_seq ?? 0;
  for (const e of entries) {
    const token = tokenBySeq.get(e.seq);
    maxSeq = Math.max(maxSeq, e.seq);
    if (!token || token.user !== e.user_id) continue; // no live token: the place cannot be used
    if (e.status === 'active') {
      if (!e.active_until || e.active_until <= now) continue;
      active++;
      lastAdmitted = Math.max(lastAdmitted, e.seq);
      activeUntil.push(e.active_until, e.user_id);
    } else {
      waiting++;
      line.push({ seq: e.seq, userId: e.user_id, seenMs: now });
    }
    records.push(String(e.user_id), queueTokenRecord.encode(token.jti, e.seq));
  }
  // Many members per command: one HSET / ZADD per RECORDS_PER_COMMAND places, not one each.
  for (let i = 0; i < records.length; i += 2 * RECORDS_PER_COMMAND) {
    const part = records.slice(i, i + 2 * RECORDS_PER_COMMAND);
    await add((p) => p.hset(keys.queueTokens(c), ...part));
  }
  for (let i = 0; i < activeUntil.length; i += 2 * RECORDS_PER_COMMAND) {
    const part = activeUntil.slice(i, i + 2 * RECORDS_PER_COMMAND);
    await add((p) => p.zadd(keys.active(c), ...part));
  }
  // Numbers up to unknownUpTo that no entry holds may be places the lost Redis gave out: their
  // slots are marked, and for one heartbeat grace from loadedAt (the time their fans have to come
  // back: adoptPlace counts their grace from there) admission stops at the first one still
  // marked (admitNext, peekAdmissions).
  for (let n = lastAdmitted + 1; n <= unknownUpTo; n++) {
    if (!known.has(n)) line.push({ seq: n, userId: 0, seenMs: UNKNOWN_SLOT_SEEN });
  }
  line.sort((a, b) => a.seq - b.seq);
  // The line's slots in a few large SETRANGEs; its head is the slot before the first waiting
  // place (the slots before it are empty), so admission starts there.
  for (let i = 0; i < line.length; i += LINE_WRITE_SLOTS) {
    const part = line.slice(i, i + LINE_WRITE_SLOTS);
    const from = part[0]!.seq;
    await add((p) => p.setrange(keys.line(c), from * SLOT_BYTES, packSlots(from, part[part.length - 1]!.seq, part)));
  }
  const lineHead = line.length ? line[0]!.seq - 1 : maxSeq;
  await add((p) => p.hset(keys.queueMeta(c), {
    lastSeq: maxSeq, lastAdmitted, lineHead, waiting, admittedTotal: Math.max(Number(admittedRow?.n ?? 0), state?.admitted_total ?? 0),
    maxActive: state?.max_active ?? 1000, admitPerSecond: state?.admit_per_second ?? 100,
    activeTtl: state?.active_ttl_seconds ?? 600, paused: state?.paused ?? 0, lastTick: 0, rate: 0, credit: 0, loadingUntil: 0,
    // What SQL has reserved; at or below lastSeq, so the first join reserves the next block.
    seqCeiling: state?.seq_ceiling ?? 0,
    // When this copy of the queue began after a loss: heartbeats seen by the Redis that lost the
    // queue are gone, so a place taken back from its token alone (adoptPlace) has its grace
    // counted from here; unknownUpTo: the numbers that lost Redis may have given out.
    loadedAt, unknownUpTo,
    // A scheduled sale: joinQueue takes no place until the drawn line is all here (it is, below).
    saleAt: concert.sale_starts_at ?? '', drawn: concert.drawn_at !== null ? 1 : 0,
  }));
  for (const k of [...qKeys, keys.queueMeta(c)]) await add((p) => p.pexpireat(k, expireAt));
  await add((p) => p.del(keys.scheduleIds(c)));
  if (schedules.length) await add((p) => p.sadd(keys.scheduleIds(c), ...schedules.map((s) => s.id)).pexpireat(keys.scheduleIds(c), expireAt));
  // The concert hash goes last: its presence means the whole concert is loaded.
  await add((p) => p.hset(keys.concert(c), {
    id: c, title: concert.title, startsAt: concert.starts_at, endsAt: concert.ends_at,
  }).pexpireat(keys.concert(c), expireAt));
  await flush(true);
  await ensureStreamGroup(redis, c);
  return { concertId: c, seats: seatCount, holds: holdCount, waiting, active };
}

export async function ensureStreamGroup(redis: RedisClient, concertId: number): Promise<void> {
  try {
    await redis.xgroup('CREATE', keys.stream(concertId), WRITE_BEHIND_GROUP, '0', 'MKSTREAM');
  } catch (err) {
    if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
  }
}

/**
 * Sold is final, so adding SQL's sold seats (and each buyer's paid reservations) to Redis is
 * always safe, even while Redis serves.
 */
export async function syncSoldSeats(db: Db, redis: RedisClient, concertId: number): Promise<number> {
  const rows = await db.selectFrom('payments').select(['schedule_id', 'seat_number', 'reservation_id', 'user_id'])
    .where('concert_id', '=', concertId).execute();
  if (rows.length === 0) return 0;
  const p = redis.pipeline();
  for (const r of rows) {
    p.sadd(keys.sold(concertId, r.schedule_id), r.seat_number);
    p.sadd(keys.userPaid(concertId, r.user_id), r.reservation_id);
  }
  const concert = await findConcert(db, concertId);
  if (concert) {
    for (const user of new Set(rows.map((r) => r.user_id))) p.pexpireat(keys.userPaid(concertId, user), concert.ends_at + RETAIN_AFTER_END_MS);
  }
  await p.exec();
  return rows.length;
}

/** Writes every buyer's paid reservations of the concert from SQL's payments (see keys.userPaid). */
async function addPaidReservations(rows: { reservation_id: string; user_id: number }[], concertId: number, expireAt: number,
  add: (fn: (p: ReturnType<RedisClient['pipeline']>) => void) => Promise<void>): Promise<void> {
  const byUser = new Map<number, string[]>();
  for (const r of rows) byUser.set(r.user_id, [...(byUser.get(r.user_id) ?? []), r.reservation_id]);
  for (const [user, rids] of byUser) {
    await add((p) => p.sadd(keys.userPaid(concertId, user), ...rids).pexpireat(keys.userPaid(concertId, user), expireAt));
  }
}

/**
 * Places taken in SQL mode by a request that was still running when the rebuild read its
 * concert: their written-through tokens prove them. Adds each to Redis unless Redis already
 * knows the user (whose state there is then newer).
 */
export async function restorePlacesSince(db: Db, redis: RedisClient, concertId: number, since: number, now: number): Promise<number> {
  const rows = await db.selectFrom('tokens as t')
    .leftJoin('queue_entries as e', (j) => j.onRef('e.concert_id', '=', 't.concert_id').onRef('e.seq', '=', 't.seq'))
    .select(['t.jti', 't.user_id', 't.seq', 'e.status'])
    .where('t.typ', '=', 'queue').where('t.concert_id', '=', concertId)
    .where('t.created_at', '>=', since).where('t.revoked_at', 'is', null).where('t.expires_at', '>', now)
    .execute();
  let restored = 0;
  for (const r of rows) {
    if (r.seq === null || r.seq <= 0 || (r.status !== null && r.status !== 'waiting')) continue;
    if (await redis.hexists(keys.queueTokens(concertId), String(r.user_id))) continue;
    const { restored: ok } = await restorePlace(redis, { concertId, userId: r.user_id, jti: r.jti, seq: r.seq, now, activeUntil: 0 });
    if (!ok) continue;
    restored++;
  }
  return restored;
}
