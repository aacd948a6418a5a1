/**
 * What the proof-of-work check costs the service per join: the same joins with JOIN_POW_BITS=0
 * and with it on, in alternating rounds, through the service's own app (no HTTP server, so the
 * difference is the service's work: one SHA-256, the Redis SET NX GET and the SQL record in
 * Redis mode, the SQL record in SQL mode). The challenges are fetched and solved before the
 * clock starts (1 bit: the client's side costs nothing here; the server's check does not
 * depend on the bits). Standalone Redis, SQLite in a temp file.
 *
 *   bun bench/pow-join.ts [--joins 1500] [--rounds 3] [--concurrency 32] [--mode redis|sql]
 */
import { parseArgs } from 'node:util';
import { enterMode } from '../tests/helpers/harness.ts';
import { createConcert, userToken } from '../tests/helpers/http.ts';
import { joinWith, solvedChallenge } from '../tests/helpers/pow.ts';
import { inPool } from '../tests/helpers/sales.ts';
import { startService } from '../tests/helpers/service.ts';

const { values } = parseArgs({
  options: { joins: { type: 'string' }, rounds: { type: 'string' }, concurrency: { type: 'string' }, mode: { type: 'string' } },
});
const JOINS = Number(values.joins ?? 1500);
const ROUNDS = Number(values.rounds ?? 3);
const CONCURRENCY = Number(values.concurrency ?? 32);
const MODE = (values.mode ?? 'redis') as 'redis' | 'sql';
if (MODE !== 'redis' && MODE !== 'sql') throw new Error('--mode: redis or sql');

const results: { bits: number; joinsPerSec: number; p50: number; p99: number }[] = [];
let nextUser = 1;
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (let round = 0; round < ROUNDS; round++) {
  for (const bits of [0, 1]) {
    const svc = await startService({ env: { JOIN_POW_BITS: String(bits), LOG_LEVEL: 'error' } });
    try {
      await enterMode(svc, MODE);
      const c = await createConcert(svc.app);
      const users = Array.from({ length: JOINS }, () => nextUser++);
      const prepared = await inPool(users, CONCURRENCY, async (u) => ({
        token: await userToken(svc.app, u), body: bits > 0 ? { pow: await solvedChallenge(svc.app) } : undefined,
      }));
      const ms: number[] = [];
      const started = performance.now();
      await inPool(prepared, CONCURRENCY, async (p) => {
        const t0 = performance.now();
        const r = await joinWith(svc.app, c.id, p.token, p.body);
        if (r.status !== 201) throw new Error(`join ${r.status} ${JSON.stringify(r.body)}`);
        ms.push(performance.now() - t0);
      });
      const elapsed = (performance.now() - started) / 1000;
      ms.sort((a, b) => a - b);
      results.push({ bits, joinsPerSec: Math.round(JOINS / elapsed), p50: ms[Math.floor(ms.length / 2)]!, p99: ms[Math.floor(ms.length * 0.99)]! });
      console.error(`round ${round + 1}, JOIN_POW_BITS=${bits}: ${results.at(-1)!.joinsPerSec} joins/s`);
    } finally {
      await svc.stop();
    }
  }
}
console.log(`${MODE} mode, ${JOINS} joins × ${ROUNDS} rounds, concurrency ${CONCURRENCY}`);
for (const bits of [0, 1]) {
  const rs = results.filter((r) => r.bits === bits);
  console.log(`JOIN_POW_BITS=${bits}: joins/s ${rs.map((r) => r.joinsPerSec).join(', ')} (median ${med(rs.map((r) => r.joinsPerSec))}); `
    + `p50 ${med(rs.map((r) => r.p50)).toFixed(2)} ms; p99 ${med(rs.map((r) => r.p99)).toFixed(2)} ms`);
}
