/**
 * The wait estimate against a simulated sale through the real service (bench/lib/eta-sim.ts, the
 * sale `npx bun bench/eta.ts` runs; about 8 s): the median relative error of the first estimate, over
 * fans admitted after at least MIN_ACTUAL_SECONDS, stays under 25 %. Fixed seed (printed;
 * ETA_SEED replays another), so the outcome is the same on every run.
 */
import { expect, test } from 'bun:test';
import { errorStats, MIN_ACTUAL_SECONDS, simulateSale } from '../bench/lib/eta-sim.ts';

test('a simulated sale: the first estimate is within 25 % of the actual wait for the median fan', async () => {
  const seed = Number(process.env.ETA_SEED ?? 11);
  console.log(`eta simulation: seed ${seed} (replay with ETA_SEED=${seed} or npx bun bench/eta.ts)`);
  const sale = await simulateSale({ seed });
  const after = errorStats(sale.fans, (f) => f.estimate);
  const before = errorStats(sale.fans, (f) => f.oldEstimate);
  console.log(`  ${sale.fans.length} fans, ${after.n} admitted after ≥ ${MIN_ACTUAL_SECONDS} s; median error ${(after.median * 100).toFixed(1)} % `
    + `(p90 ${(after.p90 * 100).toFixed(1)} %), the estimator before: ${(before.median * 100).toFixed(1)} %`);
  expect(after.n).toBeGreaterThan(100);
  expect(after.median).toBeLessThan(0.25);
}, 120_000);
