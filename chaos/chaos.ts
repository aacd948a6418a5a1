/**
 * One chaos run: a Sentinel topology, a private PostgreSQL, two instances of the service as
 * processes, N fans of traffic, and a nemesis breaking things on a seeded schedule. At the end
 * everything is healed, the traffic stopped, the service given time to settle, every place and
 * paid reservation asked about once more, SQL read, and the history judged (checker.ts).
 *
 * Replay: the fault schedule and every fan's choices come from --seed (prng.ts). The timing of
 * concurrent requests is not replayable, so a replay repeats the schedule, not the interleaving.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { freePorts, startSentinelTopology, type Topology } from '../sentinel/topology.ts';
import { check, type CheckConfig, type SqlFacts } from './checker.ts';
import { ChaosClient } from './client.ts';
import { findPgBin, killPostmaster, startPgCluster, type PgCluster } from './cluster.ts';
import { Fans } from './fans.ts';
import { checkOpening, OpeningFans } from './opening.ts';
import { emptyHistory, FAULT_KINDS, RunClock, type FaultKind, type History } from './history.ts';
import { Nemesis, planFaults } from './nemesis.ts';
import { Rng, randomSeed } from './prng.ts';
import {
  opsByStatus, readinessPerFault, unavailability, violationReports, writeReport, type ChaosReport,
} from './report.ts';
import { adminStatus, createConcert, readyz, REPO_ROOT, startApps, type AppInstance, type ConcertSetup } from './services.ts';

export interface ChaosOptions {
  seed?: number;
  minutes?: number;
  faults?: FaultKind[];
  fans?: number;
  /**
   * The master's min-replicas-to-write (default 2: every replica). With 1, the old master of a
   * SENTINEL FAILOVER keeps taking writes (and answering reads) with the other replica attached
   * until the sentinels demote it, a second in which two masters serve.
   */
  minReplicasToWrite?: number;
  /** Where the JSON goes; default chaos/results. Null: write nothing. */
  outDir?: string | null;
  log?: (line: string) => void;
}

/** Setup failed (exit code 2), as opposed to a violation found (exit code 1). */
export class SetupError extends Error {}

/** The service's settings for the run: short enough that a minute exercises them. */
export const SERVICE_SETTINGS = {
  REDIS_TIMEOUT_MS: '500',
  ADMISSION_TICK_MS: '200',
  HOLD_TTL_SECONDS: '15',
  QUEUE_GRACE_SECONDS: '20',
  DEFAULT_MAX_ACTIVE: '15',
  DEFAULT_ADMIT_PER_SECOND: '5',
  DEFAULT_ACTIVE_TTL_SECONDS: '45',
  RATE_LIMIT_PER_SECOND: '0',
  JOIN_REPLAY_SECONDS: '120',
  // High enough that fans keep buying through a run, low enough that some reach it under faults.
  MAX_TICKETS_PER_USER: '10',
  TOKEN_RATE_LIMIT_PER_MINUTE: '0',
  // Fans solve a challenge for every new place, so joins under faults go through the check
  // (and its single-use record in Redis and SQL); 8 bits cost a scripted fan well under 1 ms.
  JOIN_POW_BITS: '8',
  LOG_LEVEL: 'warn',
} as const;

const INSTANCES = 2;
const SEATS_PER_SCHEDULE = 40;
const PRICE = 10_000;
const FIRST_USER_ID = 1_000;
const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

export function pgAvailable(): boolean {
  return findPgBin() !== undefined;
}

export async function runChaos(options: ChaosOptions = {}): Promise<ChaosReport> {
  const seed = options.seed ?? randomSeed();
  const minutes = options.minutes ?? 2;
  const faultKinds = options.faults ?? [...FAULT_KINDS];
  const fanCount = options.fans ?? 60;
  const log = options.log ?? ((line: string) => process.stderr.write(`chaos: ${line}\n`));
  const outDir = options.outDir === undefined ? join(REPO_ROOT, 'chaos', 'results') : options.outDir;
  const runMs = Math.round(minutes * 60_000);
  const wallStart = Date.now();
  log(`seed ${seed} (replay with --seed ${seed}); ${minutes} min, ${fanCount} fans, faults ${faultKinds.join(',') || 'none'}`);

  const runDir = mkdtempSync(join(tmpdir(), `chaos-run-${seed}-`));
  const cleanups: (() => Promise<void>)[] = [];
  let pgCluster: PgCluster | undefined;
  // Ctrl-C or a plain kill: stop everything this run started (PostgreSQL, Redis, the apps).
  const onSigint = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => {
      rmSync(runDir, { recursive: true, force: true });
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  };
  const lastResort = () => { if (pgCluster) killPostmaster(pgCluster); };
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  process.once('exit', lastResort);
  const cleanup = async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try { await fn(); } catch (err) { log(`cleanup step failed: ${(err as Error).message}`); }
    }
  };

  let keepLogs = false;
  try {
    // ---- setup ---------------------------------------------------------------------------
    let topology: Topology;
    let apps: AppInstance[];
    const concerts: ConcertSetup[] = [];
    const adminKey = randomBytes(16).toString('hex');
    const maxActive: Record<number, number> = {};
    let opening = { concertId: 0, saleStartsAt: '', commitment: '', fault: null as string | null };
    try {
      topology = await startSentinelTopology({ downAfterMs: 1_000, failoverTimeoutMs: 5_000, minReplicasToWrite: options.minReplicasToWrite ?? 2 });
      cleanups.push(() => topology.stopAll());
      log(`redis: nodes ${topology.nodes.map((n) => n.port).join(',')}, sentinels ${topology.sentinels.map((s) => s.port).join(',')}`);
      const [pgPort, ...appPorts] = await freePorts(1 + INSTANCES);
      pgCluster = await startPgCluster(pgPort!);
      const cluster = pgCluster;
      cleanups.push(() => cluster.destroy());
      log(`postgres: ${cluster.url} (data ${cluster.dir})`);
      const env: Record<string, string> = {
        ...SERVICE_SETTINGS,
        REDIS_SENTINELS: topology.sentinels.map((s) => `${s.host}:${s.port}`).join(','),
        REDIS_MASTER_NAME: topology.masterName,
        REDIS_CLUSTER_NODES: '',
        REDIS_URL: '',
        DATABASE_URL: cluster.url,
        JWT_SECRET: randomBytes(48).toString('base64url'),
        ADMIN_API_KEY: adminKey,
      };
      try {
        apps = await startApps(INSTANCES, appPorts, runDir, env);
      } catch (err) {
        keepLogs = true;
        throw err;
      }
      cleanups.push(async () => { await Promise.all(apps.map((a) => a.stop())); });
      log(`apps: ${apps.map((a) => a.baseUrl).join(' ')} (logs in ${runDir})`);
      // Enough seats that the sale does not sell out during the run (about 4 payments a second).
      const schedules = Math.min(100, Math.max(4, Math.ceil(minutes * 8) + 2));
      for (let i = 0; i < 2; i++) {
        const c = await createConcert(apps[0]!, adminKey, `chaos ${seed} #${i + 1}`, schedules, SEATS_PER_SCHEDULE, PRICE);
        concerts.push(c);
        maxActive[c.id] = Number(SERVICE_SETTINGS.DEFAULT_MAX_ACTIVE);
      }
      log(`concerts: ${concerts.map((c) => `${c.id} (${c.schedules.length} × ${SEATS_PER_SCHEDULE} seats)`).join(', ')}`);
      // A scheduled sale that opens during the run, with a planned fault just before the opening.
      const planned = planFaults(Rng.of(seed, 'nemesis'), faultKinds, runMs).find((f) => f.atMs >= 12_000);
      const openingOffsetMs = planned ? planned.atMs + Math.min(1_000, planned.durationMs / 2) : Math.round(runMs / 3);
      const saleStartsAt = new Date(Date.now() + 1_000 + openingOffsetMs).toISOString();
      const c = await createConcert(apps[0]!, adminKey, `chaos ${seed} opening`, 2, SEATS_PER_SCHEDULE, PRICE, saleStartsAt);
      opening = { concertId: c.id, saleStartsAt, commitment: c.commitment ?? '', fault: planned?.kind ?? null };
      log(`scheduled sale: concert ${c.id} opens ${saleStartsAt}${planned ? ` (during ${planned.kind})` : ''}`);
    } catch (err) {
      keepLogs = true;
      throw new SetupError(`setup failed: ${(err as Error).message}`);
    }

    // ---- run -----------------------------------------------------------------------------
    const history: History = emptyHistory();
    const clock = new RunClock();
    const startedAt = new Date(clock.epoch0).toISOString();
    const client = new ChaosClient(() => apps.map((a) => a.baseUrl), history, clock, 3_000);
    const fans = new Fans(client, { fans: fanCount, firstUserId: FIRST_USER_ID, concerts, seed, maxPollMs: 3_000 });
    const nemesis = new Nemesis({ topology, pg: pgCluster!, apps, adminKey, history, clock, log });
    // A crashed instance is restarted after a second, as a supervisor would; the crash is a finding.
    let supervising = true;
    for (const app of apps) {
      app.onCrash = (a, how) => {
        const rec = { instance: a.index, atMs: clock.now(), how, logTail: a.logTail(40), restartedMs: null as number | null };
        history.crashes.push(rec);
        log(`app${a.index} exited unexpectedly (${how}); restarting it`);
        void (async () => {
          // Like a supervisor with a restart delay: again every second until it stays up.
          for (let attempt = 1; supervising && !a.running; attempt++) {
            await sleep(1_000);
            if (!supervising || a.running) return;
            try {
              await a.start();
              rec.restartedMs = clock.now();
            } catch (err) {
              if (attempt % 5 === 1) log(`app${a.index} restart failed (attempt ${attempt}): ${(err as Error).message.split('\n')[0]}`);
            }
          }
        })();
      };
    }
    cleanups.push(async () => { supervising = false; });
    const plan = planFaults(Rng.of(seed, 'nemesis'), faultKinds, runMs);
    log(`fault plan: ${plan.map((f) => `${f.kind}@${(f.atMs / 1000).toFixed(1)}s/${(f.durationMs / 1000).toFixed(1)}s`).join(', ') || 'none'}`);

    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const tick = clock.now();
        await Promise.all(apps.map(async (app) => {
          const downBefore = app.expectedDown;
          const invokeMs = clock.now();
          const [status, st] = await Promise.all([readyz(app, 2_500), adminStatus(app, adminKey, 2_000)]);
          const completeMs = clock.now();
          history.ready.push({ instance: app.index, invokeMs, completeMs, status, expectedDown: downBefore || app.expectedDown });
          history.status.push({ instance: app.index, atMs: completeMs, mode: st?.mode ?? null, pending: st?.pending ?? null, lagSeconds: st?.lagSeconds ?? null });
        }));
        await sleep(Math.max(0, 1_000 - (clock.now() - tick)));
      }
    })();
    cleanups.push(async () => { sampling = false; await sampler; });

    fans.start();
    cleanups.push(() => fans.stop());
    const openingHistory = emptyHistory();
    const openingFans = new OpeningFans(new ChaosClient(() => apps.map((a) => a.baseUrl), openingHistory, clock, 3_000), {
      concertId: opening.concertId, firstUserId: FIRST_USER_ID + fanCount + 1_000, fans: OPENING_FANS, lateFans: OPENING_LATE_FANS, seed,
      now: () => clock.now(), openingMs: clock.fromWall(opening.saleStartsAt), maxPollMs: 3_000,
    });
    openingFans.start();
    cleanups.push(() => openingFans.stop());
    const t0 = clock.now();
    const nemesisDone = nemesis.run(plan, t0);
    await sleep(runMs);
    await nemesisDone;
    nemesis.stop();
    await nemesis.healAll().catch((err) => log(`final heal failed: ${(err as Error).message}`));
    log('traffic: stopping');
    await fans.stop();
    await openingFans.stop();
    const trafficEndMs = clock.now();

    // ---- settle --------------------------------------------------------------------------
    // Places stay alive meanwhile: the harness polls them as their fans would.
    const settleNotes: string[] = [];
    const settleStart = clock.now();
    let settled = false;
    let lastBeat = 0;
    const heartbeat = async (phase: 'settle' | 'final') => {
      await Promise.all(fans.fans.filter((f) => f.queueToken).map((f) => f.poll(phase)));
    };
    const settleDeadline = Date.now() + 60_000;
    while (Date.now() < settleDeadline) {
      if (clock.now() - lastBeat > 3_000) { lastBeat = clock.now(); await heartbeat('settle'); }
      const states = await Promise.all(apps.map(async (a) => ({ ready: await readyz(a, 2_000), st: await adminStatus(a, adminKey) })));
      if (states.every((s) => s.ready === 200 && s.st?.mode === 'redis' && (s.st.pending ?? 1) === 0)) { settled = true; break; }
      await sleep(500);
    }
    if (!settled) {
      const states = await Promise.all(apps.map(async (a) => `app${a.index} ready ${await readyz(a, 2_000)} ${JSON.stringify(await adminStatus(a, adminKey))}`));
      settleNotes.push(`not settled within 60 s: ${states.join('; ')}`);
    }
    const settleMs = clock.now() - settleStart;
    log(`settle: ${settled ? 'ok' : 'NOT settled'} after ${(settleMs / 1000).toFixed(1)} s`);

    // ---- final reads ---------------------------------------------------------------------
    const retrying = async <T extends { op: { status: number } }>(fn: () => Promise<T>, ms = 10_000): Promise<T> => {
      const until = Date.now() + ms;
      let r = await fn();
      while ((r.op.status === 503 || r.op.status === 0) && Date.now() < until) { await sleep(300); r = await fn(); }
      return r;
    };
    await Promise.all(fans.fans.filter((f) => f.queueToken).map((f) => retrying(() => f.poll('final'))));
    await Promise.all(fans.fans.filter((f) => f.paid.length > 0).map(async (f) => {
      const tok = await retrying(() => f.call('token', 'POST', '/v1/tokens', { body: { userId: f.userId } }, 'final'));
      const token = tok.op.status === 201 ? String(tok.body.token) : undefined;
      for (const p of f.paid) {
        await retrying(() => f.call('readRes', 'GET', `/v1/reservations/${p.reservationId}`, { token, req: { reservationId: p.reservationId } }, 'final'));
      }
    }));

    // ---- SQL facts -----------------------------------------------------------------------
    const sqlFacts = await readSqlFacts(pgCluster!.url, clock, FIRST_USER_ID, FIRST_USER_ID + fanCount - 1);
    sampling = false;
    await sampler;

    // ---- judge ---------------------------------------------------------------------------
    const cfg: CheckConfig = {
      graceMs: Number(SERVICE_SETTINGS.QUEUE_GRACE_SECONDS) * 1000,
      graceMarginMs: 3_000,
      clockMarginMs: 1_000,
      activeTtlMs: Number(SERVICE_SETTINGS.DEFAULT_ACTIVE_TTL_SECONDS) * 1000,
      maxActive,
      readyzMaxMs: 2_000,
      replayMs: Number(SERVICE_SETTINGS.JOIN_REPLAY_SECONDS) * 1000,
      maxTickets: Number(SERVICE_SETTINGS.MAX_TICKETS_PER_USER),
      concertOfSchedule: Object.fromEntries(concerts.flatMap((c) => c.schedules.map((s) => [s.id, c.id]))),
    };
    const result = check(history, sqlFacts, cfg);
    // The opening's rules, and no 5xx but 503 with Retry-After on its requests.
    const openingFacts = await readOpeningFacts(pgCluster!.url, apps, opening, clock);
    const openingViolations = [
      ...checkOpening(openingFans.fans, openingFacts, cfg),
      ...openingHistory.ops.filter((o) => o.status >= 500 && (o.status !== 503 || !o.retryAfter)).map((o) => ({
        invariant: 'opening-draw' as const, message: `pre-queue ${o.op} answered ${o.status} ${o.code ?? ''} ${o.error ?? ''}`.trim(), fans: [o.userId], opIds: [],
      })),
    ];
    result.violations.push(...openingViolations);
    result.counts['opening-draw'] += openingViolations.length;
    log(`opening: ${openingFacts.published?.tickets.length ?? 0} drawn of ${openingFans.fans.filter((f) => f.ticket).length} pre-queued`
      + ` (fault at the opening: ${opening.fault ?? 'none'}); ${openingViolations.length} violations`);
    const byKind: Record<string, number> = {};
    for (const f of history.faults) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
    const modes: ChaosReport['modes'] = [];
    const lastMode = new Map<number, string | null>();
    for (const s of history.status) {
      if (lastMode.get(s.instance) === s.mode) continue;
      lastMode.set(s.instance, s.mode);
      modes.push({ instance: s.instance, atMs: Math.round(s.atMs), mode: s.mode });
    }
    const violations = violationReports(result, history);
    const report: ChaosReport = {
      seed, minutes, fans: fanCount, faultKinds, startedAt,
      wallSeconds: (Date.now() - wallStart) / 1000,
      ops: opsByStatus(history),
      faults: { byKind, list: history.faults },
      unavailability: unavailability(history, trafficEndMs),
      readiness: readinessPerFault(history),
      modes,
      settle: { ok: settled, ms: Math.round(settleMs), notes: settleNotes },
      crashes: history.crashes,
      stats: result.stats,
      violationCounts: result.counts,
      violations,
      notes: [],
      files: {},
      ok: violations.length === 0,
    };
    if (!report.ok) keepLogs = true;
    if (outDir) {
      writeReport(report, outDir, history, openingHistory);
      if (keepLogs) {
        const base = report.files.summary!.replace(/\.json$/, '');
        for (const a of apps) if (existsSync(a.logFile)) copyFileSync(a.logFile, `${base}-app${a.index}.log`);
        report.notes.push(`service logs copied next to ${report.files.summary}`);
      }
    }
    return report;
  } catch (err) {
    if (keepLogs && outDir) {
      try {
        mkdirSync(outDir, { recursive: true });
        for (let i = 0; i < INSTANCES; i++) {
          const f = join(runDir, `app${i}.log`);
          if (existsSync(f)) copyFileSync(f, join(resolve(outDir), `setup-failure-${seed}-app${i}.log`));
        }
      } catch { /* best effort */ }
    }
    throw err;
  } finally {
    await cleanup();
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
    process.removeListener('exit', lastResort);
    rmSync(runDir, { recursive: true, force: true });
  }
}

const OPENING_FANS = 24;
const OPENING_LATE_FANS = 6;

async function readOpeningFacts(url: string, apps: AppInstance[], opening: { concertId: number; saleStartsAt: string; commitment: string },
  clock: RunClock) {
  let published = null;
  for (let attempt = 0; attempt < 20 && !published; attempt++) {
    try {
      const res = await fetch(`${apps[attempt % apps.length]!.baseUrl}/v1/concerts/${opening.concertId}/draw`, { signal: AbortSignal.timeout(3_000) });
      if (res.status === 200) published = await res.json() as { seed: string; commitment: string; tickets: string[] };
      else await res.arrayBuffer();
    } catch { /* retried */ }
    if (!published) await sleep(500);
  }
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  pool.on('error', () => {});
  try {
    const pre = (await pool.query('select user_id, ticket, drawn_seq, status from prequeue_entries where concert_id = $1', [opening.concertId])).rows;
    const entries = (await pool.query('select seq, user_id from queue_entries where concert_id = $1', [opening.concertId])).rows;
    return {
      commitment: opening.commitment, published, openingMs: clock.fromWall(opening.saleStartsAt),
      prequeue: pre.map((r: any) => ({ userId: Number(r.user_id), ticket: String(r.ticket), drawnSeq: r.drawn_seq === null ? null : Number(r.drawn_seq), status: String(r.status) })),
      entries: entries.map((r: any) => ({ seq: Number(r.seq), userId: Number(r.user_id) })),
    };
  } finally {
    await pool.end();
  }
}

async function readSqlFacts(url: string, clock: RunClock, firstUser: number, lastUser: number): Promise<SqlFacts> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  try {
    const q = async <T>(text: string, params: unknown[] = []): Promise<T[]> => (await pool.query(text, params)).rows as T[];
    const payments = await q<any>('select id, reservation_id, user_id, schedule_id, seat_number from payments');
    const users = await q<any>(
      `select u.id, u.balance, coalesce((select sum(l.amount) from ledger l where l.user_id = u.id), 0) as total
       from users u where u.id between $1 and $2`, [firstUser, lastUser]);
    const entries = await q<any>('select concert_id, seq, user_id, status, admitted_at from queue_entries');
    return {
      payments: payments.map((p) => ({
        id: String(p.id), reservationId: String(p.reservation_id), userId: Number(p.user_id),
        scheduleId: Number(p.schedule_id), seatNumber: Number(p.seat_number),
      })),
      users: users.map((u) => ({ id: Number(u.id), balance: Number(u.balance), ledgerSum: Number(u.total) })),
      queueEntries: entries.map((e) => ({
        concertId: Number(e.concert_id), seq: Number(e.seq), userId: Number(e.user_id), status: String(e.status),
        admittedAtMs: e.admitted_at === null ? null : clock.fromWall(Number(e.admitted_at)),
      })),
    };
  } finally {
    await pool.end();
  }
}
