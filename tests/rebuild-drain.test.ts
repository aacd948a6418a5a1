/**
 * The rebuild reloads Redis from SQL, so SQL must first hold every change Redis acknowledged.
 * A stream read that timed out on a frozen Redis is still carried out when Redis wakes up: its
 * entries are then delivered to a consumer that gave up on them, and an ordinary drain leaves
 * them alone until they have been idle for the reclaim time. The rebuild used to reload from a
 * SQL that lacked them: admissions went missing (FIFO looked broken in SQL: the entries read
 * that way were recorded as admitted after later ones) and a fan told "active" was put back in
 * the line.
 */
import { expect, test } from 'bun:test';
import { keys, WRITE_BEHIND_GROUP } from '../src/redis/keys.ts';
import { describeEach, newConcert, newUserId } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

describeEach('rebuild after a stream read that nobody finished', { modes: ['redis'] }, (h) => {
  test('entries delivered to a consumer that gave up reach SQL before Redis is reloaded', async () => {
    const c = await newConcert(h);
    const fans = [];
    for (let i = 0; i < 3; i++) {
      const r = await join(h.app, c.id, await userToken(h.app, newUserId()));
      expect(r.status).toBe(201);
      fans.push(r.body.token as string);
    }
    await h.svc.ctx.writeBehind.drainOnce(h.clock.now());
    await h.tick();
    for (const t of fans) expect((await call(h.app, 'GET', '/v1/queue/me', { token: t })).body.status).toBe('active');

    // The admissions are read by a consumer that never acknowledges them (its read timed out).
    const read = await h.svc.redis.xreadgroup('GROUP', WRITE_BEHIND_GROUP, 'gave-up', 'COUNT', 100,
      'STREAMS', keys.stream(c.id), '>') as [string, unknown[]][] | null;
    expect(read?.[0]?.[1].length).toBe(3);

    expect(await h.svc.ctx.coordinator.rebuildNow()).toBe(true);
    expect(h.svc.ctx.mode.current).toBe('redis');
    const rows = await h.svc.database.db.selectFrom('queue_entries').select(['seq', 'status', 'admitted_at'])
      .where('concert_id', '=', c.id).orderBy('seq').execute();
    expect(rows.map((r) => [r.seq, r.status, r.admitted_at !== null])).toEqual([[1, 'active', true], [2, 'active', true], [3, 'active', true]]);
    // After the rebuild every fan is still active, not back in the line.
    for (const t of fans) expect((await call(h.app, 'GET', '/v1/queue/me', { token: t })).body.status).toBe('active');
  });
});
