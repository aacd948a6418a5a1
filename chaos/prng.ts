/**
 * One seed, many streams. Every random choice of a run (fan choices, fault kinds, the fault
 * schedule, timing jitter) is drawn from mulberry32 streams derived from the run's seed, one
 * stream per consumer (the nemesis, each fan), so that a consumer's choices do not depend on
 * how the others' requests interleave.
 *
 * What replays from a seed: the fault schedule and kinds exactly, and each fan's sequence of
 * decisions. What does not: concurrency timing (when answers arrive, which request wins a race,
 * what the service answers under load), so a fan whose answers differ takes other branches.
 */

export type Random = () => number;

/** mulberry32: a small, fast 32-bit PRNG with a good enough spread for workload choices. */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a over the seed and a label: independent-looking seeds for named streams. */
export function deriveSeed(seed: number, label: string): number {
  let h = 0x811c9dc5;
  const text = `${seed}:${label}`;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // FNV's multiply only carries upwards: finish with an avalanche so low bits mix too.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}

export function stream(seed: number, label: string): Random {
  return mulberry32(deriveSeed(seed, label));
}

/** Helpers over one stream. */
export class Rng {
  constructor(readonly next: Random) {}

  static of(seed: number, label: string): Rng {
    return new Rng(stream(seed, label));
  }

  /** Uniform in [min, max). */
  float(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Uniform whole number in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** ms × [0.75, 1.25): timing jitter. */
  jitter(ms: number): number {
    return Math.round(ms * (0.75 + this.next() * 0.5));
  }

  /** A short hex string (idempotency keys). */
  hex(length = 16): string {
    let s = '';
    while (s.length < length) s += Math.floor(this.next() * 0x100000000).toString(16).padStart(8, '0');
    return s.slice(0, length);
  }
}

/** A random seed for runs without --seed (printed, so the run can be replayed). */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}
