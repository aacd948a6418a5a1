/**
 * The write-behind worker: what the queue scripts decide in Redis reaches SQL with the right
 * status and counters; applying a batch again changes nothing; and entries a consumer read but
 * never acknowledged (it died) are reclaimed by another worker. Real Redis, both SQL engines.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { applyEvents, type StreamEvent } from '../src/jobs/write-behind.apply.ts';
import { keys, WRITE_BEHIND_GROUP } from '../src/redis/keys.ts';
import { newUserId, patchQueue } from './helpers/harness.ts';
import { call, createConcert, eventually, join, userToken } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';
import { SQL_TARGETS } from './helpers/sql.ts';

for (const target of SQL_TARGETS) {
  describe(`write-behind [${target}]`, () => {
    let svc: TestService;
    const ready: number[] = [];
    beforeAll(async () => {
      svc = await startService({ sql: target, writeBehindClaimIdleMs: 100 });
      // Concerts made up front, once the worker's one-second cache of live concerts knows them.
      for (let i = 0; i < 5; i++) ready.push((await createConcert(svc.app)).id);
      await eventually(async () => (await svc.ctx.liveConcerts(Date.now())).includes(ready.at(-1)!), 3000, 50);
    });
    afterAll(async () => {
      await svc?.stop();
    });

    const concert = async () => ready.shift()!;
    async function joinUsers(concertId: number, n: number) {
      const out = [];
      for (let i = 0; i < n; i++) {
        const userId = newUserId();
        const r = await join(svc.app, concertId, await userToken(svc.app, userId));
        expect(r.status).toBe(201);
        out.push({ userId, token: r.body.token as string, jti: (await svc.ctx.tokens.decode(r.body.token, Date.now()))!.jti });
      }
      return out;
    }
    let tick = 0;
    /** One admission step at `now` (a tick id of its own, so each call acts). */
    const admit = (concertId: number, now = Date.now()) => svc.ctx.backends.current.queue.admitTick(concertId, now, Math.floor(now / 1000) * 1000 + ++tick);
    const entries = (concertId: number) => svc.database.db.selectFrom('queue_entries')
      .select(['seq', 'user_id', 'status', 'admitted_at', 'active_until']).where('concert_id', '=', concertId).orderBy('seq').execute();
    const state = (concertId: number) => svc.database.db.selectFrom('queue_state')
      .select(['last_seq', 'last_admitted_seq', 'admitted_total']).where('concert_id', '=', concertId).executeTakeFirstOrThrow();
    async function streamEvents(concertId: number): Promise<StreamEvent[]> {
      return (await svc.redis.xrange(keys.stream(concertId), '-', '+')).map(([, f]) => {
        const ev: StreamEvent = {};
        for (let i = 0; i < f.length; i += 2) ev[f[i]!] = f[i + 1]!;
        return ev;
      });
    }

    test('joins, admissions, departures and lapses land in SQL with their status and the queue counters', async () => {
      const c = await concert();
      await patchQueue(svc.app, c, { maxActive: 2 });
      const u = await joinUsers(c, 7);
      await admit(c);                                                        // 1, 2 admitted
      expect((await call(svc.app, 'DELETE', '/v1/queue/me', { token: u[1]!.token })).status).toBe(204); // 2 gives up the slot
      expect((await call(svc.app, 'DELETE', '/v1/queue/me', { token: u[4]!.token })).status).toBe(204); // 5 leaves the line
      await admit(c);                                                        // 3 admitted
      // Much later: 4 has stopped polling and is passed over; 7 polls too late and loses the place.
      await patchQueue(svc.app, c, { maxActive: 3 });
      const later = Date.now() + 400_000;
      await svc.ctx.backends.current.queue.poll(c, u[5]!.userId, u[5]!.jti, later - 200_000);
      await expect(svc.ctx.backends.current.queue.poll(c, u[6]!.userId, u[6]!.jti, later)).rejects.toThrow('lost');
      const out = await admit(c, later);
      expect(out).toMatchObject({ admitted: 1, skipped: 1 });               // 4 skipped, 6 admitted

      await svc.ctx.writeBehind.drainOnce();
      const rows = await entries(c);
      expect(rows.map((r) => [r.seq, r.user_id, r.status])).toEqual([
        [1, u[0]!.userId, 'active'], [2, u[1]!.userId, 'left'], [3, u[2]!.userId, 'active'], [4, u[3]!.userId, 'expired'],
        [5, u[4]!.userId, 'left'], [6, u[5]!.userId, 'active'], [7, u[6]!.userId, 'expired'],
      ]);
      expect(rows.filter((r) => r.admitted_at !== null).map((r) => r.seq)).toEqual([1, 2, 3, 6]);
      expect(rows[5]!.active_until).toBe(later + 600_000);
      // 7 lapsed while waiting behind 6: the line itself has passed entry 6, not 7.
      expect(await state(c)).toEqual({ last_seq: 7, last_admitted_seq: 6, admitted_total: 4 });
      expect(await svc.redis.xlen(keys.stream(c))).toBe(0);
    });

    test('applying the same batch again, whole or in part, changes nothing', async () => {
      const c = await concert();
      await patchQueue(svc.app, c, { maxActive: 2 });
      const u = await joinUsers(c, 4);
      await admit(c);
      await call(svc.app, 'DELETE', '/v1/queue/me', { token: u[0]!.token });
      await admit(c);
      const events = await streamEvents(c);
      expect(events.map((e) => e.e)).toEqual(['join', 'join', 'join', 'join', 'admit', 'admit', 'leave', 'admit']);

      const db = svc.database.db;
      await applyEvents(db, c, events, Date.now());
      const first = { rows: await entries(c), state: await state(c) };
      expect(first.state).toEqual({ last_seq: 4, last_admitted_seq: 3, admitted_total: 3 });
      await applyEvents(db, c, events, Date.now());
      await applyEvents(db, c, events.slice(0, 5), Date.now());
      await applyEvents(db, c, events.slice(5), Date.now());
      expect({ rows: await entries(c), state: await state(c) }).toEqual(first);
      // The worker delivering the same entries once more (they are still in the stream) agrees.
      await svc.ctx.writeBehind.drainOnce();
      expect({ rows: await entries(c), state: await state(c) }).toEqual(first);
    });

    test('two workers applying one batch at once count each admission once', async () => {
      const c = await concert();
      await joinUsers(c, 6);
      await admit(c);
      const events = await streamEvents(c);
      await Promise.all([1, 2, 3].map(() => applyEvents(svc.database.db, c, events, Date.now())));
      expect(await state(c)).toMatchObject({ last_admitted_seq: 6, admitted_total: 6 });
    });

    test('entries a dead consumer read and never acknowledged are reclaimed and committed; backlog is reported', async () => {
      const c = await concert();
      const stream = keys.stream(c);
      const u = await joinUsers(c, 3);
      // The joins claimed their entries in SQL with their tokens, and the tick recorded its
      // admissions there before making them; the departures exist only in Redis.
      await admit(c);
      for (const x of u) expect((await call(svc.app, 'DELETE', '/v1/queue/me', { token: x.token })).status).toBe(204);
      // A consumer reads the entries, then dies before it commits and acknowledges them.
      const read = (await svc.redis.xreadgroup('GROUP', WRITE_BEHIND_GROUP, 'dead', 'COUNT', 100, 'STREAMS', stream, '>')) as [string, unknown[]][];
      expect(read[0]![1]).toHaveLength(9);
      expect((await svc.redis.xpending(stream, WRITE_BEHIND_GROUP))[0]).toBe(9);

      // Nothing new to read: the backlog is visible in the status report and the metrics.
      await svc.ctx.writeBehind.drainOnce();
      const status = await eventually(async () => {
        const r = await call(svc.app, 'GET', '/admin/status', { admin: true });
        return r.body.writeBehind.lagSeconds > 0.05 && r.body;
      }, 3000);
      expect(status.writeBehind.pending).toBeGreaterThanOrEqual(3);
      const metrics = (await call(svc.app, 'GET', '/metrics')).body as string;
      expect(Number(/write_behind_pending_entries (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
      expect(Number(/write_behind_lag_seconds ([\d.]+)/.exec(metrics)?.[1])).toBeGreaterThan(0.05);
      expect((await entries(c)).map((r) => r.status)).toEqual(['active', 'active', 'active']);

      // Once the entries have been idle longer than writeBehindClaimIdleMs, a live worker takes them.
      svc.ctx.writeBehind.start();
      try {
        await eventually(async () => (await entries(c)).every((r) => r.status === 'left'), 5000, 50);
      } finally {
        svc.ctx.writeBehind.stop();
      }
      expect((await entries(c)).map((r) => r.status)).toEqual(['left', 'left', 'left']);
      expect((await svc.redis.xpending(stream, WRITE_BEHIND_GROUP))[0]).toBe(0);
      expect(await svc.redis.xlen(stream)).toBe(0);
      const after = await call(svc.app, 'GET', '/admin/status', { admin: true });
      expect(after.body.writeBehind).toEqual({ pending: 0, lagSeconds: 0 });
      expect((await call(svc.app, 'GET', '/metrics')).body).toContain('write_behind_pending_entries 0\n');
    });

    test('holds SQL has no row for yet: the seat is mirrored for the last one, a release ends only its own', async () => {
      const concert = await createConcert(svc.app, [{ seats: 3, price: 1000 }]);
      const c = concert.id;
      const sc = String(concert.schedules[0]!.id);
      const t = Date.now();
      const rid = (n: number) => `${c}-00000000-0000-4000-8000-00000000000${n}`;
      const hold = (n: number, user: number, seat: number, at: number): StreamEvent =>
        ({ e: 'hold', r: rid(n), u: String(user), sc, n: String(seat), p: '1000', x: String(at + 60_000), t: String(at) });
      // Seat 1: held by 1, given back, then held by 2 — three entries of one batch. Seat 2: held by 3.
      const events = [hold(1, 11, 1, t), { ...hold(1, 11, 1, t), e: 'release', t: String(t + 5) }, hold(2, 12, 1, t + 10), hold(3, 13, 2, t)];
      for (let i = 0; i < 2; i++) await applyEvents(svc.database.db, c, events, t + 20); // and once more: nothing changes
      const seats = await svc.database.db.selectFrom('seats').select(['seat_number', 'status', 'hold_reservation_id'])
        .where('schedule_id', '=', Number(sc)).orderBy('seat_number').execute();
      expect(seats).toEqual([
        { seat_number: 1, status: 'held', hold_reservation_id: rid(2) },
        { seat_number: 2, status: 'held', hold_reservation_id: rid(3) },
        { seat_number: 3, status: 'available', hold_reservation_id: null },
      ]);
      const reservations = await svc.database.db.selectFrom('reservations').select(['id', 'status']).where('concert_id', '=', c).orderBy('id').execute();
      expect(reservations).toEqual([{ id: rid(1), status: 'released' }, { id: rid(2), status: 'held' }, { id: rid(3), status: 'held' }]);
    });

    test('a stream that vanished with its group (Redis restarted) is recreated and drained', async () => {
      const c = await concert();
      await joinUsers(c, 1);
      await svc.ctx.writeBehind.drainOnce();
      await svc.redis.del(keys.stream(c));
      await joinUsers(c, 1);
      await svc.ctx.writeBehind.drainOnce();
      expect((await entries(c)).map((r) => r.seq)).toEqual([1, 2]);
    });
  });
}
