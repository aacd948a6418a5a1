/**
 * A short end-to-end chaos pass for CI: two seeds (printed; CHAOS_SEEDS=1,2 overrides), about
 * 35 s each with every fault kind in the rotation, against a real Sentinel topology, a private
 * PostgreSQL and two service processes. Asserts no violation of the promises and a sensible
 * amount of traffic. Skipped (with the reason printed) only when PostgreSQL's initdb is missing.
 */
import { describe, expect, test } from 'bun:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pgAvailable, runChaos } from '../chaos/chaos.ts';
import { randomSeed } from '../chaos/prng.ts';
import { formatSummary } from '../chaos/report.ts';

const seeds = process.env.CHAOS_SEEDS
  ? process.env.CHAOS_SEEDS.split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n >= 0)
  : [randomSeed(), randomSeed()];
const available = pgAvailable();
if (!available) console.log('tests/chaos.test.ts skipped: initdb not found (PostgreSQL 15 server binaries are needed; set PG_BIN_DIR)');
else console.log(`tests/chaos.test.ts seeds: ${seeds.join(',')} (replay with CHAOS_SEEDS=${seeds.join(',')})`);

describe.skipIf(!available)('chaos: promises hold under faults', () => {
  for (const seed of seeds) {
    test(`seed ${seed}`, async () => {
      const report = await runChaos({
        seed, minutes: 0.6, fans: 50, outDir: join(tmpdir(), 'chaos-test-results'), log: (line) => console.log(`chaos[${seed}]: ${line}`),
      });
      if (!report.ok) console.log(formatSummary(report, 5));
      expect(report.faults.list.length).toBeGreaterThanOrEqual(2);
      expect(report.ops.total).toBeGreaterThan(1_000);
      expect(report.stats.payments).toBeGreaterThan(20);
      expect(report.violationCounts).toEqual(Object.fromEntries(Object.keys(report.violationCounts).map((k) => [k, 0])) as typeof report.violationCounts);
    }, 180_000);
  }
});
