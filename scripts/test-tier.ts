/**
 * Runs one test tier (tests/tiers.ts lists the files of each):
 *   bun scripts/test-tier.ts fast|integration|chaos [extra bun test arguments]
 *
 * fast         the tier's files on SQLite alone: TEST_DATABASE_URL is dropped and
 *              TEST_SQL_TARGETS=sqlite, so no PostgreSQL, Chromium or Docker is needed.
 * integration  the tier's files on both SQL targets, then the PostgreSQL half of the fast
 *              tier's SQL-parametrized files (TEST_SQL_TARGETS=postgres), so that fast,
 *              integration and chaos together run what `npm test` runs.
 * chaos        the tier's files on both SQL targets.
 *
 * Exits with bun's exit code (the first non-zero one when the integration tier runs twice).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isTier, TIERS, type Tier } from '../tests/tiers.ts';

const ROOT = join(import.meta.dir, '..');

interface Run { files: readonly string[]; env: Record<string, string | undefined> }

/**
 * Whether a file declares its suites per SQL target (describeEach or SQL_TARGETS), i.e. has a
 * PostgreSQL half; the other fast files use SQLite only (startService's default).
 */
function runsPerSqlTarget(file: string): boolean {
  const source = readFileSync(join(ROOT, 'tests', file), 'utf8');
  return source.includes('describeEach(') || source.includes('SQL_TARGETS');
}

function runsOf(tier: Tier): Run[] {
  const env = { ...process.env };
  switch (tier) {
    case 'fast': {
      const sqliteOnly: Record<string, string | undefined> = { ...env, TEST_SQL_TARGETS: 'sqlite' };
      delete sqliteOnly.TEST_DATABASE_URL;
      return [{ files: TIERS.fast, env: sqliteOnly }];
    }
    case 'integration':
      return [
        { files: TIERS.integration, env },
        { files: TIERS.fast.filter(runsPerSqlTarget), env: { ...env, TEST_SQL_TARGETS: 'postgres' } },
      ];
    case 'chaos':
      return [{ files: TIERS.chaos, env }];
  }
}

const [tier, ...extra] = process.argv.slice(2);
if (!tier || !isTier(tier)) {
  console.error(`usage: bun scripts/test-tier.ts ${Object.keys(TIERS).join('|')} [bun test arguments]`);
  process.exit(2);
}

let exitCode = 0;
for (const run of runsOf(tier)) {
  const label = run.env.TEST_SQL_TARGETS ? ` (TEST_SQL_TARGETS=${run.env.TEST_SQL_TARGETS})` : '';
  console.error(`--- ${tier} tier: ${run.files.length} files${label}`);
  const proc = Bun.spawn([process.execPath, 'test', '--timeout', '60000', ...run.files.map((f) => `./tests/${f}`), ...extra], {
    cwd: ROOT,
    env: run.env,
    stdio: ['inherit', 'inherit', 'inherit'],
  });
  const code = await proc.exited;
  if (exitCode === 0) exitCode = code;
}
process.exit(exitCode);
