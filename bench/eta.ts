/**
 * How honest the wait estimate is: a simulated sale through the real service (bench/lib/eta-sim.ts),
 * each fan's first estimate (the join answer) against the time it actually waited until admitted.
 *
 *   npx bun bench/eta.ts --seed 7            one sale, replayable from its seed
 *   npx bun bench/eta.ts --seeds 1,2,3       several sales, one line each
 *   --mode redis|sql                         the service mode (default redis)
 *   --json                                   also print the per-seed figures as JSON
 *
 * Reports the median and p90 of |estimate − actual| / actual over the fans who reached active
 * after at least MIN_ACTUAL_SECONDS (shorter waits are left out: a 1 s error on a 2 s wait says
 * little), for this estimator and for the one before it (position / observed admission rate,
 * else admitPerSecond), computed at the same joins of the same sale.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_SCENARIO, errorStats, MIN_ACTUAL_SECONDS, simulateSale } from './lib/eta-sim.ts';

export async function main(argv: string[]) {
  const { values } = parseArgs({
    args: argv, strict: false,
    options: { seed: { type: 'string' }, seeds: { type: 'string' }, mode: { type: 'string' }, json: { type: 'boolean' } },
  });
  const seeds = values.seeds ? String(values.seeds).split(',').map(Number)
    : [values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000];
  const mode = (values.mode ?? 'redis') as 'redis' | 'sql';
  if (mode !== 'redis' && mode !== 'sql') throw new Error('--mode: redis or sql');
  for (const s of seeds) if (!Number.isInteger(s)) throw new Error(`--seed: whole numbers only (got ${s})`);
  const sc = DEFAULT_SCENARIO;
  console.log(`wait-estimate bench, ${mode} mode, seeds ${seeds.join(', ')} (replay one with --seed N)`);
  console.log(`scenario: rush ${sc.rushRate}/s for ${sc.rushSeconds} s then ${sc.steadyRate}/s for ${sc.steadySeconds} s; `
    + `maxActive ${sc.maxActive}, admitPerSecond ${sc.admitPerSecond}, activeTtl ${sc.activeTtlSeconds} s, grace ${sc.graceSeconds} s; `
    + `waiting: ${sc.waitLapse * 100} % stop polling, ${sc.waitLeave * 100} % leave; admitted: ${sc.activeLeave * 100} % leave, `
    + `${sc.activeLapse * 100} % idle until timed out, the rest pay after ${sc.payThink[0]}–${sc.payThink[1]} s`);
  console.log(`error = |first estimate − actual wait| / actual, fans admitted after ≥ ${MIN_ACTUAL_SECONDS} s\n`);
  console.log('| seed | fans | admitted (≥ 5 s) | longest wait s | before: median | before: p90 | after: median | after: p90 | after: median signed |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const rows = [];
  for (const seed of seeds) {
    const started = performance.now();
    const r = await simulateSale({ seed, mode, log: (m) => console.error(m) });
    const before = errorStats(r.fans, (f) => f.oldEstimate);
    const after = errorStats(r.fans, (f) => f.estimate);
    const longest = Math.max(...r.fans.filter((f) => f.admittedAt !== null).map((f) => (f.admittedAt! - f.joinedAt) / 1000));
    const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
    console.log(`| ${seed} | ${r.fans.length} | ${after.n} | ${longest.toFixed(0)} | ${pct(before.median)} | ${pct(before.p90)} | `
      + `${pct(after.median)} | ${pct(after.p90)} | ${after.medianSigned >= 0 ? '+' : ''}${pct(after.medianSigned)} |`);
    console.error(`  seed ${seed}: ${r.simulatedSeconds} simulated s, ${r.requests} requests, ${((performance.now() - started) / 1000).toFixed(1)} s`);
    rows.push({ seed, mode, fans: r.fans.length, measured: after.n, before, after });
  }
  if (values.json) console.log(JSON.stringify(rows, null, 2));
  return rows;
}

if (import.meta.main) await main(process.argv.slice(2));
