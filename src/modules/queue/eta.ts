/**
 * Wait estimates. Both stores keep the same four decayed sums, updated once per admission tick
 * (admitNext-6.lua in Redis mode, SqlQueueStore.admitTick in SQL mode), and hand them to the
 * estimate with the place, so that a poll costs no extra round trip:
 *
 *   releases      slots freed (paid, left, or timed out) since the last tick
 *   slotSeconds   active slots × seconds, the exposure those releases came from
 *   positions     entry numbers the line moved past (admitted, skipped as lapsed, or gaps left by leavers)
 *   admissions    fans actually admitted
 *
 * Each sum decays with e^(-Δt / ETA_WINDOW_MS): a minute or two of history, long enough that
 * a handful of payments per second does not make the estimate jump, short enough to follow a
 * change of the settings or of the fans' pace.
 */
export const ETA_WINDOW_MS = 60_000;

/** Ticks further apart than this (a restart, a reload, a stretch in the other mode) start the sums afresh. */
export const ETA_GAP_TICKS = 5;

export interface EtaSums {
  releases: number;
  slotSeconds: number;
  positions: number;
  admissions: number;
}

export const NO_ETA_SUMS: EtaSums = { releases: 0, slotSeconds: 0, positions: 0, admissions: 0 };

/**
 * One tick's step of the sums. `prevActive` is the active count the last tick left behind,
 * `activeNow` the count at this tick once timed-out slots are freed: the difference is what
 * payments, leaves and timeouts freed in between.
 */
export function stepEtaSums(s: EtaSums, t: {
  dtMs: number; tickMs: number; prevActive: number; activeNow: number; positions: number; admitted: number;
}): EtaSums {
  if (t.dtMs <= 0 || t.dtMs > ETA_GAP_TICKS * t.tickMs) {
    // No trustworthy interval: keep what we knew, learn nothing from this tick's counts.
    return s;
  }
  const w = Math.exp(-t.dtMs / ETA_WINDOW_MS);
  return {
    releases: s.releases * w + Math.max(0, t.prevActive - t.activeNow),
    slotSeconds: s.slotSeconds * w + t.prevActive * t.dtMs / 1000,
    positions: s.positions * w + t.positions,
    admissions: s.admissions * w + t.admitted,
  };
}

export interface EtaInputs extends EtaSums {
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
 *   lapsed are skipped for free. `spread` = positions passed per admission (≥ 1, observed), so
 *   n = ⌈position / spread⌉ admissions are needed, mine included.
 * - The first `free` = maxActive − active of them go at admitPerSecond: nothing else limits them.
 * - After that every admission needs a slot to free. A slot frees when its fan pays, leaves or
 *   runs out of activeTtlSeconds, so a full set turns over at maxActive × h per second, h being
 *   the releases per slot-second (observed: releases / slotSeconds). h is at least
 *   1 / activeTtlSeconds, because every fan's slot frees within that time: this is what the
 *   settings guarantee even before any fan has paid, so the estimate never assumes a faster
 *   turnover than has been seen or than the settings force, and never a rate above
 *   admitPerSecond.
 *
 *   wait = min(n, free) / admitPerSecond + max(0, n − free) / min(admitPerSecond, maxActive × h)
 *
 * An empty history (no admissions yet) counts every position (spread 1) and the slowest
 * turnover the settings allow: an honest upper bound that tightens as the sale runs.
 */
export function estimateWaitSeconds(i: EtaInputs): number {
  const spread = i.admissions >= 1 ? Math.max(1, i.positions / i.admissions) : 1;
  const needed = Math.max(1, Math.ceil(i.position / spread));
  const admitRate = Math.max(i.admitPerSecond, 1e-9);
  const free = Math.max(0, i.maxActive - i.activeCount);
  const hazard = Math.max(i.slotSeconds > 0 ? i.releases / i.slotSeconds : 0, 1 / Math.max(i.activeTtlSeconds, 1));
  const turnover = Math.min(admitRate, i.maxActive * hazard);
  const atOnce = Math.min(needed, free);
  const seconds = atOnce / admitRate + (needed - atOnce) / turnover;
  return Math.max(1, Math.ceil(seconds));
}
