import { errors } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { describeRedis, type RedisClient } from '../../redis/connection.ts';
import type { ModeController } from '../../resilience/mode.ts';
import type { Db } from '../../store/connect.ts';
import type { WriteBehindWorker } from '../../jobs/write-behind.ts';
import { setQueueConfig } from '../queue/queue-state.repo.ts';
import type { Backends } from '../../backend/backends.ts';
import type { QueueConfig } from '../queue/types.ts';

export interface AdminDeps {
  db: Db; redis: RedisClient; log: Logger; metrics: Metrics; backends: Backends;
  /** What the status and the gauges report. */
  mode: ModeController;
  writeBehind: WriteBehindWorker;
  breakerState: () => string;
  rebuild: () => Promise<unknown>;
  liveConcerts: (now: number) => Promise<number[]>;
  /** The service's clock (the one requests use); defaults to the wall clock. */
  clock?: () => number;
}

export class AdminService {
  private rebuilding: Promise<unknown> | null = null;

  constructor(private readonly d: AdminDeps) {}

  private async config(concertId: number): Promise<QueueConfig> {
    const row = await this.d.db.selectFrom('queue_state').selectAll().where('concert_id', '=', concertId).executeTakeFirst();
    if (!row) throw errors.notFound('concert');
    return { maxActive: row.max_active, admitPerSecond: row.admit_per_second, activeTtlSeconds: row.active_ttl_seconds, paused: row.paused === 1 };
  }

  async queueStats(concertId: number, now: number) {
    const config = await this.config(concertId);
    const counts = await this.d.backends.current.queue.counts(concertId, now);
    return {
      concertId, waiting: counts.waiting, active: counts.active, admittedTotal: counts.admittedTotal,
      lastEntry: counts.lastSeq, lastAdmittedEntry: counts.lastAdmitted, config,
    };
  }

  async updateQueueConfig(concertId: number, patch: Partial<QueueConfig>): Promise<QueueConfig> {
    const next = { ...(await this.config(concertId)), ...patch };
    await setQueueConfig(this.d.db, concertId, next);
    // SQL mode reads the config from SQL, just written; Redis mode keeps a copy.
    await this.d.backends.current.queue.applyConfig(concertId, next);
    return next;
  }

  async status() {
    let redis: { role: string; master: string | null; error?: string };
    try {
      redis = await describeRedis(this.d.redis);
    } catch (err) {
      redis = { role: 'unreachable', master: null, error: (err as Error).message };
    }
    let writeBehind: { pending: number | null; lagSeconds: number | null };
    try {
      writeBehind = await this.d.writeBehind.status();
    } catch {
      writeBehind = { pending: null, lagSeconds: null };
    }
    return {
      mode: this.d.mode.current,
      modeSince: new Date(this.d.mode.sinceMs).toISOString(),
      breaker: this.d.breakerState(),
      redis,
      writeBehind,
    };
  }

  /** Starts a rebuild in the background unless one is already running here. */
  requestRebuild(): boolean {
    if (this.rebuilding) return false;
    this.rebuilding = this.d.rebuild()
      .catch((err) => this.d.log.error('rebuild failed', { err }))
      .finally(() => { this.rebuilding = null; });
    return true;
  }

  async refreshGauges(): Promise<void> {
    for (const m of ['redis', 'sql', 'rebuilding']) this.d.metrics.mode.set({ mode: m }, this.d.mode.current === m ? 1 : 0);
    const now = (this.d.clock ?? Date.now)();
    // The write-behind lag is measured against stream ids, which are Redis (wall clock) time.
    const backend = this.d.backends.current;
    await backend.writeBehind.measure();
    for (const id of await this.d.liveConcerts(now)) {
      const c = await backend.queue.counts(id, now);
      this.d.metrics.waiting.set({ concert: String(id) }, c.waiting);
      this.d.metrics.active.set({ concert: String(id) }, c.active);
    }
  }
}
