/**
 * While SQL is down or slow, the write-behind streams grow; nothing trims them unapplied. At
 * WRITE_BEHIND_MAX_BACKLOG entries a concert refuses new places and holds with 503 and admits
 * nobody, drops nothing, and takes them again once the worker has caught up.
 */
import { expect, test } from 'bun:test';
import { keys } from '../src/redis/keys.ts';
import { describeEach, newConcert, newUserId, queueStats } from './helpers/harness.ts';
import { join, userToken } from './helpers/http.ts';

describeEach('a bounded write-behind backlog', { modes: ['redis'], env: { WRITE_BEHIND_MAX_BACKLOG: '5' } }, (h) => {
  test('at the bound joins answer 503 with Retry-After, no entry is dropped, and all resumes after the drain', async () => {
    const c = await newConcert(h);
    const wb = h.svc.ctx.writeBehind;
    for (let i = 0; i < 5; i++) expect((await join(h.app, c.id, await userToken(h.app, newUserId()))).status).toBe(201);
    await wb.measureBacklog(h.clock.now());
    expect(wb.backlog(c.id)).toBe(5);

    const refused = await join(h.app, c.id, await userToken(h.app, newUserId()));
    expect([refused.status, refused.body.error.code, refused.headers.get('Retry-After')]).toEqual([503, 'UNAVAILABLE', '2']);
    expect(refused.body.error.message).toContain('recorded in the database');
    // Nobody is admitted while the record is behind (admissions are entries too).
    await h.tick();
    expect((await queueStats(h.app, c.id)).active).toBe(0);
    expect(await h.svc.redis.xlen(keys.stream(c.id))).toBe(5);

    await wb.drainOnce(h.clock.now());
    await wb.measureBacklog(h.clock.now());
    expect(wb.backlog(c.id)).toBe(0);
    const rows = await h.svc.database.db.selectFrom('queue_entries').select('seq').where('concert_id', '=', c.id).execute();
    expect(rows.length).toBe(5);
    expect((await join(h.app, c.id, await userToken(h.app, newUserId()))).status).toBe(201);
    await h.tick();
    expect((await queueStats(h.app, c.id)).active).toBe(6);
  });
});
