import { hostname } from 'node:os';
import type { Config } from './config.ts';
import { AdmissionTicker } from './jobs/admission-ticker.ts';
import { rebuildRedis } from './jobs/rebuild.ts';
import { ModeCoordinator } from './resilience/coordinator.ts';
import { syncSoldSeats } from './modules/catalog/load-concert.ts';
import { WriteBehindWorker } from './jobs/write-behind.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { AdminService } from './modules/admin/admin.service.ts';
import { CatalogService } from './modules/catalog/catalog.service.ts';
import { QueueService } from './modules/queue/queue.service.ts';
import { RedisQueueStore } from './modules/queue/queue.redis.ts';
import { SqlQueueStore } from './modules/queue/queue.sql.ts';
import { TokenService } from './modules/tokens/tokens.service.ts';
import type { RedisClient } from './redis/connection.ts';
import { ModeController } from './resilience/mode.ts';
import type { Db } from './store/connect.ts';

export interface AppContext {
  config: Config;
  db: Db;
  redis: RedisClient;
  log: Logger;
  metrics: Metrics;
  mode: ModeController;
  clock: () => number;
  instanceId: string;
  tokens: TokenService;
  catalog: CatalogService;
  queue: QueueService;
  admin: AdminService;
  writeBehind: WriteBehindWorker;
  ticker: AdmissionTicker;
  coordinator: ModeCoordinator;
  liveConcerts: (now: number) => Promise<number[]>;
  /** Starts the background jobs (admission ticker, write-behind worker). */
  startJobs(): void;
  stopJobs(): void;
}

export interface ContextOptions {
  log?: Logger;
  clock?: () => number;
  instanceId?: string;
  writeBehindClaimIdleMs?: number;
}

/** Wires every service from its dependencies; main.ts and every test build the service this way. */
export function createContext(config: Config, deps: { db: Db; redis: RedisClient }, opts: ContextOptions = {}): AppContext {
  const log = opts.log ?? createLogger(config.logLevel);
  const metrics = createMetrics();
  const mode = new ModeController();
  const clock = opts.clock ?? Date.now;
  const instanceId = opts.instanceId ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const { db, redis } = deps;

  const tokens = new TokenService(db, redis, config);
  const catalog = new CatalogService(db, redis, config);

  // The set of live concerts changes only when one is created or ends; read it at most once a second.
  let live: { at: number; ids: Promise<number[]> } | null = null;
  const liveConcerts = (now: number) => {
    if (!live || now - live.at > 1000) {
      const ids = catalog.liveConcertIds(now);
      live = { at: now, ids };
      ids.catch(() => { live = null; });
    }
    return live.ids;
  };

  const queue = new QueueService({
    redis: new RedisQueueStore(redis, config, (id) => catalog.ensureLoaded(id, clock())),
    sql: new SqlQueueStore(db, config),
  }, mode, tokens, catalog, config);

  const writeBehind = new WriteBehindWorker(db, redis, log, metrics, {
    consumer: instanceId, concerts: liveConcerts, claimIdleMs: opts.writeBehindClaimIdleMs,
    // Outside Redis mode the streams are drained once, by the rebuild, before Redis is reloaded.
    active: () => mode.useRedis(),
  });
  const ticker = new AdmissionTicker(queue, log, metrics, { tickMs: config.admissionTickMs, concerts: liveConcerts });

  const rebuild = async () => {
    // Another rebuild (an instance that was taken over) may still hold the lock: wait for it.
    for (let attempt = 0; attempt < 100; attempt++) {
      const report = await rebuildRedis(db, redis, log, await catalog.liveConcertIds(clock()), clock());
      if (report) return report;
      await Bun.sleep(300);
    }
    throw new Error('the rebuild lock stayed busy');
  };
  const coordinator = new ModeCoordinator(db, redis, mode, log, {
    instanceId,
    probeTimeoutMs: Math.min(config.redisTimeoutMs, 500),
    drain: () => writeBehind.drainOnce(),
    rebuild,
    catchUp: async () => {
      for (const id of await catalog.liveConcertIds(clock())) await syncSoldSeats(db, redis, id);
    },
  });

  const admin = new AdminService({
    db, redis, log, metrics, mode, queue, writeBehind, liveConcerts,
    breakerState: () => coordinator.breakerState(),
    rebuild: () => coordinator.rebuildNow(),
  });

  mode.on('change', ({ from, to, reason }) => {
    log.warn('mode changed', { from, to, reason });
    metrics.modeTransitions.inc({ to });
  });

  return {
    config, db, redis, log, metrics, mode, clock, instanceId, tokens, catalog, queue, admin, writeBehind, ticker, coordinator, liveConcerts,
    startJobs() {
      coordinator.start();
      ticker.start();
      writeBehind.start();
    },
    stopJobs() {
      coordinator.stop();
      ticker.stop();
      writeBehind.stop();
    },
  };
}
