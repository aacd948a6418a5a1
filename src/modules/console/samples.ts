import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import type { Mode } from '../../resilience/mode.ts';
import type { Db } from '../../store/connect.ts';

/** How far back the console looks: samples older than this are trimmed (Redis) or purged (SQL). */
export const SAMPLE_WINDOW_MS = 3_600_000;

export interface ModeChange { at: number; from: Mode; to: Mode }

/** One concert's waiting room as one instance of the fleet saw it at one sampling slot. */
export interface Sample {
  concertId: number;
  /** floor(at / interval): at most one sample per concert per slot. */
  slot: number;
  at: number;
  waiting: number;
  active: number;
  /** Admissions since the concert opened: admits per second is the slope between two samples. */
  admittedTotal: number;
  /** Age of the oldest write-behind entry not yet in SQL; null outside Redis mode. */
  lagSeconds: number | null;
  mode: Mode;
  /** What the sampling instance saw change during the slot before this one. */
  modeChanges: ModeChange[];
}

/**
 * Where the samples of one mode go. Redis mode keeps them in Redis (no SQL write on the hot
 * store's schedule), SQL mode in SQL; the console reads both and merges them by slot.
 */
export interface SampleStore {
  /** True for exactly one caller per slot across the fleet (per store). */
  claim(slot: number, owner: string, intervalMs: number): Promise<boolean>;
  append(samples: Sample[], now: number, intervalMs: number): Promise<void>;
  read(concertId: number, since: number): Promise<Sample[]>;
}

// The Redis value of a sample: short names, one JSON object per list element.
interface Encoded { s: number; t: number; w: number; a: number; n: number; l: number | null; m: Mode; c?: [number, Mode, Mode][] }

export function encodeSample(x: Sample): string {
  const e: Encoded = { s: x.slot, t: x.at, w: x.waiting, a: x.active, n: x.admittedTotal, l: x.lagSeconds, m: x.mode };
  if (x.modeChanges.length) e.c = x.modeChanges.map((c) => [c.at, c.from, c.to]);
  return JSON.stringify(e);
}

export function decodeSample(concertId: number, raw: string): Sample | null {
  try {
    const e = JSON.parse(raw) as Encoded;
    return {
      concertId, slot: e.s, at: e.t, waiting: e.w, active: e.a, admittedTotal: e.n, lagSeconds: e.l ?? null, mode: e.m,
      modeChanges: (e.c ?? []).map(([at, from, to]) => ({ at, from, to })),
    };
  } catch {
    return null;
  }
}

export class RedisSampleStore implements SampleStore {
  constructor(private readonly redis: RedisClient) {}

  async claim(slot: number, owner: string, intervalMs: number): Promise<boolean> {
    // The slot key outlives its slot a little, so that a slow instance cannot take it again.
    return (await this.redis.set(keys.consoleSlot(slot), owner, 'PX', intervalMs * 3, 'NX')) === 'OK';
  }

  async append(samples: Sample[], _now: number, intervalMs: number): Promise<void> {
    if (samples.length === 0) return;
    // An hour's worth of slots; the TTL lets a concert nobody samples any more vanish an hour later.
    const cap = Math.ceil(SAMPLE_WINDOW_MS / intervalMs) + 1;
    // One pipeline per concert: on Redis Cluster a pipeline must stay on one slot.
    await Promise.all(samples.map(async (s) => {
      const key = keys.consoleSamples(s.concertId);
      const res = (await this.redis.pipeline().lpush(key, encodeSample(s)).ltrim(key, 0, cap - 1)
        .pexpire(key, SAMPLE_WINDOW_MS + intervalMs).exec()) ?? [];
      const failed = res.find(([err]) => err);
      if (failed) throw failed[0];
    }));
  }

  async read(concertId: number, since: number): Promise<Sample[]> {
    const raw = await this.redis.lrange(keys.consoleSamples(concertId), 0, -1);
    const out: Sample[] = [];
    for (const r of raw) {
      const s = decodeSample(concertId, r);
      if (s && s.at >= since) out.push(s);
    }
    return out.reverse();
  }
}

export class SqlSampleStore implements SampleStore {
  constructor(private readonly db: Db) {}

  async claim(slot: number): Promise<boolean> {
    const r = await this.db.updateTable('console_sampler').set({ last_slot: slot })
      .where('id', '=', 1).where('last_slot', '<', slot).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async append(samples: Sample[], now: number): Promise<void> {
    if (samples.length > 0) {
      await this.db.insertInto('console_samples').values(samples.map((s) => ({
        concert_id: s.concertId, slot: s.slot, at: s.at, waiting: s.waiting, active: s.active,
        admitted_total: s.admittedTotal, lag_seconds: s.lagSeconds, mode: s.mode,
        mode_changes: s.modeChanges.length ? JSON.stringify(s.modeChanges) : null,
      }))).onConflict((oc) => oc.columns(['concert_id', 'slot']).doNothing()).execute();
    }
    await this.purge(now);
  }

  /** Everything past the window, every concert's: what SQL mode keeps is one hour at most. */
  async purge(now: number): Promise<number> {
    const r = await this.db.deleteFrom('console_samples').where('at', '<', now - SAMPLE_WINDOW_MS).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async read(concertId: number, since: number): Promise<Sample[]> {
    const rows = await this.db.selectFrom('console_samples').selectAll()
      .where('concert_id', '=', concertId).where('at', '>=', since).orderBy('at').execute();
    return rows.map((r) => ({
      concertId, slot: Number(r.slot), at: Number(r.at), waiting: Number(r.waiting), active: Number(r.active),
      admittedTotal: Number(r.admitted_total), lagSeconds: r.lag_seconds === null ? null : Number(r.lag_seconds),
      mode: r.mode as Mode, modeChanges: r.mode_changes ? JSON.parse(r.mode_changes) as ModeChange[] : [],
    }));
  }
}

/**
 * Both stores' samples as one series: one per slot (a switch can leave a slot sampled in each
 * store; the earlier sample stays), oldest first. A store that cannot be read adds nothing.
 */
export function mergeSamples(...series: Sample[][]): Sample[] {
  const bySlot = new Map<number, Sample>();
  for (const s of series.flat()) {
    const had = bySlot.get(s.slot);
    if (!had || s.at < had.at) bySlot.set(s.slot, s);
  }
  return [...bySlot.values()].sort((a, b) => a.at - b.at);
}

/**
 * The mode changes of a series, once each: two instances that sampled neighbouring slots may
 * both report a change they saw a few milliseconds apart.
 */
export function modeChangesOf(samples: Sample[]): ModeChange[] {
  const all = samples.flatMap((s) => s.modeChanges).sort((a, b) => a.at - b.at);
  const out: ModeChange[] = [];
  for (const c of all) {
    const last = out[out.length - 1];
    if (last && last.to === c.to) continue;
    out.push(c);
  }
  return out;
}

/** Admissions per second between each sample and the one before (null for the first; never below 0). */
export function admitRates(samples: Sample[]): (number | null)[] {
  return samples.map((s, i) => {
    const prev = samples[i - 1];
    if (!prev || s.at <= prev.at) return null;
    return Math.max(0, (s.admittedTotal - prev.admittedTotal) / ((s.at - prev.at) / 1000));
  });
}
