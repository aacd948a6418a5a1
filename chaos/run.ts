/**
 * npm run chaos -- [--seed N] [--minutes M] [--faults kill,freeze,...] [--fans N] [--min-replicas-to-write N] [--out DIR]
 *
 * Exit code: 0 no violation, 1 a violation, 2 the setup failed (or bad arguments).
 */
import { FAULT_KINDS, type FaultKind } from './history.ts';
import { runChaos, SetupError, type ChaosOptions } from './chaos.ts';
import { randomSeed } from './prng.ts';
import { formatSummary } from './report.ts';

const USAGE = `usage: npm run chaos -- [--seed N] [--minutes M] [--faults ${FAULT_KINDS.join(',')}] [--fans N] [--min-replicas-to-write N] [--out DIR]`;

export function parseArgs(argv: string[]): ChaosOptions & { seed: number } {
  const opts: ChaosOptions & { seed: number } = { seed: randomSeed() };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--seed': {
        const v = value();
        if (!/^\d+$/.test(v)) throw new Error(`--seed must be a whole number, got "${v}"`);
        opts.seed = Number(v);
        break;
      }
      case '--minutes': {
        const v = Number(value());
        if (!(v > 0 && v <= 120)) throw new Error('--minutes must be a number in (0, 120]');
        opts.minutes = v;
        break;
      }
      case '--faults': {
        const list = value().split(',').map((s) => s.trim()).filter(Boolean);
        const bad = list.filter((k) => !FAULT_KINDS.includes(k as FaultKind));
        if (bad.length) throw new Error(`unknown fault kind ${bad.join(', ')}; known: ${FAULT_KINDS.join(', ')}`);
        opts.faults = list as FaultKind[];
        break;
      }
      case '--fans': {
        const v = Number(value());
        if (!Number.isInteger(v) || v < 1 || v > 5000) throw new Error('--fans must be a whole number from 1 to 5000');
        opts.fans = v;
        break;
      }
      case '--min-replicas-to-write': {
        const v = Number(value());
        if (!Number.isInteger(v) || v < 0 || v > 2) throw new Error('--min-replicas-to-write must be 0, 1 or 2');
        opts.minReplicasToWrite = v;
        break;
      }
      case '--out':
        opts.outDir = value();
        break;
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
      default:
        throw new Error(`unknown argument ${flag}`);
    }
  }
  return opts;
}

if (import.meta.main) {
  let opts: ReturnType<typeof parseArgs>;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  process.stdout.write(`chaos seed ${opts.seed}\n`);
  try {
    const report = await runChaos(opts);
    process.stdout.write(`${formatSummary(report)}\n`);
    process.exit(report.ok ? 0 : 1);
  } catch (err) {
    process.stderr.write(`${err instanceof SetupError ? '' : 'chaos run failed: '}${(err as Error).stack ?? err}\n(seed ${opts.seed})\n`);
    process.exit(2);
  }
}
