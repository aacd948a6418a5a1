/**
 * A hold Redis granted is in SQL before it is acknowledged. It used to be written behind: when
 * Redis went away before the stream delivered it, SQL mode answered 404 for the reservation
 * and gave the seat to the next fan (13 of 1,566 acknowledged holds lost in a switch drill).
 */
import { expect, test } from 'bun:test';
import { describeEach, enterMode, newConcert } from './helpers/harness.ts';
import { call } from './helpers/http.ts';
import { admitMany, errorCode, hold, SALES_ENV } from './helpers/sales.ts';

describeEach('a hold acknowledged in Redis mode', { env: SALES_ENV, modes: ['redis'] }, (h) => {
  test('is known to SQL mode at once: it reads held, and nobody else can take the seat', async () => {
    const c = await newConcert(h, [{ seats: 3, price: 1000 }]);
    const scheduleId = c.schedules[0]!.id;
    const [holder, rival] = await admitMany(h, c.id, 2);
    // Both admissions reach SQL (the stream is drained once); the hold below is never drained.
    await h.svc.ctx.writeBehind.drainOnce(h.clock.now());
    const held = await hold(h.app, holder!, scheduleId, 2);
    expect(held.status).toBe(201);

    await enterMode(h.svc, 'sql'); // Redis is gone; its stream with the hold event too
    try {
      const read = await call(h.app, 'GET', `/v1/reservations/${held.body.reservationId}`, { token: holder!.token });
      expect([read.status, read.body.status]).toEqual([200, 'held']);
      const taken = await hold(h.app, rival!, scheduleId, 2);
      expect([taken.status, errorCode(taken)]).toEqual([409, 'SEAT_UNAVAILABLE']);
      const map = await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules/${scheduleId}/seats`, { token: rival!.token });
      expect(map.body.seats[1].status).toBe('held');
    } finally {
      await enterMode(h.svc, 'redis');
    }
  });
});
