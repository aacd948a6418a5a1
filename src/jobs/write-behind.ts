import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { RedisClient } from '../redis/connection.ts';
import { keys, WRITE_BEHIND_GROUP } from '../redis/keys.ts';
import { decodeStreamFields } from '../redis/codecs.ts';
import type { Db } from '../store/connect.ts';
import { ensureStreamGroup } from '../modules/catalog/load-concert.ts';
import { applyEvents } from './write-behind.apply.ts';

export interface WriteBehindOptions {
  consumer: string;
  batchSize?: number;
  intervalMs?: number;
  /** A pending entry idle this long belongs to a dead consumer and is claimed. */
  claimIdleMs?: number;
  concerts: (now: number) => Promise<number[]>;
  /** The background loop runs only while this says so. */
  active?: () => boolean;
  /** Entries a concert may have waiting for SQL before joins and holds are refused. */
  maxBacklog?: number;
}

type Entry = [id: string, fields: string[]];

/** Concerts drained at the same time in one pass. */
const DRAIN_LANES = 4;

/**
 * Drains each concert's write-behind stream into SQL. Entries are read through a consumer
 * group, committed in one transaction per batch, and only then acknowledged and deleted, so
 * a crash between commit and ack merely replays an idempotent batch.
 */
export class WriteBehindWorker {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private readonly grouped = new Set<number>();
  private readonly batchSize: number;
  private readonly claimIdleMs: number;

  constructor(private readonly db: Db, private readonly redis: RedisClient, private readonly log: Logger,
    private readonly metrics: Metrics, private readonly opts: WriteBehindOptions) {
    this.batchSize = opts.batchSize ?? 1000;
    this.claimIdleMs = opts.claimIdleMs ?? 5_000;
  }

  /** The pass under way, if any: stop() resolves once it has ended. */
  private pass: Promise<void> | null = null;

  start(): void {
    if (this.running) return;
    this.running = true;
    const once = async () => {
      let applied = 0;
      const active = this.opts.active?.() ?? true;
      try {
        if (active) applied = await this.drainOnce(Date.now(), { reclaim: this.reclaimDue() });
      } catch (err) {
        this.log.warn('write-behind pass failed', { err });
      }
      // Measured after every pass, also (above all) when SQL refused it.
      if (active) await this.measureBacklog().catch(() => {});
      return applied;
    };
    const loop = async () => {
      if (!this.running) return;
      let applied = 0;
      this.pass = once().then((n) => { applied = n; });
      await this.pass;
      this.pass = null;
      if (this.running) this.timer = setTimeout(loop, applied > 0 ? 0 : (this.opts.intervalMs ?? 100));
    };
    this.timer = setTimeout(loop, 0);
  }

  /** Stops the loop; the promise resolves when a pass that was under way has committed or failed. */
  stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    return this.pass ?? Promise.resolve();
  }

  private readonly backlogs = new Map<number, number>();

  /**
   * The streams have no cap of their own, and nothing is ever trimmed unapplied: while SQL is
   * down or slow they grow. Past `maxBacklog` entries a concert refuses new joins and holds
   * (503 with Retry-After) and admits nobody, until the worker has caught up.
   */
  overloaded(concertId: number): boolean {
    return (this.backlogs.get(concertId) ?? 0) >= (this.opts.maxBacklog ?? Infinity);
  }

  backlog(concertId: number): number {
    return this.backlogs.get(concertId) ?? 0;
  }

  async measureBacklog(now = Date.now()): Promise<void> {
    // One call per concert, all at once: each stream has its own slot on a cluster, and a
    // pipeline that spans slots is refused whole. A concert whose length could not be read
    // keeps its last measure.
    await Promise.all((await this.opts.concerts(now)).map(async (c) => {
      const len = await this.redis.xlen(keys.stream(c)).catch(() => null);
      if (len !== null) this.backlogs.set(c, Number(len));
    }));
  }

  /** Entries of a dead consumer become claimable after claimIdleMs; looking twice as often suffices. */
  private lastReclaim = 0;
  private reclaimDue(): boolean {
    const now = Date.now();
    if (now - this.lastReclaim < this.claimIdleMs / 2) return false;
    this.lastReclaim = now;
    return true;
  }

  /**
   * One pass over every live concert: reclaim a dead consumer's entries, then read new ones.
   * `everything`: also take entries that another consumer was given but has not acknowledged,
   * however recently. The rebuild drains this way: a read that timed out on a frozen or dying
   * Redis may still have been carried out there, leaving entries delivered to nobody alive; a
   * rebuild that skipped them would reload Redis from a SQL that misses acknowledged changes.
   * Applying an entry twice is harmless (applyEvents is idempotent).
   */
  async drainOnce(now = Date.now(), opts: { reclaim?: boolean; everything?: boolean } = {}): Promise<number> {
    let total = 0;
    const reclaimIdleMs = opts.everything ? 0 : opts.reclaim ?? true ? this.claimIdleMs : null;
    const queue = [...await this.opts.concerts(now)];
    let failure: { err: unknown } | null = null;
    // Concerts share nothing in SQL (their rows, reservations and seats are their own), so a
    // few are drained side by side; each one's batches still commit in stream order.
    const lane = async () => {
      for (let concertId = queue.shift(); concertId !== undefined; concertId = queue.shift()) {
        try {
          total += await this.drainConcertOnce(concertId, reclaimIdleMs);
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DRAIN_LANES, queue.length) }, lane));
    if (failure) throw (failure as { err: unknown }).err;
    return total;
  }

  private async drainConcertOnce(concertId: number, reclaimIdleMs: number | null): Promise<number> {
    try {
      return await this.drainConcert(concertId, reclaimIdleMs);
    } catch (err) {
      // A Redis that restarted empty has neither the stream nor the group: recreate and go on.
      if (!String((err as Error).message).includes('NOGROUP')) throw err;
      this.grouped.delete(concertId);
      return this.drainConcert(concertId, reclaimIdleMs);
    }
  }

  private readonly sharedDrains = new Map<number, Promise<number>>();

  /** drainConcertFully, shared by every caller that asks while one is under way (requests that recover places). */
  drainConcertShared(concertId: number): Promise<number> {
    let d = this.sharedDrains.get(concertId);
    if (!d) {
      d = this.drainConcertFully(concertId).finally(() => this.sharedDrains.delete(concertId));
      this.sharedDrains.set(concertId, d);
    }
    return d;
  }

  /** One concert, everything pending included (the rebuild, under the concert's load lock). */
  async drainConcertFully(concertId: number): Promise<number> {
    try {
      return await this.drainConcert(concertId, 0);
    } catch (err) {
      if (!String((err as Error).message).includes('NOGROUP')) throw err;
      this.grouped.delete(concertId);
      return this.drainConcert(concertId, 0);
    }
  }

  private async drainConcert(concertId: number, reclaimIdleMs: number | null): Promise<number> {
    if (!this.grouped.has(concertId)) {
      await ensureStreamGroup(this.redis, concertId);
      this.grouped.add(concertId);
    }
    // Our own entries first: those a failed commit (SQL down, a deadlock) left pending for us.
    let total = await this.retryOwn(concertId);
    total += reclaimIdleMs === null ? 0 : await this.reclaim(concertId, reclaimIdleMs);
    // A full batch is followed by the read of the next one while it commits. Batches still
    // commit one after the other, in stream order; a read whose batch is never committed here
    // (the commit before it failed) stays pending for this consumer and is retried first.
    let next: Promise<Entry[]> | null = this.readNew(concertId);
    while (next) {
      const entries: Entry[] = await next;
      next = entries.length < this.batchSize ? null : this.readNew(concertId);
      try {
        total += await this.commit(concertId, entries);
      } catch (err) {
        next?.catch(() => {});
        throw err;
      }
    }
    return total;
  }

  private async readNew(concertId: number): Promise<Entry[]> {
    const stream = keys.stream(concertId);
    const reply = (await this.redis.xreadgroup('GROUP', WRITE_BEHIND_GROUP, this.opts.consumer, 'COUNT', this.batchSize,
      'STREAMS', stream, '>')) as [string, Entry[]][] | null;
    return reply?.[0]?.[1] ?? [];
  }

  private async retryOwn(concertId: number): Promise<number> {
    let total = 0;
    for (;;) {
      // ID 0: this consumer's delivered but unacknowledged entries, oldest first.
      const reply = (await this.redis.xreadgroup('GROUP', WRITE_BEHIND_GROUP, this.opts.consumer, 'COUNT', this.batchSize,
        'STREAMS', keys.stream(concertId), '0')) as [string, Entry[]][] | null;
      const entries = (reply?.[0]?.[1] ?? []).filter(([, fields]) => fields !== null);
      total += await this.commit(concertId, entries);
      if (entries.length < this.batchSize) return total;
    }
  }

  private async reclaim(concertId: number, minIdleMs: number): Promise<number> {
    let cursor = '0-0';
    let total = 0;
    do {
      const reply = (await this.redis.xautoclaim(keys.stream(concertId), WRITE_BEHIND_GROUP, this.opts.consumer,
        minIdleMs, cursor, 'COUNT', this.batchSize)) as [string, (Entry | null)[], string[]?];
      cursor = reply[0];
      const entries = reply[1].filter((e): e is Entry => e !== null);
      if (entries.length) this.log.info('write-behind reclaimed pending entries', { concertId, count: entries.length });
      total += await this.commit(concertId, entries);
    } while (cursor !== '0-0');
    return total;
  }

  private async commit(concertId: number, entries: Entry[]): Promise<number> {
    if (entries.length === 0) return 0;
    await applyEvents(this.db, concertId, entries.map(([, f]) => decodeStreamFields(f)), Date.now());
    const ids = entries.map(([id]) => id);
    await this.redis.pipeline()
      .xack(keys.stream(concertId), WRITE_BEHIND_GROUP, ...ids)
      .xdel(keys.stream(concertId), ...ids)
      .exec();
    this.metrics.writeBehindApplied.inc(entries.length);
    return entries.length;
  }

  /** Entries not yet committed to SQL (acknowledged ones are deleted) and the oldest one's age. */
  async status(now = Date.now()): Promise<{ pending: number; lagSeconds: number }> {
    let pending = 0;
    let oldest = now;
    for (const concertId of await this.opts.concerts(now)) {
      const stream = keys.stream(concertId);
      const [[, len], [, first]] = (await this.redis.pipeline().xlen(stream).xrange(stream, '-', '+', 'COUNT', 1).exec()) as
        [[null, number], [null, Entry[]]];
      pending += len;
      const id = first[0]?.[0];
      if (id) oldest = Math.min(oldest, Number(id.split('-')[0]));
    }
    const lagSeconds = Math.max(0, (now - oldest) / 1000);
    this.metrics.writeBehindPending.set(pending);
    this.metrics.writeBehindLag.set(lagSeconds);
    return { pending, lagSeconds };
  }

  /** Per concert: the age in seconds of its oldest entry not yet committed to SQL (0 when none). */
  async lagSeconds(concertIds: number[], now = Date.now()): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    // One call per concert (each stream has its own slot on a cluster), all at once.
    await Promise.all(concertIds.map(async (c) => {
      const first = (await this.redis.xrange(keys.stream(c), '-', '+', 'COUNT', 1).catch(() => null)) as Entry[] | null;
      if (!first) return;
      const id = first[0]?.[0];
      out.set(c, id ? Math.max(0, (now - Number(id.split('-')[0])) / 1000) : 0);
    }));
    return out;
  }
}
