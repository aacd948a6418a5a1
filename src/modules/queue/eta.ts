/**
 * Wait estimates. Once per admission tick each store steps the same small state (admitNext-5.lua
 * in Redis mode, SqlQueueStore.admitTick in SQL mode, both after stepEtaState below) and keeps
 * two numbers the estimate needs, handed over with the place so that a poll costs no extra
 * round trip:
 *
 *   meanHoldSeconds  how long a fan keeps an active slot (pays, leaves, or runs out of time)
 *   spread           entry numbers the line passes per admission (≥ 1: gaps left by leavers,
 *                    lapsed fans skipped for free)
 *
 * The mean hold is measured by age: active slots are put in ETA_AGE_BUCKETS buckets of
 * activeTtl / ETA_AGE_BUCKETS by how long they have been held, and each bucket keeps its releases
 * and its slot-seconds. A single releases / slot-seconds ratio would be biased whenever the
 * active set is young (at the start of a sale, everyone was just admitted and nobody pays in the
 * first seconds), making the estimate far too long for the first minutes. Per-age hazards give the
 * survival curve S(age) as far as ages have been seen (Kaplan–Meier, piecewise exponential); ages
 * not seen yet are assumed to hold until activeTtl, the longest the settings allow. So the mean
 * hold never exceeds activeTtl and never assumes fans faster than seen.
 *
 * Sums decay with e^(−Δt / ETA_WINDOW_MS): a minute of history, enough that a few payments a
 * second do not make the estimate jump, short enough to follow a change of pace or settings.
 */
export const ETA_WINDOW_MS = 60_000;

/** Ticks further apart than this (a restart, a reload, a stretch in the other mode) teach nothing. */
export const ETA_GAP_TICKS = 5;

export const ETA_AGE_BUCKETS = 6;

export interface EtaState {
  /** Time (ms) of the tick that left `prev`. */
  at: number;
  /** Active slots per age bucket as that tick left them. */
  prev: number[];
  /** Decayed releases and slot-seconds per age bucket. */
  rel: number[];
  exp: number[];
  /** Decayed entry numbers passed and admissions. */
  pos: number;
  adm: number;
}

/**
 * Age bucket b of slots anchored at `at`: activeUntil in (lo, hi], i.e. held between b and b + 1
 * bucket widths at that time (activeUntil = admitted + activeTtl).
 */
export function ageBucket(at: number, ttlMs: number, b: number): [number, number] {
  const width = ttlMs / ETA_AGE_BUCKETS;
  return [at + ttlMs - (b + 1) * width, at + ttlMs - b * width];
}

/** Mean hold in seconds from per-age releases and slot-seconds; ages never seen hold to activeTtl. */
export function meanHoldSeconds(rel: number[], exp: number[], ttlSeconds: number): number {
  const width = ttlSeconds / ETA_AGE_BUCKETS;
  let hold = 0;
  let surviving = 1;
  for (let b = 0; b < ETA_AGE_BUCKETS; b++) {
    const hazard = exp[b]! > 0 ? rel[b]! / exp[b]! : 0;
    if (hazard > 0) {
      const stay = Math.exp(-hazard * width);
      hold += surviving * (1 - stay) / hazard;
      surviving *= stay;
    } else {
      hold += surviving * width;
    }
  }
  return hold;
}

/**
 * One tick. `activeUntil` lists the active slots once timed-out ones are freed and before this
 * tick admits anyone (SQL mode reads them; the Lua script counts the same ranges with ZCOUNT).
 */
export function stepEtaState(state: EtaState | null, t: {
  now: number; tickMs: number; ttlMs: number; activeUntil: number[]; admitted: number; positions: number;
}): { state: EtaState; meanHoldSeconds: number; spread: number } {
  const count = (at: number, b: number) => {
    const [lo, hi] = ageBucket(at, t.ttlMs, b);
    let n = 0;
    for (const u of t.activeUntil) if (u > lo && u <= hi) n++;
    return n;
  };
  const zeros = () => new Array<number>(ETA_AGE_BUCKETS).fill(0);
  const next: EtaState = state
    ? { at: state.at, prev: state.prev, rel: [...state.rel], exp: [...state.exp], pos: state.pos, adm: state.adm }
    : { at: t.now, prev: zeros(), rel: zeros(), exp: zeros(), pos: 0, adm: 0 };
  const dt = t.now - next.at;
  if (state && dt > 0 && dt <= ETA_GAP_TICKS * t.tickMs) {
    const w = Math.exp(-dt / ETA_WINDOW_MS);
    for (let b = 0; b < ETA_AGE_BUCKETS; b++) {
      const released = Math.max(0, next.prev[b]! - count(next.at, b));
      next.rel[b] = next.rel[b]! * w + released;
      next.exp[b] = next.exp[b]! * w + next.prev[b]! * dt / 1000;
    }
    next.pos = next.pos * w + t.positions;
    next.adm = next.adm * w + t.admitted;
  }
  next.at = t.now;
  next.prev = Array.from({ length: ETA_AGE_BUCKETS }, (_, b) => count(t.now, b));
  next.prev[0] = next.prev[0]! + t.admitted; // admitted now: activeUntil = now + activeTtl, age 0
  return {
    state: next,
    meanHoldSeconds: meanHoldSeconds(next.rel, next.exp, t.ttlMs / 1000),
    spread: next.adm >= 1 ? Math.max(1, next.pos / next.adm) : 1,
  };
}

export interface EtaInputs {
  /** From the last tick (see above); null before the first. */
  meanHoldSeconds: number | null;
  spread: number;
  /** Entry numbers between the last admitted one and mine, mine included. */
  position: number;
  admitPerSecond: number;
  maxActive: number;
  activeCount: number;
  activeTtlSeconds: number;
}

/**
 * Seconds until this fan is admitted.
 *
 * The line admits in entry order, so the wait is the time for the fans still ahead to be
 * admitted, and nothing behind matters:
 *
 * - Not every position ahead costs an admission: fans who left are gaps and fans whose heartbeat
 *   lapsed are skipped for free. spread = positions passed per admission (≥ 1, observed), so
 *   n = ⌈position / spread⌉ admissions are needed, mine included.
 * - The first free = maxActive − active of them go at admitPerSecond: nothing else limits them.
 * - After that every admission waits for a slot to free. A full set of maxActive slots, each
 *   held meanHold seconds on average, frees maxActive / meanHold slots a second (Little's law).
 *   meanHold ≤ activeTtlSeconds (every slot frees by then), so before anyone has paid the
 *   estimate is the turnover the settings guarantee, and it never assumes fans faster than seen
 *   nor a rate above admitPerSecond.
 *
 *   wait = min(n, free) / admitPerSecond + max(0, n − free) / min(admitPerSecond, maxActive / meanHold)
 */
export function estimateWaitSeconds(i: EtaInputs): number {
  const needed = Math.max(1, Math.ceil(i.position / Math.max(1, i.spread)));
  const admitRate = Math.max(i.admitPerSecond, 1e-9);
  const free = Math.max(0, i.maxActive - i.activeCount);
  const ttl = Math.max(i.activeTtlSeconds, 1);
  const hold = Math.min(ttl, Math.max(i.meanHoldSeconds ?? ttl, 1e-3));
  const turnover = Math.min(admitRate, i.maxActive / hold);
  const atOnce = Math.min(needed, free);
  const seconds = atOnce / admitRate + (needed - atOnce) / turnover;
  return Math.max(1, Math.ceil(seconds));
}
