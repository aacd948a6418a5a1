import type { Logger } from '../../logger.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import type { ModeController } from '../../resilience/mode.ts';
import type { Db } from '../../store/connect.ts';
import type { AdminService } from '../admin/admin.service.ts';
import type { CatalogService } from '../catalog/catalog.service.ts';
import { estimateWaitSeconds } from '../queue/eta.ts';
import { admitRates, mergeSamples, modeChangesOf, type Sample, type SampleStore } from './samples.ts';

export interface ConsoleDeps {
  db: Db; redis: RedisClient; log: Logger; mode: ModeController; catalog: CatalogService; admin: AdminService;
  stores: { redis: SampleStore; sql: SampleStore };
  liveConcerts: (now: number) => Promise<number[]>;
  /** Write-behind lag per concert (read from Redis). */
  lag: (concertIds: number[]) => Promise<Map<number, number>>;
  /** Outside Redis mode, Redis is read only while this instance's breaker says it answers. */
  redisAnswers: () => boolean;
  intervalMs: number;
  clock: () => number;
}

/** The observed admission rate is the slope over this much of the newest samples. */
const RATE_WINDOW_MS = 60_000;

const iso = (ms: number) => new Date(ms).toISOString();

/** What the operator console shows: one row per live concert, and a concert's last hour. */
export class ConsoleService {
  constructor(private readonly d: ConsoleDeps) {}

  /** Samples of the concert since `since`, from both stores (a mode switch leaves some in each). */
  private async samples(concertId: number, since: number): Promise<Sample[]> {
    const fromSql = await this.d.stores.sql.read(concertId, since);
    let fromRedis: Sample[] = [];
    if (this.d.mode.useRedis() || this.d.redisAnswers()) {
      fromRedis = await this.d.stores.redis.read(concertId, since).catch((err) => {
        this.d.log.debug('console samples: redis unreadable', { err });
        return [];
      });
    }
    return mergeSamples(fromSql, fromRedis);
  }

  /** The wait estimate's measured inputs, from the store that keeps them in the current mode. */
  private async etaInputs(concertId: number): Promise<{ meanHoldSeconds: number | null; spread: number }> {
    if (this.d.mode.useRedis()) {
      try {
        const [hold, spread] = await this.d.redis.hmget(keys.queueMeta(concertId), 'etaMeanHold', 'etaSpread');
        return { meanHoldSeconds: hold ? Number(hold) : null, spread: spread ? Number(spread) : 1 };
      } catch {
        // Redis is failing; SQL's figures are older but still an estimate.
      }
    }
    const row = await this.d.db.selectFrom('queue_state').select(['eta_mean_hold', 'eta_spread'])
      .where('concert_id', '=', concertId).executeTakeFirst();
    return { meanHoldSeconds: row?.eta_mean_hold == null ? null : Number(row.eta_mean_hold), spread: Number(row?.eta_spread ?? 1) };
  }

  async overview() {
    const now = this.d.clock();
    const ids = [...await this.d.liveConcerts(now)].sort((a, b) => a - b);
    const redisMode = this.d.mode.useRedis();
    const lags = redisMode ? await this.d.lag(ids).catch(() => new Map<number, number>()) : new Map<number, number>();
    const rows = [];
    for (const id of ids) {
      const [info, stats, eta, recent] = await Promise.all([
        this.d.catalog.concert(id), this.d.admin.queueStats(id, now), this.etaInputs(id),
        this.samples(id, now - RATE_WINDOW_MS - this.d.intervalMs),
      ]);
      const { config } = stats;
      const lastWaiting = stats.lastEntry - stats.lastAdmittedEntry;
      const first = recent[0];
      const last = recent[recent.length - 1];
      rows.push({
        id, title: info.title,
        waiting: stats.waiting, active: stats.active, admittedTotal: stats.admittedTotal,
        admitPerSecond: config.admitPerSecond,
        // Measured from the samples; null until two are there.
        admittedPerSecond: first && last && last.at > first.at
          ? Math.max(0, (last.admittedTotal - first.admittedTotal) / ((last.at - first.at) / 1000)) : null,
        maxActive: config.maxActive, activeTtlSeconds: config.activeTtlSeconds, paused: config.paused,
        // The last fan in line: what their poll would estimate now (eta.ts).
        tailEtaSeconds: config.paused || stats.waiting === 0 || lastWaiting <= 0 ? null : estimateWaitSeconds({
          ...eta, position: lastWaiting, admitPerSecond: config.admitPerSecond, maxActive: config.maxActive,
          activeCount: stats.active, activeTtlSeconds: config.activeTtlSeconds,
        }),
        mode: this.d.mode.current,
        writeBehindLagSeconds: redisMode ? lags.get(id) ?? null : null,
      });
    }
    return { at: iso(now), mode: this.d.mode.current, sampleSeconds: this.d.intervalMs / 1000, concerts: rows };
  }

  async concertSamples(concertId: number, minutes: number) {
    await this.d.catalog.concert(concertId);
    const now = this.d.clock();
    const samples = await this.samples(concertId, now - minutes * 60_000);
    const rates = admitRates(samples);
    return {
      concertId, minutes, sampleSeconds: this.d.intervalMs / 1000,
      samples: samples.map((s, i) => ({
        at: iso(s.at), waiting: s.waiting, active: s.active, admittedTotal: s.admittedTotal,
        admitPerSecond: rates[i] === null ? null : Math.round(rates[i]! * 1000) / 1000,
        writeBehindLagSeconds: s.lagSeconds, mode: s.mode,
      })),
      modeChanges: modeChangesOf(samples).map((c) => ({ at: iso(c.at), from: c.from, to: c.to })),
    };
  }
}
