/**
 * Two instances of the service on one Redis and one SQL database, both running their
 * admission tickers (100 ms ticks) at the same time. However their ticks interleave: never
 * more than maxActive active, admission strictly in entry order, and no tick window admits
 * more than its budget. In Redis mode (both engines) and in SQL mode (both engines).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { keys } from '../src/redis/keys.ts';
import { enterMode, MODES, newUserId, patchQueue, queueStats } from './helpers/harness.ts';
import { call, createConcert, eventually, join, userToken } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';
import { SQL_TARGETS } from './helpers/sql.ts';

const TICK_MS = 100;
const USERS = 24;
const MAX_ACTIVE = 8;
const ADMIT_PER_SECOND = 30; // 3 a tick
const LEAVING = 6;

for (const target of SQL_TARGETS) {
  describe(`admission by two instances [${target}]`, () => {
    let svc: TestService;
    let second: ReturnType<TestService['spawnInstance']>;
    beforeAll(async () => {
      svc = await startService({ sql: target, env: { ADMISSION_TICK_MS: String(TICK_MS) } });
      second = svc.spawnInstance();
    });
    afterAll(async () => {
      second?.close();
      await svc?.stop();
    });

    for (const mode of MODES) describe(`${mode} mode`, () => {
      let concertId: number;
      const modeChanges: string[] = [];
      const noteChange = ({ to, reason }: { to: string; reason: string }) => modeChanges.push(`${to}: ${reason}`);
      const contexts = () => [svc.ctx, second.ctx];
      beforeAll(async () => {
        // The tickers start once both instances list the concert: the one that did not create it
        // reuses its list of live concerts (from the last mode's run) for up to a second.
        concertId = (await createConcert(svc.app)).id;
        await patchQueue(svc.app, concertId, { maxActive: MAX_ACTIVE, admitPerSecond: ADMIT_PER_SECOND });
        await eventually(async () => (await Promise.all(contexts().map((ctx) => ctx.liveConcerts(Date.now()))))
          .every((ids) => ids.includes(concertId)), 5000, 20);
        for (const ctx of contexts()) {
          await enterMode({ ...svc, ctx }, mode);
          ctx.mode.on('change', noteChange);
          // In SQL mode the mode coordinator is left out: with Redis healthy it would take the
          // instances straight back to Redis mode.
          if (mode === 'redis') ctx.startJobs();
          else {
            ctx.ticker.start();
            ctx.writeBehind.start();
          }
        }
      });
      afterAll(() => {
        for (const ctx of contexts()) {
          ctx.stopJobs();
          ctx.mode.off('change', noteChange);
        }
      });

      const now = () => Date.now();
      async function activeSeqs(concertId: number, seqOfUser: Map<number, number>): Promise<number[]> {
        if (mode === 'redis') {
          const users = await svc.redis.zrangebyscore(keys.active(concertId), `(${now()}`, '+inf');
          return users.map((u) => seqOfUser.get(Number(u))!).sort((a, b) => a - b);
        }
        const rows = await svc.database.db.selectFrom('queue_entries').select('seq').where('concert_id', '=', concertId)
          .where('status', '=', 'active').where('active_until', '>', now()).orderBy('seq').execute();
        return rows.map((r) => r.seq);
      }
      async function lastTick(concertId: number): Promise<number> {
        if (mode === 'redis') return Number(await svc.redis.hget(keys.queueMeta(concertId), 'lastTick'));
        const row = await svc.database.db.selectFrom('queue_state').select('last_tick').where('concert_id', '=', concertId).executeTakeFirstOrThrow();
        return row.last_tick;
      }
      /** Lets a few more ticks pass: whatever they would wrongly admit would show after them. */
      async function ticksPass(concertId: number, n = 3) {
        const from = await lastTick(concertId);
        await eventually(async () => (await lastTick(concertId)) >= from + n, 5000, 20);
      }

      test('never above maxActive, never out of order, never over a tick\'s budget', async () => {
        const apps = [svc.app, second.app];
        const concert = { id: concertId };
        const userIds = Array.from({ length: USERS }, () => newUserId());
        const tokens = await Promise.all(userIds.map((u, i) => userToken(apps[i % 2]!, u)));
        const joined = await Promise.all(tokens.map((t, i) => join(apps[i % 2]!, concert.id, t)));
        expect(joined.every((r) => r.status === 201)).toBe(true);
        const seqOfUser = new Map<number, number>();
        const tokenOfSeq = new Map<number, string>();
        for (const [i, r] of joined.entries()) {
          const seq = (await svc.ctx.tokens.decode(r.body.token, now()))!.seq!;
          seqOfUser.set(userIds[i]!, seq);
          tokenOfSeq.set(seq, r.body.token);
        }

        // A watcher samples the active set all along.
        let watching = true;
        let mostActive = 0;
        const watcher = (async () => {
          while (watching) {
            mostActive = Math.max(mostActive, (await activeSeqs(concert.id, seqOfUser)).length);
            await Bun.sleep(5);
          }
        })();

        try {
          let admitted = 0;
          let stillActive = 0;
          while (admitted < USERS) {
            // Wait until the slots are full (or everyone is in), then let more ticks go by.
            const target = Math.min(MAX_ACTIVE, stillActive + USERS - admitted);
            await eventually(async () => (await activeSeqs(concert.id, seqOfUser)).length >= target, 10_000, 20);
            await ticksPass(concert.id, 2);
            const active = await activeSeqs(concert.id, seqOfUser);
            expect(active.length).toBe(target);
            const stats = await queueStats(apps[admitted % 2]!, concert.id);
            admitted = stats.admittedTotal;
            // Admitted so far are exactly the first entries, in order.
            expect(stats.lastAdmittedEntry).toBe(admitted);
            expect(active.at(-1)).toBe(admitted);
            expect(stats.waiting).toBe(USERS - admitted);
            // The earliest admitted leave, through either instance.
            const leaving = active.slice(0, LEAVING);
            stillActive = active.length - leaving.length;
            const left = await Promise.all(leaving.map((s, i) => call(apps[i % 2]!, 'DELETE', '/v1/queue/me', { token: tokenOfSeq.get(s) })));
            expect(left.map((r) => r.status)).toEqual(leaving.map(() => 204));
            if (admitted === USERS) break;
          }
        } finally {
          watching = false;
          await watcher;
        }
        // Both instances stayed in the mode under test (a slow machine could trip the breaker).
        expect(modeChanges).toEqual([]);
        expect(mostActive).toBeLessThanOrEqual(MAX_ACTIVE);
        expect(mostActive).toBe(MAX_ACTIVE);

        // Each admission was made once, by one instance or the other.
        const counted = async (ctx: TestService['ctx']) => (await ctx.metrics.admissions.get()).values
          .filter((v) => v.labels.concert === String(concertId)).reduce((a, v) => a + v.value, 0);
        expect((await counted(svc.ctx)) + (await counted(second.ctx))).toBe(USERS);

        // SQL has every admission time (through the write-behind stream in Redis mode).
        const rows = await eventually(async () => {
          const r = await svc.database.db.selectFrom('queue_entries').select(['seq', 'admitted_at'])
            .where('concert_id', '=', concert.id).orderBy('seq').execute();
          return r.length === USERS && r.every((e) => e.admitted_at !== null) && r;
        }, 5000, 50);
        const ticks = rows.map((r) => Math.floor(r.admitted_at! / TICK_MS));
        for (let i = 1; i < ticks.length; i++) expect(ticks[i]!).toBeGreaterThanOrEqual(ticks[i - 1]!);
        const perTick = new Map<number, number>();
        for (const t of ticks) perTick.set(t, (perTick.get(t) ?? 0) + 1);
        const budget = ADMIT_PER_SECOND * TICK_MS / 1000;
        expect(Math.max(...perTick.values())).toBe(budget);
        // Over any run of consecutive tick windows, no more than their budget.
        const first = Math.min(...ticks);
        const last = Math.max(...ticks);
        for (let from = first; from <= last; from++) {
          let sum = 0;
          for (let t = from; t <= last; t++) {
            sum += perTick.get(t) ?? 0;
            expect(sum).toBeLessThanOrEqual((t - from + 1) * budget);
          }
        }
      }, 30_000);
    });
  });
}
