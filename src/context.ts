import { hostname } from 'node:os';
import type { Config } from './config.ts';
import { AdmissionTicker } from './jobs/admission-ticker.ts';
import { ConsoleSampler } from './jobs/console-sampler.ts';
import { DrawJob } from './jobs/draw-job.ts';
import { SaleService } from './modules/draw/sale.service.ts';
import { HoldSweeper } from './jobs/hold-sweeper.ts';
import { Rebuilder, rebuildOnMasterChange } from './jobs/rebuild/index.ts';
import { ModeCoordinator } from './resilience/coordinator.ts';
import { WriteBehindWorker } from './jobs/write-behind.ts';
import { applyEvents } from './jobs/write-behind.apply.ts';
import { DrainState } from './http/drain.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { AdminService } from './modules/admin/admin.service.ts';
import { CatalogService } from './modules/catalog/catalog.service.ts';
import { ConsoleService } from './modules/console/console.service.ts';
import { RedisSampleStore, SqlSampleStore } from './modules/console/samples.ts';
import { BalanceService } from './modules/payments/balance.service.ts';
import { PaymentService } from './modules/payments/payments.service.ts';
import { QueueService } from './modules/queue/queue.service.ts';
import { RedisQueueStore } from './modules/queue/queue.redis.ts';
import { liveInSql, restoreLostPlace } from './modules/queue/place-recovery.ts';
import { SqlQueueStore } from './modules/queue/queue.sql.ts';
import { RedisHoldStore } from './modules/reservations/holds.redis.ts';
import { SqlHoldStore } from './modules/reservations/holds.sql.ts';
import { recordGrantedHold } from './modules/reservations/reservations.repo.ts';
import { ReservationService } from './modules/reservations/reservations.service.ts';
import { TokenService } from './modules/tokens/tokens.service.ts';
import { IdentityService } from './modules/identity/identity.service.ts';
import { JoinProofService } from './modules/pow/join-proof.service.ts';
import { RedisSpentChallenges, SqlSpentChallenges } from './modules/pow/spent-challenges.ts';
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
  /** AUTH_MODE=jwt only: identity-provider tokens to user ids. */
  identity: IdentityService | null;
  catalog: CatalogService;
  queue: QueueService;
  /** Proof of work on joins (JOIN_POW_BITS): challenges and their single use. */
  joinProof: JoinProofService;
  /** Scheduled sales: pre-queue, draw, published draw. */
  sale: SaleService;
  drawJob: DrawJob;
  admin: AdminService;
  /** The operator console's overview and samples. */
  console: ConsoleService;
  reservations: ReservationService;
  balance: BalanceService;
  payments: PaymentService;
  writeBehind: WriteBehindWorker;
  ticker: AdmissionTicker;
  sweeper: HoldSweeper;
  sampler: ConsoleSampler;
  coordinator: ModeCoordinator;
  liveConcerts: (now: number) => Promise<number[]>;
  /** Set from the moment the instance was told to shut down: /readyz fails, answers close their connection. */
  drain: DrainState;
  /** Starts the background jobs (admission ticker, write-behind worker, hold sweeper, console sampler). */
  startJobs(): void;
  /** Stops them; resolves once every pass that was under way has ended (nothing of theirs still writes to SQL). */
  stopJobs(): Promise<void>;
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
  const identity = config.auth.mode === 'jwt' ? new IdentityService(db, config.auth, tokens.jwt, clock, log) : null;
  const catalog = new CatalogService(db, redis, config);

  // The set of live concerts changes only when one is created (the catalog then forgets this
  // memo) or ends; read it at most once a second.
  let live: { at: number; ids: Promise<number[]> } | null = null;
  catalog.onCreated(() => { live = null; });
  const liveConcerts = (now: number) => {
    // A clock that reads earlier than the cached entry (stepped back) must not pin a stale list.
    if (!live || now - live.at > 1000 || now < live.at) {
      const ids = catalog.liveConcertIds(now);
      live = { at: now, ids };
      ids.catch(() => { live = null; });
    }
    return live.ids;
  };

  const writeBehind = new WriteBehindWorker(db, redis, log, metrics, {
    consumer: instanceId, concerts: liveConcerts, claimIdleMs: opts.writeBehindClaimIdleMs,
    // Outside Redis mode the streams are drained once, by the rebuild, before Redis is reloaded.
    active: () => mode.useRedis(),
    maxBacklog: config.writeBehindMaxBacklog,
  });

  // Redis-mode polls never reach SQL: on moving to SQL mode every waiting user's grace restarts.
  let sqlSince = 0;
  mode.on('change', ({ to }: { to: string }) => { if (to === 'sql') sqlSince = clock(); });
  const sqlQueue = new SqlQueueStore(db, config, () => sqlSince);
  const queue = new QueueService({
    // A tick's admissions are committed to SQL before Redis makes them (see RedisQueueStore.admitTick).
    redis: new RedisQueueStore(redis, config, (id) => catalog.ensureLoaded(id, clock()), (concertId, admissions, now) =>
      applyEvents(db, concertId, admissions.map((a) => ({
        e: 'admit', u: String(a.userId), s: String(a.seq), t: String(now), x: String(a.activeUntil),
      })), now)),
    sql: sqlQueue,
  }, mode, tokens, catalog, config, (concertId) => writeBehind.overloaded(concertId), async (place, now) => {
    // Replaced, left and spent tokens are revoked in SQL at once: most unknown tokens end here.
    if (!(await liveInSql(db, { ...place, now }))) return false;
    // SQL must also learn every place Redis ended on its own (lapses, expiries): drain, then look again.
    await writeBehind.drainConcertShared(place.concertId);
    return restoreLostPlace(db, redis, { ...place, now });
  });

  const sqlSpent = new SqlSpentChallenges(db);
  const joinProof = new JoinProofService({ redis: new RedisSpentChallenges(redis, sqlSpent), sql: sqlSpent }, mode,
    config.joinPowBits, config.jwtSecret);
  const sale = new SaleService(db, redis, config, tokens, log, () => sqlSince);
  queue.attachSale(sale);
  const drawJob = new DrawJob(sale, queue, mode, log, {
    intervalMs: Math.min(250, config.admissionTickMs), clock, load: (id) => catalog.ensureLoaded(id, clock()),
  });

  const sqlHolds = new SqlHoldStore(db, sqlQueue);
  const reservations = new ReservationService({
    redis: new RedisHoldStore(redis, async (id) => (await catalog.concert(id)).endsAt, {
      find: (rid, now) => sqlHolds.find(0, rid, now),
      listOwn: (userId, now, limit) => sqlHolds.listOwn(userId, now, limit),
      ownLiveHold: (userId, concertId, scheduleId, seat, now) => sqlHolds.ownLiveHoldOf(userId, concertId, scheduleId, seat, now),
      recordGranted: (hold, now) => recordGrantedHold(db, hold, now),
      release: (rid, userId, now, inRedis) => sqlHolds.releaseWith(rid, userId, now, inRedis),
    }, { replicas: config.redisWaitReplicas, timeoutMs: config.redisWaitTimeoutMs }),
    sql: sqlHolds,
  }, mode, queue, config, db);
  const balance = new BalanceService(db, queue);
  // Set once the coordinator exists (it needs the write-behind, which needs nothing of this).
  let onMirrorLost = (_reason: string) => {};
  const payments = new PaymentService(db, reservations, queue, log, (reason) => onMirrorLost(reason));
  const sweeper = new HoldSweeper(db, log, {
    clock,
    // A join claim is read back while the token the join was made with could still come with it.
    joinReplayKeepMs: 1000 * Math.max(config.joinReplaySeconds, config.userTokenTtlSeconds, config.queueTokenTtlSeconds),
  });

  const ticker = new AdmissionTicker(queue, log, metrics, { tickMs: config.admissionTickMs, concerts: liveConcerts });

  const rebuilder = new Rebuilder({
    db, redis, log, clock, liveConcerts: (now) => catalog.liveConcertIds(now), drainConcert: (id) => writeBehind.drainConcertFully(id),
  });
  const coordinator = new ModeCoordinator(db, redis, mode, log, {
    instanceId,
    probeTimeoutMs: Math.min(config.redisTimeoutMs, 500),
    drain: () => writeBehind.drainOnce(Date.now(), { everything: true }),
    rebuild: () => rebuilder.rebuild(),
    catchUp: (since) => rebuilder.catchUp(since),
  });

  onMirrorLost = (reason) => void coordinator.enterSql(reason);

  rebuildOnMasterChange(redis, log, { useRedis: () => mode.useRedis(), rebuildNow: () => coordinator.rebuildNow() });

  const admin = new AdminService({
    db, redis, log, metrics, mode, queue, writeBehind, liveConcerts, clock,
    breakerState: () => coordinator.breakerState(),
    rebuild: () => coordinator.rebuildNow(),
  });

  const sampleStores = { redis: new RedisSampleStore(redis), sql: new SqlSampleStore(db) };
  const consoleLag = (ids: number[]) => writeBehind.lagSeconds(ids);
  const sampler = new ConsoleSampler(queue, mode, log, {
    intervalMs: config.consoleSampleSeconds * 1000, owner: instanceId, concerts: liveConcerts, clock,
    lag: consoleLag, stores: sampleStores,
  });
  const consoleService = new ConsoleService({
    db, redis, log, mode, catalog, admin, stores: sampleStores, liveConcerts, lag: consoleLag, clock,
    redisAnswers: () => coordinator.breakerState() === 'closed',
    intervalMs: config.consoleSampleSeconds * 1000,
  });

  mode.on('change', ({ from, to, reason }) => {
    log.warn('mode changed', { from, to, reason });
    metrics.modeTransitions.inc({ to });
  });

  return {
    config, db, redis, log, metrics, mode, clock, instanceId, tokens, identity, catalog, queue, joinProof, sale, drawJob, admin, console: consoleService,
    reservations, balance, payments, writeBehind, ticker, sweeper, sampler, coordinator, liveConcerts,
    drain: new DrainState(),
    startJobs() {
      coordinator.start();
      ticker.start();
      drawJob.start();
      writeBehind.start();
      sweeper.start();
      sampler.start();
    },
    async stopJobs() {
      await Promise.all([coordinator.stop(), ticker.stop(), drawJob.stop(), writeBehind.stop(), sweeper.stop(), sampler.stop()]);
    },
  };
}
