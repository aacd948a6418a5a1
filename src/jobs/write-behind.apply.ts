import type { Transaction } from 'kysely';
import type { Db } from '../store/connect.ts';
import type { Database, QueueEntryStatus } from '../store/schema.ts';
import { upsertStreamEntries, type StreamEntryRow } from '../modules/queue/entries.repo.ts';
import { addAdmittedTotal, raiseQueueCounters } from '../modules/queue/queue-state.repo.ts';
import { insertStreamHolds, markReleased, mirrorStreamHolds, type StreamHoldRow } from '../modules/reservations/reservations.repo.ts';
import { decodeStreamEvent, type HoldStreamEvent, type StreamEvent } from '../redis/codecs.ts';
import { holdStreamedClaims, recordStreamedTokens, type StreamedToken } from '../modules/tokens/queue-token-records.ts';

/** One write-behind stream entry (the codec module describes its fields). */
export type { StreamEvent };

const statusOf: Record<string, QueueEntryStatus> = {
  join: 'waiting', admit: 'active', skip: 'expired', lapse: 'expired', expire: 'expired', leave: 'left', done: 'done',
};
const rank: Record<QueueEntryStatus, number> = { waiting: 0, active: 1, left: 2, expired: 2, done: 2 };

type EntryRow = StreamEntryRow;

/**
 * Applies a batch of one concert's stream entries to SQL in one transaction. Idempotent: rows
 * are keyed by (concert, entry number) or reservation id, and a status only moves forward
 * (waiting → active → ended), so a redelivered or reclaimed entry changes nothing. A join's
 * queue token carried by its entry is recorded unless SQL knows it (recordStreamedTokens).
 */
export async function applyEvents(db: Db, concertId: number, events: StreamEvent[], now: number,
  opts: { fence?: (trx: Transaction<Database>) => Promise<void> } = {}): Promise<void> {
  const entries = new Map<number, EntryRow>();
  const holds = new Map<string, HoldStreamEvent>();
  const releases: string[] = [];
  const tokens: StreamedToken[] = [];
  let maxSeq = 0;
  let maxAdmitted = 0;

  for (const entry of events) {
    const ev = decodeStreamEvent(entry);
    if (ev === null) continue;
    if ('seq' in ev) {
      const status = statusOf[ev.event]!;
      const seq = ev.seq;
      if (!Number.isSafeInteger(seq) || seq <= 0) continue;
      const t = ev.time;
      if (ev.token) tokens.push({ userId: ev.userId, seq, time: t, token: ev.token });
      // A place handed to a new token: the place itself has not moved.
      if (ev.event === 'token') continue;
      maxSeq = Math.max(maxSeq, seq);
      const prev = entries.get(seq);
      const row: EntryRow = prev ?? {
        concert_id: concertId, seq, user_id: ev.userId, status, joined_at: t,
        admitted_at: null, active_until: null, last_seen_at: t, updated_at: now,
      };
      if (rank[status] >= rank[row.status]) row.status = status;
      if (ev.event === 'admit') {
        row.admitted_at = row.admitted_at === null ? t : Math.min(row.admitted_at, t);
        row.active_until = ev.activeUntil;
        maxAdmitted = Math.max(maxAdmitted, seq);
      }
      // Admission passed over a lapsed entry ('skip'): the line has moved past it. A 'lapse'
      // (a poll or rejoin found the heartbeat gone) can be anywhere in the line and moves nothing.
      if (ev.event === 'skip') maxAdmitted = Math.max(maxAdmitted, seq);
      entries.set(seq, row);
    } else if (ev.event === 'hold') {
      holds.set(ev.reservationId, ev);
    } else {
      releases.push(ev.reservationId);
    }
  }

  await db.transaction().execute(async (trx) => {
    // A check run first in the transaction (the admission record's mode fence).
    if (opts.fence) await opts.fence(trx);
    const rows = [...entries.values()];
    if (rows.length > 0) {
      // The state row first: its lock orders batches of one concert applied at the same time
      // (a reclaimed batch may still be in flight at its first reader), so that the admissions
      // counted below as new are new.
      await raiseQueueCounters(trx, concertId, maxSeq, maxAdmitted);
    }
    // The joins' claims before any entry row: the order a join's own record locks them in.
    const claims = new Map<string, string>();
    const byClaim = [...tokens].sort((a, b) => (a.token.srcJti < b.token.srcJti ? -1 : a.token.srcJti > b.token.srcJti ? 1 : 0));
    for (let i = 0; i < byClaim.length; i += CHUNK) {
      for (const [k, v] of await holdStreamedClaims(trx, concertId, byClaim.slice(i, i + CHUNK))) claims.set(k, v);
    }
    // Then reservations and seats, queue rows last: the order payments (reservation, seat, then
    // the buyer's queue entry), releases and written-through holds take their locks in, so that
    // a batch applied during a payment cannot deadlock with it (it did: PostgreSQL 40P01).
    const holdRows: StreamHoldRow[] = [...holds.values()].map((h) => ({
      id: h.reservationId, user_id: h.userId, concert_id: concertId, schedule_id: h.scheduleId, seat_number: h.seatNumber,
      price: h.price, status: 'held' as const, expires_at: h.expiresAt, created_at: h.time, updated_at: now,
    }));
    // Holds made in Redis mode are written through before they are acknowledged, so their rows
    // usually exist already: only a row inserted here (a hold whose write-through did not
    // finish) still needs its seat mirrored, which keeps this batch off the seat rows that
    // payments and holds lock.
    const inserted = await insertStreamHolds(trx, holdRows);
    // Mirror the hold on the seat row, so SQL mode knows the seat is taken. Only a seat whose
    // previous hold had ended when this one was granted: a hold that SQL refused (and Redis
    // then gave back) must not displace the one SQL keeps. A sold seat is never touched. Of
    // several new holds of one seat in a batch, Redis granted the last one after the others
    // had ended: that one is mirrored.
    const lastPerSeat = new Map<string, StreamHoldRow>();
    for (const hold of holdRows) if (inserted.has(hold.id)) lastPerSeat.set(`${hold.schedule_id}:${hold.seat_number}`, hold);
    await mirrorStreamHolds(trx, [...lastPerSeat.values()]);
    const released = [...new Set(releases)];
    for (let i = 0; i < released.length; i += CHUNK) {
      await markReleased(trx, released.slice(i, i + CHUNK), now);
    }
    if (rows.length > 0) {
      const admits = rows.filter((r) => r.admitted_at !== null).map((r) => r.seq);
      let known = 0;
      for (let i = 0; i < admits.length; i += CHUNK) {
        const r = await trx.selectFrom('queue_entries').select((eb) => eb.fn.countAll<number>().as('n'))
          .where('concert_id', '=', concertId).where('seq', 'in', admits.slice(i, i + CHUNK)).where('admitted_at', 'is not', null)
          .executeTakeFirst();
        known += Number(r?.n ?? 0);
      }
      await upsertStreamEntries(trx, concertId, rows);
      // admitted_total counts entries admitted once, so a redelivered admission adds nothing.
      if (admits.length > known) {
        await addAdmittedTotal(trx, concertId, admits.length - known);
      }
    }
    for (let i = 0; i < tokens.length; i += CHUNK) {
      await recordStreamedTokens(trx, concertId, tokens.slice(i, i + CHUNK), claims, now);
    }
  });
}

/** Rows per multi-row statement where the values are bound one by one (SQLite, IN lists). */
const CHUNK = 500;
