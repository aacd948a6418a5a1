import type { Logger } from '../../logger.ts';
import type { Backends } from '../../backend/backends.ts';
import type { ModeController } from '../../resilience/mode.ts';
import type { AdminService } from '../admin/admin.service.ts';
import type { CatalogService } from '../catalog/catalog.service.ts';
import { estimateWaitSeconds } from '../queue/eta.ts';
import { admitRates, mergeSamples, modeChangesOf, type Sample } from './samples.ts';

export interface ConsoleDeps {
  log: Logger; catalog: CatalogService; admin: AdminService;
  backends: Backends;
  /** The mode each row reports. */
  mode: ModeController;
  liveConcerts: (now: number) => Promise<number[]>;
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
    const { redis, sql, current } = this.d.backends;
    const fromSql = await sql.samples.read(concertId, since);
    let fromRedis: Sample[] = [];
    if (current.redisReadable()) {
      fromRedis = await redis.samples.read(concertId, since).catch((err) => {
        this.d.log.debug('console samples: redis unreadable', { err });
        return [];
      });
    }
    return mergeSamples(fromSql, fromRedis);
  }

  async overview() {
    const now = this.d.clock();
    const ids = [...await this.d.liveConcerts(now)].sort((a, b) => a - b);
    const backend = this.d.backends.current;
    // Outside Redis mode nothing is written behind: no lag to show.
    const lags = await backend.writeBehind.lagSeconds(ids);
    const rows = [];
    for (const id of ids) {
      const [info, stats, eta, recent] = await Promise.all([
        this.d.catalog.concert(id), this.d.admin.queueStats(id, now), backend.etaInputs(id),
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
        writeBehindLagSeconds: lags.get(id) ?? null,
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
