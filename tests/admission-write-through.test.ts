/**
 * An admission is in SQL before Redis shows it. It used to reach SQL only through the
 * write-behind stream: if Redis died while the admission was still in the stream, SQL mode
 * answered `waiting` to a fan Redis had already told `active` (found by the fault checker).
 * Real Redis (killed), both SQL engines; the write-behind worker is not running, so the stream
 * holds every entry when Redis dies.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readLine } from '../src/modules/queue/line.ts';
import { keys } from '../src/redis/keys.ts';
import * as script from '../src/redis/script-calls.ts';
import { ETA_AGE_BUCKETS, ETA_GAP_TICKS, ETA_WINDOW_MS } from '../src/modules/queue/eta.ts';
import { MAX_EXPIRE_PER_TICK } from '../src/modules/queue/queue.redis.ts';
import { enterMode, newUserId, patchQueue } from './helpers/harness.ts';
import { call, createConcert, eventually, join, userToken } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';
import { SQL_TARGETS } from './helpers/sql.ts';

for (const target of SQL_TARGETS) {
  describe(`admissions written through [${target}]`, () => {
    let svc: TestService;
    beforeAll(async () => {
      svc = await startService({ sql: target, env: { REDIS_TIMEOUT_MS: '300' } });
    });
    afterAll(async () => {
      await svc?.stop();
    });

    test('a fan Redis admitted is active in SQL mode after Redis dies with the admission still in the stream', async () => {
      const { app, ctx } = svc;
      const concert = await createConcert(app, [{ seats: 5, price: 1000 }]);
      await patchQueue(app, concert.id, { maxActive: 2 });
      await eventually(async () => (await ctx.liveConcerts(Date.now())).includes(concert.id), 3000, 50);
      const fans = [];
      for (let i = 0; i < 3; i++) {
        const r = await join(app, concert.id, await userToken(app, newUserId()));
        expect(r.status).toBe(201);
        fans.push(r.body.token as string);
      }
      await ctx.ticker.tickOnce(Date.now() + 1000);
      const seen = [];
      for (const token of fans) seen.push((await call(app, 'GET', '/v1/queue/me', { token })).body.status);
      expect(seen).toEqual(['active', 'active', 'waiting']);
      // Nothing has been drained: the admissions are still stream entries.
      const stream = await svc.redis.xrange(keys.stream(concert.id), '-', '+');
      expect(stream.filter(([, f]) => f[1] === 'admit')).toHaveLength(2);

      await svc.redisProc.kill();
      await enterMode(svc, 'sql');
      const after = [];
      for (const token of fans) {
        const r = await call(app, 'GET', '/v1/queue/me', { token });
        expect(r.status).toBe(200);
        after.push(r.body.status);
      }
      expect(after).toEqual(['active', 'active', 'waiting']);
      const state = await svc.database.db.selectFrom('queue_state').select(['last_admitted_seq', 'admitted_total'])
        .where('concert_id', '=', concert.id).executeTakeFirstOrThrow();
      expect(state).toEqual({ last_admitted_seq: 2, admitted_total: 2 });
      await svc.redisProc.restart();
      await enterMode(svc, 'redis');
    });

    test('an instance still in Redis mode records and admits nobody once the fleet has moved to SQL mode', async () => {
      const { app, ctx } = svc;
      const concert = await createConcert(app, [{ seats: 5, price: 1000 }]);
      const c: number = concert.id;
      for (let i = 0; i < 2; i++) expect((await join(app, c, await userToken(app, newUserId()))).status).toBe(201);
      // The joins' records have reached SQL (written behind).
      await ctx.writeBehind.drainConcertFully(c);
      const db = svc.database.db;
      // Another instance has moved the fleet to SQL mode (the mode row); this one has not noticed
      // yet. SQL mode admits now: a second admitter working from Redis's line would not follow its order.
      await db.updateTable('service_mode').set({ mode: 'sql', reason: 'another instance', updated_at: Date.now() }).where('id', '=', 1).execute();
      try {
        const now = Date.now() + 1000;
        const tickMs = ctx.config.admissionTickMs;
        const out = await ctx.backends.redis.queue.admitTick(c, now, Math.floor(now / tickMs) * tickMs);
        expect(out?.admitted).toBe(0);
        expect(out?.unrecorded).toMatchObject({ status: 503 });
        expect(await svc.redis.zrange(keys.active(c), '0', '-1')).toEqual([]);
        const rows = await db.selectFrom('queue_entries').select(['seq', 'status', 'admitted_at']).where('concert_id', '=', c).orderBy('seq').execute();
        expect(rows).toEqual([{ seq: 1, status: 'waiting', admitted_at: null }, { seq: 2, status: 'waiting', admitted_at: null }]);
      } finally {
        await enterMode(svc, 'redis');
      }
    });

    test('Redis admits only the entries SQL recorded; the first live one it may not admit keeps its place', async () => {
      const { app, ctx } = svc;
      const concert = await createConcert(app, [{ seats: 5, price: 1000 }]);
      await patchQueue(app, concert.id, { maxActive: 3 });
      const users: number[] = [];
      for (let i = 0; i < 4; i++) {
        const userId = newUserId();
        expect((await join(app, concert.id, await userToken(app, userId))).status).toBe(201);
        users.push(userId);
      }
      const c: number = concert.id;
      // The joins' records have reached SQL (written behind); the admissions below are not drained.
      await ctx.writeBehind.drainConcertFully(c);
      const now = Date.now() + 1000;
      const grace = ctx.config.queueGraceSeconds * 1000;
      const tickMs = ctx.config.admissionTickMs;
      const tickId = Math.floor(now / tickMs) * tickMs;
      await eventually(async () => (await ctx.liveConcerts(Date.now())).includes(c), 3000, 50);
      // The peek names the three the budget allows, in entry order, and changes nothing.
      const tick = { concertId: c, now, tickId, graceMs: grace, tickMs, maxScan: 5000 };
      const peek = await script.peekAdmissions.raw(svc.redis, tick);
      expect(peek.slice(2).map(Number)).toEqual([users[0]!, 1, users[1]!, 2, users[2]!, 3]);
      expect((await readLine(svc.redis, c)).map((p) => p.userId)).toEqual(users);
      // SQL recorded 1 and 3 only (say): 1 is admitted, 2 stops the tick and stays first in line.
      const r = await script.admitNext.raw(svc.redis, {
        ...tick, maxExpire: MAX_EXPIRE_PER_TICK, approved: [1, 3],
        eta: { windowMs: ETA_WINDOW_MS, gapTicks: ETA_GAP_TICKS, ageBuckets: ETA_AGE_BUCKETS },
      });
      expect(r.slice(0, 3)).toEqual([0, 1, 0]);
      expect((await readLine(svc.redis, c)).map((p) => [p.userId, p.seq])).toEqual(
        [[users[1]!, 2], [users[2]!, 3], [users[3]!, 4]]);
      expect(await svc.redis.zrange(keys.active(c), '0', '-1')).toEqual([String(users[0])]);
      // The next tick through the ticker records and admits 2 and 3 (the budget's two slots left).
      await ctx.ticker.tickOnce(now + tickMs);
      expect(await svc.redis.zrange(keys.active(c), '0', '-1')).toEqual(users.slice(0, 3).map(String));
      const rows = await svc.database.db.selectFrom('queue_entries').select(['seq', 'status']).where('concert_id', '=', c).orderBy('seq').execute();
      expect(rows.map((x) => [x.seq, x.status])).toEqual([[1, 'waiting'], [2, 'active'], [3, 'active'], [4, 'waiting']]);
    });
  });
}
