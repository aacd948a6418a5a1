/**
 * A write-behind batch applied while a payment runs must not deadlock with it. The batch used
 * to lock queue entries first and reservations after, a payment the other way round
 * (reservation, seat, then the buyer's entry): PostgreSQL aborted one of them with 40P01, seen
 * as 503s in sales-random [postgres, redis mode]. Both now take reservations before entries.
 */
import { expect, test } from 'bun:test';
import { sql } from 'kysely';
import { applyEvents } from '../src/jobs/write-behind.apply.ts';
import { openDatabase } from '../src/store/connect.ts';
import { describeEach, newConcert, newUserId } from './helpers/harness.ts';
import { eventually, join, userToken } from './helpers/http.ts';

describeEach('a write-behind batch during a payment', { modes: ['redis'], sqlTargets: ['postgres'] }, (h) => {
  test('waits for the payment\'s reservation, and the payment gets its queue entry: no deadlock', async () => {
    const c = await newConcert(h, [{ seats: 5, price: 1000 }]);
    const db = h.svc.database.db;
    const userId = newUserId();
    const fan = await join(h.app, c.id, await userToken(h.app, userId));
    expect(fan.status).toBe(201);
    const now = h.clock.now();
    const rid = `${c.id}-00000000-0000-4000-8000-000000000001`;

    // The payment's side, on a connection of its own: the reservation first (the payment
    // records a hold the stream has not delivered, as upsertHeldReservation does)...
    const payer = openDatabase(h.svc.database.url, { poolSize: 1 });
    let release!: () => void;
    const proceed = new Promise<void>((r) => { release = r; });
    let inserted!: () => void;
    const reservationInserted = new Promise<void>((r) => { inserted = r; });
    const payment = payer.transaction().execute(async (trx) => {
      await trx.insertInto('reservations').values({
        id: rid, user_id: userId, concert_id: c.id, schedule_id: c.schedules[0]!.id, seat_number: 1, price: 1000, status: 'held',
        expires_at: now + 60_000, created_at: now, updated_at: now,
      }).onConflict((oc) => oc.column('id').doNothing()).execute();
      inserted();
      await proceed;
      // ...then the buyer's queue entry, as endPlace does.
      await trx.updateTable('queue_entries').set({ updated_at: now + 1 }).where('concert_id', '=', c.id).where('seq', '=', 1).execute();
    });
    try {
      await reservationInserted;
      // The batch touches the same reservation (a redelivered hold) and the same entry.
      const batch = applyEvents(db, c.id, [
        { e: 'join', u: String(userId), s: '1', t: String(now) },
        { e: 'hold', r: rid, u: String(userId), sc: String(c.schedules[0]!.id), n: '1', p: '1000', x: String(now + 60_000), t: String(now) },
      ], now);
      const watcher = openDatabase(h.svc.database.url, { poolSize: 1 });
      try {
        // Wait until the batch is blocked on the payment's lock.
        await eventually(async () => {
          const r = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock'`.execute(watcher);
          return r.rows[0]!.n > 0;
        }, 5000, 20);
      } finally {
        await watcher.destroy();
      }
      release();
      await Promise.all([payment, batch]);
    } finally {
      release();
      await payment.catch(() => {});
      await payer.destroy();
    }
  }, 30_000);
});
