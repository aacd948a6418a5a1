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
import { createBackends } from './backend/index.ts';
import type { Backends } from './backend/backends.ts';
import { Concerts } from './modules/catalog/concerts.ts';
import { LiveConcerts } from './modules/catalog/live-concerts.ts';
import { DrainState } from './http/drain.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { AdminService } from './modules/admin/admin.service.ts';
import { CatalogService } from './modules/catalog/catalog.service.ts';
import { ConsoleService } from './modules/console/console.service.ts';
import { BalanceService } from './modules/payments/balance.service.ts';
import { PaymentService } from './modules/payments/payments.service.ts';
import { QueueService } from './modules/queue/queue.service.ts';
import { ReservationService } from './modules/reservations/reservations.service.ts';
import { TokenService } from './modules/tokens/tokens.service.ts';
import { IdentityService } from './modules/identity/identity.service.ts';
import { JoinProofService } from './modules/pow/join-proof.service.ts';
import type { RedisClient } from './redis/connection.ts';
import { ModeController, type Mode } from './resilience/mode.ts';
import type { Db } from './store/connect.ts';

/** What every part is built from: the stores, the clock, the mode and where this instance logs. */
export interface Root {
  config: Config;
  db: Db;
  redis: RedisClient;
  log: Logger;
  metrics: Metrics;
  mode: ModeController;
  clock: () => number;
  instanceId: string;
}

export interface AppContext extends Root {
  /** The Redis and the SQL backend; `current` is the one that serves (the mode's). */
  backends: Backends;
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


/** The concerts' SQL reads and the memo of live ones that the jobs walk. */
interface ConcertReads {
  concerts: Concerts;
  live: LiveConcerts;
  liveConcerts: (now: number) => Promise<number[]>;
}

/** A background job: started with the service, stopped (and awaited) at shutdown. */
interface Job {
  start(): void;
  stop(): Promise<void>;
}

/** Wires every service from its dependencies; main.ts and every test build the service this way. */
export function createContext(config: Config, deps: { db: Db; redis: RedisClient }, opts: ContextOptions = {}): AppContext {
  const root = buildRoot(config, deps, opts);
  const reads = buildConcertReads(root);
  const writeBehind = buildWriteBehind(root, reads, opts);
  // The coordinator needs only the stores and the write-behind, so it comes before everything
  // that asks it whether Redis answers or tells it the mirror is lost.
  const coordinator = buildCoordinator(root, reads, writeBehind);
  const backends = buildBackends(root, reads, writeBehind, coordinator);
  const services = buildServices(root, reads, backends, writeBehind, coordinator);
  const jobs = buildJobs(root, reads, backends, services);
  root.mode.on('change', reportModeChange(root.log, root.metrics));

  const running: Job[] = [coordinator, jobs.ticker, jobs.drawJob, writeBehind, jobs.sweeper, jobs.sampler];
  return {
    ...root, ...services, ...jobs, backends, writeBehind, coordinator, liveConcerts: reads.liveConcerts,
    drain: new DrainState(),
    startJobs() {
      for (const job of running) job.start();
    },
    async stopJobs() {
      await Promise.all(running.map((job) => job.stop()));
    },
  };
}

function buildRoot(config: Config, deps: { db: Db; redis: RedisClient }, opts: ContextOptions): Root {
  const clock = opts.clock ?? Date.now;
  return {
    config, db: deps.db, redis: deps.redis, clock,
    log: opts.log ?? createLogger(config.logLevel),
    metrics: createMetrics(),
    mode: new ModeController(clock),
    instanceId: opts.instanceId ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
  };
}

function buildConcertReads({ db, redis }: Root): ConcertReads {
  const concerts = new Concerts(db, redis);
  const live = new LiveConcerts((now) => concerts.liveConcertIds(now));
  return { concerts, live, liveConcerts: (now) => live.ids(now) };
}

function buildWriteBehind({ config, db, redis, log, metrics, mode, instanceId }: Root, reads: ConcertReads, opts: ContextOptions): WriteBehindWorker {
  return new WriteBehindWorker(db, redis, log, metrics, {
    consumer: instanceId, concerts: reads.liveConcerts, claimIdleMs: opts.writeBehindClaimIdleMs,
    // Outside Redis mode the streams are drained once, by the rebuild, before Redis is reloaded.
    active: () => mode.useRedis(),
    maxBacklog: config.writeBehindMaxBacklog,
  });
}

/** The mode state machine, the rebuild it runs, and the rebuild after a Redis failover. */
function buildCoordinator({ config, db, redis, log, mode, clock, instanceId }: Root, { concerts }: ConcertReads,
  writeBehind: WriteBehindWorker): ModeCoordinator {
  const rebuilder = new Rebuilder({
    db, redis, log, clock, liveConcerts: (now) => concerts.liveConcertIds(now), drainConcert: (id) => writeBehind.drainConcertFully(id),
  });
  const coordinator = new ModeCoordinator(db, redis, mode, log, {
    instanceId,
    probeTimeoutMs: Math.min(config.redisTimeoutMs, 500),
    drain: () => writeBehind.drainOnce(Date.now(), { everything: true }),
    rebuild: () => rebuilder.rebuild(),
    catchUp: (since) => rebuilder.catchUp(since),
  });
  rebuildOnMasterChange(redis, log, { useRedis: () => mode.useRedis(), rebuildNow: () => coordinator.rebuildNow() });
  return coordinator;
}

function buildBackends({ config, db, redis, mode, clock }: Root, { concerts }: ConcertReads, writeBehind: WriteBehindWorker,
  coordinator: ModeCoordinator): Backends {
  return createBackends(mode, {
    db, redis, config, clock, concerts, writeBehind,
    sqlSince: () => mode.sqlSinceMs,
    // Outside Redis mode, Redis is read only while this instance's breaker says it answers.
    redisAnswers: () => coordinator.breakerState() === 'closed',
  });
}

function buildServices({ config, db, redis, log, metrics, mode, clock }: Root, { concerts, live, liveConcerts }: ConcertReads,
  backends: Backends, writeBehind: WriteBehindWorker, coordinator: ModeCoordinator) {
  const tokens = new TokenService(db, backends, config);
  const identity = config.auth.mode === 'jwt' ? new IdentityService(db, config.auth, tokens.jwt, clock, log) : null;
  const catalog = new CatalogService(db, config, backends, concerts);
  catalog.onCreated(() => live.forget());
  const queue = new QueueService(backends, tokens, catalog, config, (kind) => metrics.placesRestored.inc({ mode: kind }));
  const joinProof = new JoinProofService(backends, config.joinPowBits, config.jwtSecret);
  const sale = new SaleService(db, redis, config, tokens, log, backends.redis.prequeue);
  queue.attachSale(sale);
  const reservations = new ReservationService(backends, queue, config, db);
  const balance = new BalanceService(db, queue);
  const payments = new PaymentService(db, reservations, queue, log, (reason) => void coordinator.enterSql(reason));
  const admin = new AdminService({
    db, redis, log, metrics, mode, backends, writeBehind, liveConcerts, clock,
    breakerState: () => coordinator.breakerState(),
    rebuild: () => coordinator.rebuildNow(),
  });
  const consoleService = new ConsoleService({
    log, mode, backends, catalog, admin, liveConcerts, clock,
    intervalMs: config.consoleSampleSeconds * 1000,
  });
  return { tokens, identity, catalog, queue, joinProof, sale, reservations, balance, payments, admin, console: consoleService };
}

type Services = ReturnType<typeof buildServices>;

/** The background jobs other than the coordinator and the write-behind. */
function buildJobs({ config, db, log, metrics, mode, clock, instanceId }: Root, { liveConcerts }: ConcertReads, backends: Backends,
  { sale, catalog }: Services) {
  const drawJob = new DrawJob(sale, backends, log, {
    intervalMs: Math.min(250, config.admissionTickMs), clock, load: (id) => catalog.ensureLoaded(id, clock()),
  });
  const sweeper = new HoldSweeper(db, log, {
    clock,
    // A join claim is read back while the token the join was made with could still come with it.
    joinReplayKeepMs: 1000 * Math.max(config.joinReplaySeconds, config.userTokenTtlSeconds, config.queueTokenTtlSeconds),
  });
  const ticker = new AdmissionTicker(backends, log, metrics, { tickMs: config.admissionTickMs, concerts: liveConcerts });
  const sampler = new ConsoleSampler(backends, mode, log, {
    intervalMs: config.consoleSampleSeconds * 1000, owner: instanceId, concerts: liveConcerts, clock,
  });
  return { drawJob, sweeper, ticker, sampler };
}

/** Every mode change is logged and counted. */
function reportModeChange(log: Logger, metrics: Metrics) {
  return function onModeChange({ from, to, reason }: { from: Mode; to: Mode; reason: string }): void {
    log.warn('mode changed', { from, to, reason });
    metrics.modeTransitions.inc({ to });
  };
}
