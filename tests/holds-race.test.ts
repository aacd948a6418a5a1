/**
 * One seat, 1,000 admitted users asking for it at once: exactly one hold, in Redis mode and
 * SQL mode, on SQLite and PostgreSQL.
 */
import { expect, test } from 'bun:test';
import { describeEach } from './helpers/harness.ts';
import { call, createConcert } from './helpers/http.ts';
import { admitMany, errorCode, hold, SALES_ENV, sqlSeatStates } from './helpers/sales.ts';

const RACERS = 1000;

describeEach('1,000 concurrent holds of one seat', { env: SALES_ENV }, (h) => {
  test('exactly one 201; every other answer is 409 SEAT_UNAVAILABLE', async () => {
    const c = await createConcert(h.app, [{ seats: 10, price: 77_000 }]);
    const s = c.schedules[0]!.id;
    const racers = await admitMany(h, c.id, RACERS);
    const replies = await Promise.all(racers.map((b) => hold(h.app, b, s, 7)));
    const won = replies.filter((r) => r.status === 201);
    expect(won.length).toBe(1);
    const lost = replies.filter((r) => r.status !== 201).map((r) => `${r.status} ${errorCode(r)}`);
    expect(lost.length).toBe(RACERS - 1);
    expect(new Set(lost)).toEqual(new Set(['409 SEAT_UNAVAILABLE']));

    const winner = racers[replies.indexOf(won[0]!)]!;
    const seats = (await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules/${s}/seats`, { token: winner.token })).body.seats;
    expect(seats.filter((x: { status: string }) => x.status === 'held').map((x: { seatNumber: number }) => x.seatNumber)).toEqual([7]);
    const schedules = (await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules`, { token: winner.token })).body.schedules;
    expect(schedules[0].available).toBe(9);

    // SQL agrees once the write-behind stream is drained (at once in SQL mode).
    await h.svc.ctx.writeBehind.drainOnce(h.clock.now());
    const rows = await h.svc.database.db.selectFrom('reservations').selectAll().where('schedule_id', '=', s).execute();
    expect(rows.map((r) => [r.id, r.user_id, r.seat_number, r.status])).toEqual([[won[0]!.body.reservationId, winner.userId, 7, 'held']]);
    expect((await sqlSeatStates(h.svc, s, h.clock.now()))[6]).toBe(`held:${won[0]!.body.reservationId}`);
  }, 120_000);
});
