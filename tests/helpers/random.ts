import { mulberry32 } from '../../chaos/prng.ts';

export { mulberry32 };

/** The seed from `envName` when set, else a fresh one; printed either way with `label`. */
export function seeded(envName: string, label: string): { seed: number; random: () => number } {
  const fromEnv = process.env[envName];
  const seed = fromEnv ? Number(fromEnv) : Date.now() % 1_000_000;
  console.log(`${label}: seed ${seed} (replay with ${envName}=${seed})`);
  return { seed, random: mulberry32(seed) };
}
