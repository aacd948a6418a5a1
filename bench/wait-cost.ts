/**
 * What waiting for a replica costs: the same join and admission load on a Sentinel topology
 * (1 master, 2 replicas, 3 sentinels on 127.0.0.1) with REDIS_WAIT_REPLICAS=0 and =1, in
 * alternating rounds, through the service's own app (no HTTP server, so the difference is the
 * service's work plus the WAIT round trip). SQL is SQLite in a temp file.
 *
 *   bun bench/wait-cost.ts [--joins 2000] [--rounds 3] [--concurrency 64]
 */
import { parseArgs } from 'node:util';
import { startSentinelTopology } from '../sentinel/topology.ts';
import { createTestDatabase } from '../tests/helpers/sql.ts';
import { startService } from '../tests/helpers/service.ts';
import { call, createConcert, join, userToken } from '../tests/helpers/http.ts';
import { inPool } from '../tests/helpers/sales.ts';

const { values } = parseArgs({ options: { joins: { type: 'string' }, rounds: { type: 'string' }, concurrency: { type: 'string' } } });
const JOINS = Number(values.joins ?? 2000);
const ROUNDS = Number(values.rounds ?? 3);
const CONCURRENCY = Number(values.concurrency ?? 64);

const topo = await startSentinelTopology();
const results: { replicas: number; joinsPerSec: number; p50: number; p99: number }[] = [];
let nextUser = 1;
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const replicas of [0, 1]) {
      const database = await createTestDatabase('sqlite');
      const svc = await startService({
        database, redisProc: topo.nodes[0]!,
        env: {
          REDIS_SENTINELS: topo.sentinels.map((s) => `${s.host}:${s.port}`).join(','), REDIS_MASTER_NAME: topo.masterName,
          REDIS_WAIT_REPLICAS: String(replicas), LOG_LEVEL: 'error',
        },
      });
      try {
        const c = await createConcert(svc.app);
        const users = Array.from({ length: JOINS }, () => nextUser++);
        const tokens = await inPool(users, CONCURRENCY, (u) => userToken(svc.app, u));
        const ms: number[] = [];
        const started = performance.now();
        await inPool(tokens, CONCURRENCY, async (t) => {
          const t0 = performance.now();
          const r = await join(svc.app, c.id, t);
          if (r.status !== 201) throw new Error(`join ${r.status} ${JSON.stringify(r.body)}`);
          ms.push(performance.now() - t0);
        });
        const elapsed = (performance.now() - started) / 1000;
        ms.sort((a, b) => a - b);
        results.push({ replicas, joinsPerSec: Math.round(JOINS / elapsed), p50: ms[Math.floor(ms.length / 2)]!, p99: ms[Math.floor(ms.length * 0.99)]! });
        await call(svc.app, 'GET', '/healthz');
      } finally {
        await svc.stop();
        await database.drop();
      }
    }
  }
} finally {
  await topo.stopAll();
}
for (const replicas of [0, 1]) {
  const rs = results.filter((r) => r.replicas === replicas);
  const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`REDIS_WAIT_REPLICAS=${replicas}: joins/s ${rs.map((r) => r.joinsPerSec).join(', ')} (median ${med(rs.map((r) => r.joinsPerSec))}); ` +
    `p50 ${med(rs.map((r) => r.p50)).toFixed(2)} ms; p99 ${med(rs.map((r) => r.p99)).toFixed(2)} ms`);
}
