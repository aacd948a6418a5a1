/**
 * npm run drill -- --scenario kill|freeze|switch [--duration 30] [--users 200] [--json]
 *                  [--sentinels 127.0.0.1:26379,...] [--master-name mymaster]
 *                  [--database-url postgres://...] [--freeze-ms 8000] [--fault-after 8] [--out file.json]
 *
 * Starts its own 1+2+3 Sentinel topology (or uses the running one given by --sentinels), runs
 * the service in process against it, drives traffic, breaks the master and reports. The table
 * goes to stdout (JSON with --json); the JSON is also written to drill/results/. Exit code 1
 * when a payment was lost or a seat sold twice, 2 on bad arguments.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runDrill, SCENARIOS, type Scenario } from './drill.ts';
import { formatReport } from './report.ts';
import { parseHostPorts } from './target.ts';

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

const USAGE = 'usage: npm run drill -- --scenario kill|freeze|switch [--duration S] [--users N] [--json] ' +
  '[--sentinels host:port,...] [--master-name NAME] [--database-url URL] [--freeze-ms MS] [--fault-after S] [--out FILE]';

function parseArgs(argv: string[]): Record<string, string | true> {
  const args: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"`);
    const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (inline !== undefined) args[name] = inline;
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) args[name] = argv[++i]!;
    else args[name] = true;
  }
  return args;
}

function num(args: Record<string, string | true>, name: string, fallback: number, min: number, max: number): number {
  const raw = args[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw === true || !Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number from ${min} to ${max}`);
  return n;
}

async function main(): Promise<number> {
  let args: Record<string, string | true>;
  let scenario: Scenario;
  try {
    args = parseArgs(process.argv.slice(2));
    if (args.help) { console.log(USAGE); return 0; }
    const known = ['scenario', 'duration', 'users', 'json', 'sentinels', 'master-name', 'database-url', 'freeze-ms', 'fault-after', 'out'];
    for (const k of Object.keys(args)) if (!known.includes(k)) throw new Error(`unknown option --${k}`);
    scenario = args.scenario as Scenario;
    if (!SCENARIOS.includes(scenario)) throw new Error('--scenario must be kill, freeze or switch');
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  let options;
  try {
    const freezeMs = num(args, 'freeze-ms', 8000, 1000, 60_000);
    const minimum = scenario === 'freeze' ? Math.ceil(freezeMs / 1000) + 6 : 8;
    options = {
      scenario,
      durationSec: num(args, 'duration', Math.max(30, minimum), minimum, 3600),
      users: num(args, 'users', 200, 1, 20_000),
      freezeMs,
      faultAfterSec: args['fault-after'] === undefined ? undefined : num(args, 'fault-after', 5, 1, 600),
      sentinels: typeof args.sentinels === 'string' ? parseHostPorts(args.sentinels) : undefined,
      masterName: typeof args['master-name'] === 'string' ? args['master-name'] : undefined,
      databaseUrl: typeof args['database-url'] === 'string' ? args['database-url'] : process.env.DATABASE_URL || undefined,
      log: (line: string) => process.stderr.write(`[drill ${new Date().toISOString().slice(11, 23)}] ${line}\n`),
    };
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }

  const report = await runDrill(options);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const file = typeof args.out === 'string' ? args.out : join(RESULTS_DIR, `${scenario}-${report.startedAt.replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, json);
  if (args.json) process.stdout.write(json);
  else console.log(`${formatReport(report)}\n\nJSON: ${file}`);
  return report.verdict.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`drill failed: ${err instanceof Error ? err.stack ?? err.message : err}`);
    process.exit(1);
  },
);
