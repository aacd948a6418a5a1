/**
 * Once a payment was answered 201 the reservation reads `paid` everywhere. The sale is decided
 * in SQL and then mirrored to Redis; a failover can lose that mirror (replication is
 * asynchronous), and a failed mirror used to be only logged. Redis then still had the hold
 * and `st=held`: the paid reservation read `held` (later `expired`) and could even be released.
 */
import { expect, test } from 'bun:test';
import { keys } from '../src/redis/keys.ts';
import { describeEach, newConcert } from './helpers/harness.ts';
import { call } from './helpers/http.ts';
import { admit, errorCode, fund, hold, pay, SALES_ENV } from './helpers/sales.ts';

describeEach('a paid reservation', { env: SALES_ENV, modes: ['redis'] }, (h) => {
  async function heldSeat(seat: number) {
    const c = await newConcert(h, [{ seats: 5, price: 10_000 }]);
    const scheduleId = c.schedules[0]!.id;
    const [buyer] = await admit(h, c.id, 1);
    await fund(h.app, buyer!, 10_000);
    const held = await hold(h.app, buyer!, scheduleId, seat);
    expect(held.status).toBe(201);
    return { c, scheduleId, buyer: buyer!, rid: held.body.reservationId as string, expiresAt: Date.parse(held.body.expiresAt) };
  }

  async function paidSeat() {
    const seat = await heldSeat(3);
    expect((await pay(h.app, seat.buyer, seat.rid)).status).toBe(201);
    return seat;
  }

  test('reads paid and cannot be released when a failover lost the sale\'s mirror in Redis', async () => {
    const { c, scheduleId, buyer, rid, expiresAt } = await paidSeat();
    // What a promoted replica that missed markSold holds: the hold, the held record, no sale.
    const r = h.svc.redis;
    await r.set(keys.hold(c.id, scheduleId, 3), `${rid}|${buyer.userId}`, 'PXAT', expiresAt);
    await r.zadd(keys.holds(c.id, scheduleId), expiresAt, 3);
    await r.hset(keys.reservation(c.id, rid), 'st', 'held');
    await r.srem(keys.sold(c.id, scheduleId), 3);
    await r.srem(keys.userPaid(c.id, buyer.userId), rid);

    // The buyer's queue token was spent by the payment; read with a fresh user token.
    const user = await call(h.app, 'POST', '/v1/tokens', { body: { userId: buyer.userId } });
    const asUser = await call(h.app, 'GET', `/v1/reservations/${rid}`, { token: user.body.token });
    expect(asUser.body.status).toBe('paid');
    const list = await call(h.app, 'GET', '/v1/me/reservations', { token: user.body.token });
    expect(list.body.reservations.find((x: { reservationId: string }) => x.reservationId === rid)?.status).toBe('paid');
    const release = await call(h.app, 'DELETE', `/v1/reservations/${rid}`, { token: user.body.token });
    expect([release.status, errorCode(release)]).toEqual([409, 'ALREADY_PAID']);

    // The rebuild that follows a master change puts the sale back and drops the stale hold key.
    expect(await h.svc.ctx.coordinator.rebuildNow()).toBe(true);
    expect(await r.sismember(keys.sold(c.id, scheduleId), 3)).toBe(1);
    expect(await r.exists(keys.hold(c.id, scheduleId, 3))).toBe(0);
    expect(await r.sismember(keys.userPaid(c.id, buyer.userId), rid)).toBe(1);
    const [observer] = await admit(h, c.id, 1);
    const map = await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules/${scheduleId}/seats`, { token: observer!.token });
    expect(map.body.seats[2]).toEqual({ seatNumber: 3, price: 10_000, status: 'sold' });
  });

  test('a sale Redis refused to mirror puts the fleet on SQL until Redis is rebuilt', async () => {
    const { c, scheduleId, buyer, rid } = await heldSeat(2);
    // The buyer's holds index is not a sorted set: markSold fails after SQL has committed the sale.
    await h.svc.redis.set(keys.userHolds(c.id, buyer.userId), 'not a sorted set');
    const paid = await pay(h.app, buyer, rid);
    expect(paid.status).toBe(201);
    expect(h.svc.ctx.mode.current).toBe('sql');
    // SQL mode admits past the numbers Redis reserved and did not give out once no fan can
    // still come back for them: one heartbeat grace after the switch at the latest.
    h.clock.advance(h.svc.config.queueGraceSeconds * 1000 + 1);
    const [observer] = await admit(h, c.id, 1);
    const map = await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules/${scheduleId}/seats`, { token: observer!.token });
    expect(map.body.seats[1].status).toBe('sold');
    expect(await h.svc.ctx.coordinator.rebuildNow()).toBe(true);
    expect(await h.svc.redis.sismember(keys.sold(c.id, scheduleId), 2)).toBe(1);
  });
});
