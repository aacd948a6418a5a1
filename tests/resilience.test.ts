import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { call, createConcert, eventually, join, userToken } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';
import { SQL_TARGETS } from './helpers/sql.ts';

/**
 * Redis dies (SIGKILL) or hangs (SIGSTOP) under traffic: the service must move to SQL mode
 * within 2 s answering only 503s meanwhile, keep every place in line, then rebuild Redis
 * and return to redis mode.
 */
for (const target of SQL_TARGETS) {
  for (const failure of ['kill', 'freeze'] as const) {
    describe(`redis ${failure} under traffic (${target})`, () => {
      let svc: TestService;
      beforeAll(async () => {
        svc = await startService({
          sql: target,
          env: { REDIS_TIMEOUT_MS: '400', ADMISSION_TICK_MS: '100', DEFAULT_ADMIT_PER_SECOND: '50', DEFAULT_MAX_ACTIVE: '20' },
        });
        svc.ctx.startJobs();
      });
      afterAll(async () => {
        svc.redisProc.thaw();
        await svc.stop();
      });

      test('falls back to SQL, keeps every place, rebuilds and returns', async () => {
        const { app, ctx } = svc;
        const concert = await createConcert(app, [{ seats: 50, price: 1000 }]);
        const places = new Map<number, { token: string; seq: number }>();
        let nextUser = 1;
        const joinOne = async () => {
          const user = nextUser++;
          const t = await userToken(app, user).catch(() => null);
          if (!t) return;
          const r = await join(app, concert.id, t);
          if (r.status === 201) places.set(user, { token: r.body.token, seq: decodeSeq(r.body.token) });
        };
        for (let i = 0; i < 30; i++) await joinOne();
        await ctx.writeBehind.drainOnce();

        const statuses: { at: number; status: number; mode: string }[] = [];
        let stop = false;
        const traffic = (async () => {
          while (!stop) {
            const batch = [...places.values()].slice(-8).map(async (p) => {
              const r = await call(app, 'GET', '/v1/queue/me', { token: p.token });
              statuses.push({ at: Date.now(), status: r.status, mode: ctx.mode.current });
            });
            batch.push(joinOne());
            await Promise.all(batch);
            await Bun.sleep(20);
          }
        })();

        let detectedMs = 0, servedMs = 0, unavailable = 0, recoveredMs = 0;
        let during: typeof statuses = [];
        try {
        await Bun.sleep(300);
        const t0 = Date.now();
        if (failure === 'kill') await svc.redisProc.kill();
        else svc.redisProc.freeze();
        await eventually(() => ctx.mode.current === 'sql', 5000);
        detectedMs = Date.now() - t0;
        // Served from SQL: a poll answers 200 again.
        await eventually(() => statuses.some((s) => s.at > t0 && s.status === 200 && s.mode === 'sql'), 5000);
        servedMs = statuses.find((s) => s.at > t0 && s.status === 200 && s.mode === 'sql')!.at - t0;
        during = statuses.filter((s) => s.at > t0);
        unavailable = during.filter((s) => s.status === 503).length;
        await Bun.sleep(500); // traffic on SQL mode: joins take new entry numbers from SQL

        const t1 = Date.now();
        if (failure === 'kill') await svc.redisProc.restart();
        else svc.redisProc.thaw();
        await eventually(() => ctx.mode.current === 'redis', 10_000);
        recoveredMs = Date.now() - t1;
        await Bun.sleep(300);
        } finally {
          stop = true;
          await traffic;
        }

        console.log(JSON.stringify({ target, failure, detectedMs, servedMs, unavailable, recoveredMs,
          requests: statuses.length, fiveHundreds: statuses.filter((s) => s.status >= 500 && s.status !== 503).length }));
        expect(servedMs).toBeLessThan(2000);
        expect(statuses.filter((s) => s.status >= 500 && s.status !== 503)).toEqual([]);
        // Every answer during the outage was a success or a 503, never anything else.
        expect(during.filter((s) => s.status !== 200 && s.status !== 503)).toEqual([]);

        // Every user who got a place, before or during the outage, still has it, in entry order.
        const seqs = [...places.values()].map((p) => p.seq);
        expect(new Set(seqs).size).toBe(seqs.length);
        for (const [user, p] of places) {
          const r = await call(app, 'GET', '/v1/queue/me', { token: p.token });
          if (r.status !== 200) throw new Error(`user ${user} (entry ${p.seq}) lost the place: ${r.status} ${JSON.stringify(r.body)}`);
        }
        // FIFO: admissions keep entry order across the outage.
        await ctx.writeBehind.drainOnce();
        const admitted = await ctx.db.selectFrom('queue_entries').select(['seq', 'admitted_at'])
          .where('concert_id', '=', concert.id).where('admitted_at', 'is not', null).orderBy('admitted_at').orderBy('seq').execute();
        const order = admitted.map((a) => a.seq);
        expect(order).toEqual([...order].sort((a, b) => a - b));
      }, 60_000);
    });
  }
}

function decodeSeq(token: string): number {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).seq;
}
