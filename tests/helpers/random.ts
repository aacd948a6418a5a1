import { mulberry32 } from '../../chaos/prng.ts';

export { mulberry32 };

/** The seed from `envName` when set, else a fresh one; printed either way with `label`. */
export function seeded(envName: string, label: string): { seed: number; random: () => number } {
  const fromEnv = process.env[envName];
  const seed = fromEnv ? Number(fromEnv) : Date.now() % 1_000_000;
  console.log(`${label}: seed ${seed} (replay with ${envName}=${seed})`);
  return { seed, random: mulberry32(seed) };
}

/** fast-check options with a printed seed (FC_SEED replays it); fast-check also prints it on failure. */
export function fcRun(label: string, numRuns: number): { seed: number; numRuns: number } {
  const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : Math.floor(Math.random() * 0x7fffffff);
  console.log(`${label}: fast-check seed ${seed} (replay with FC_SEED=${seed})`);
  return { seed, numRuns };
}
