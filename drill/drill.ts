/**
 * A failover drill: the service, in process and in Sentinel mode, under steady traffic from many
 * users, while the Redis master is killed, frozen or switched. What it measures is in
 * DrillReport; drill/run.ts is the command line, tests/drill.test.ts runs short ones.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.ts';
import { createContext } from '../src/context.ts';
import { createApp } from '../src/http/app.ts';
import { createLogger } from '../src/logger.ts';
import { createRedis } from '../src/redis/connection.ts';
import { openDatabase, sqlKind } from '../src/store/connect.ts';
import { migrateToLatest } from '../src/store/migrate.ts';
import { sendCommand, type HostPort } from '../sentinel/topology.ts';
import { mulberry32 } from '../chaos/prng.ts';
import { DrillClient, ok, retryable, WRITE_OPS, type Outcome } from './client.ts';
import { localTopology, ownTopology, roleOf, type DrillTarget } from './target.ts';
import { Traffic, type HoldRecord, type PlaceRecord } from './traffic.ts';

export type Scenario = 'kill' | 'freeze' | 'switch';
export const SCENARIOS: readonly Scenario[] = ['kill', 'freeze', 'switch'];

export interface DrillOptions {
  scenario: Scenario;
  /** Seconds of traffic; the fault comes after `faultAfterSec`. */
  durationSec: number;
  users: number;
  faultAfterSec?: number;
  /** How long the master stays frozen (freeze). Default 8 s. */
  freezeMs?: number;
  /** A running topology's sentinels (127.0.0.1 only); otherwise the drill starts its own. */
  sentinels?: HostPort[];
  masterName?: string;
  /** A target built by the caller (the compose test); wins over `sentinels`. */
  target?: DrillTarget;
  /** postgres://... or sqlite:...; default a fresh SQLite file, removed afterwards. */
  databaseUrl?: string;
  /** Extra service environment (REDIS_TIMEOUT_MS, ...). */
  env?: Record<string, string>;
  /** Wait (up to 30 s) for the old master to serve as a replica; short test drills skip it. Default true. */
  measureRejoin?: boolean;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** Seed of the traffic's random choices (printed in the report); default a fresh one. */
  seed?: number;
}

export interface Transition { atMs: number; from: string; to: string; reason: string }

export interface DrillReport {
  scenario: Scenario;
  startedAt: string;
  target: string;
  database: string;
  users: number;
  durationSec: number;
  config: { redisTimeoutMs: number; downAfterMs: number | null; freezeMs: number | null };
  fault: {
    oldMaster: string;
    newMaster: string | null;
    /** Fault → the sentinels name a new master that says it is master. */
    failoverMs: number | null;
    /** Fault → /admin/status of the service names the new master. */
    statusFollowedMs: number | null;
    /** Restart (kill), SIGCONT (freeze) or the failover command (switch) → the old master serves as a replica of the new one. */
    replicaRejoinMs: number | null;
    rejoinFrom: 'restart' | 'thaw' | 'failover';
    notes: string[];
  };
  requests: { total: number; ok: number; byOp: Record<string, { ok: number; errors: Record<string, number> }> };
  errorsByCode: Record<string, number>;
  writeStall: {
    /** Longest gap between successful writes of any kind, and where it sat relative to the fault. */
    longestMs: number; fromMs: number; toMs: number;
    /** Same, for the Redis-owned writes only (joins, holds). */
    queueAndHoldsMs: number; queueAndHoldsFromMs: number;
  };
  queue: { acknowledged: number; left: number; done: number; missingObserved: number; restored: number; lost: number;
    /** Longest time a restored place answered as gone. */
    longestMissingMs: number;
    /** Lost ones that SQL still lists as waiting/active (written behind before the failover): a rebuild would restore them. */
    lostButInSql: number;
    lostExamples: { userId: number; seq: number; ackMs: number; missingMs: number | null; why: string }[] };
  holds: { acknowledged: number; paid: number; released: number; missingObserved: number; restored: number; lost: number;
    longestMissingMs: number; lostButInSql: number;
    lostExamples: { reservationId: string; ackMs: number; why: string }[] };
  payments: { acknowledged: number; lost: number; unresolved: number; sqlTotal: number };
  doubleSales: number;
  ledgerMismatches: number;
  modeTransitions: Transition[];
  statusChanges: { atMs: number; mode: string; role: string; master: string | null }[];
  final: { mode: string; statusMaster: string | null; sentinelMaster: string | null };
  missingFeatures: string[];
  /** Requests per second around the fault: t is seconds from the fault. */
  timeline: { t: number; ok: number; errors: number }[];
  verdict: { ok: boolean; failures: string[] };
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

async function withDeadline<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls until the node at oldPort is a connected replica of the current master. */
async function waitForReplica(target: DrillTarget, oldPort: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const role = await sendCommand(oldPort, ['ROLE'], 300);
      const master = await target.currentMaster();
      if (Array.isArray(role) && role[0] === 'slave' && Number(role[2]) === master.port && role[3] === 'connected') return true;
    } catch {
      // not up yet, or still frozen
    }
    await sleep(50);
  }
  return false;
}

/** Longest gap between consecutive times within [from, to]; the edges count as events. */
function longestGap(times: number[], from: number, to: number): { ms: number; start: number } {
  const sorted = times.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  let prev = from;
  let best = { ms: 0, start: from };
  for (const t of [...sorted, to]) {
    if (t - prev > best.ms) best = { ms: t - prev, start: prev };
    prev = t;
  }
  return best;
}

export async function runDrill(opts: DrillOptions): Promise<DrillReport> {
  const log = opts.log ?? (() => {});
  const runId = `drill-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const freezeMs = opts.freezeMs ?? 8_000;
  const faultAfterMs = (opts.faultAfterSec ?? Math.min(10, Math.max(2, opts.durationSec / 4))) * 1000;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const notes: string[] = [];

  try {
    log(`starting ${opts.target ? opts.target.description : opts.sentinels ? 'against the running topology' : 'own sentinel topology'}`);
    const target = opts.target ?? (opts.sentinels
      ? await localTopology(opts.sentinels, opts.masterName ?? 'mymaster')
      : await ownTopology());
    cleanups.push(() => target.close());

    let databaseUrl = opts.databaseUrl;
    const freshSqlite = !databaseUrl;
    if (!databaseUrl) {
      const file = join(tmpdir(), `${runId}.db`);
      databaseUrl = `sqlite:${file}`;
      cleanups.push(() => { for (const s of ['', '-wal', '-shm']) rmSync(file + s, { force: true }); });
    }
    const db = openDatabase(databaseUrl);
    cleanups.push(() => db.destroy());
    await migrateToLatest(db);

    const master0 = await target.currentMaster();
    if (freshSqlite && target.kind !== 'own') {
      // A fresh database numbers concerts from 1 again: keys of an earlier run would collide.
      const size = await sendCommand(master0.port, ['DBSIZE'], 1000);
      if (Number(size) > 0) {
        await sendCommand(master0.port, ['FLUSHALL'], 5000);
        notes.push(`flushed ${size} keys left on ${master0.host}:${master0.port} by an earlier run (fresh SQLite database)`);
      }
    }

    const adminKey = randomBytes(16).toString('hex');
    const config = loadConfig({
      JWT_SECRET: randomBytes(32).toString('hex'),
      ADMIN_API_KEY: adminKey,
      LOG_LEVEL: 'silent',
      REDIS_SENTINELS: target.sentinels.map((s) => `${s.host}:${s.port}`).join(','),
      REDIS_MASTER_NAME: target.masterName,
      DATABASE_URL: databaseUrl,
      // Every drill user comes from 127.0.0.1: the per-client limit would measure itself.
      RATE_LIMIT_PER_SECOND: '0',
      TOKEN_RATE_LIMIT_PER_MINUTE: '0',
      ADMISSION_TICK_MS: '100',
      DEFAULT_ADMIT_PER_SECOND: String(Math.max(20, Math.ceil(opts.users / 2))),
      DEFAULT_MAX_ACTIVE: String(Math.max(10, Math.ceil(opts.users / 3))),
      ...opts.env,
    });
    const redis = createRedis(config.redis, { timeoutMs: config.redisTimeoutMs });
    // disconnect(), never quit(): quit() hangs while the failover detector holds its subscriptions.
    cleanups.push(() => redis.disconnect());
    await withDeadline('first redis ping', 10_000, redis.ping());

    const ctx = createContext(config, { db, redis }, { log: createLogger(drillLogLevel()) });
    const app = createApp(ctx);
    ctx.startJobs();
    cleanups.push(() => ctx.stopJobs());
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch });
    cleanups.push(() => server.stop(true));
    const api = new DrillClient(`http://127.0.0.1:${server.port}`, adminKey);

    const transitions: { at: number; from: string; to: string; reason: string }[] = [];
    ctx.mode.on('change', (e: { from: string; to: string; reason: string }) => transitions.push({ at: Date.now(), ...e }));

    // The concert: enough seats that users seldom race for one.
    const seats = Math.max(200, opts.users * 20);
    const created = await api.call('status', 'POST', '/admin/concerts', {
      admin: true,
      body: {
        title: `drill ${runId}`,
        schedules: [30, 31, 32, 33].map((days) => ({ date: new Date(Date.now() + days * 86_400_000).toISOString(), seats, price: 10_000 })),
      },
    });
    if (created.status !== 201) throw new Error(`could not create the drill concert: ${created.status} ${JSON.stringify(created.body)}`);
    const concertId: number = created.body.id;
    const schedules = (created.body.schedules as { id: number; capacity: number; price: number }[]);

    // /admin/status, as an operator would watch it.
    const statusChanges: { at: number; mode: string; role: string; master: string | null }[] = [];
    let watching = true;
    const watcher = (async () => {
      let last = '';
      while (watching) {
        const r = await api.call('status', 'GET', '/admin/status', { admin: true });
        if (ok(r)) {
          const s = { at: r.at, mode: String(r.body.mode), role: String(r.body.redis?.role), master: r.body.redis?.master ?? null };
          const key = `${s.mode}|${s.role}|${s.master}`;
          if (key !== last) { statusChanges.push(s); last = key; }
        }
        await sleep(200);
      }
    })();
    cleanups.push(async () => { watching = false; await watcher; });

    const seed = opts.seed ?? Date.now() % 1_000_000;
    log(`traffic seed ${seed}`);
    const random = mulberry32(seed);
    const traffic = new Traffic(api, {
      runId, users: opts.users, firstUserId: 1 + Math.floor(random() * 1e9), concertId, schedules, random,
      pollEveryMs: 300, patienceMs: 15_000, leaveRatio: 0.05, releaseRatio: 0.1, payRetryMs: 20_000,
    });
    const trafficStart = Date.now();
    log(`traffic: ${opts.users} users on concert ${concertId} for ${opts.durationSec} s; ${opts.scenario} after ${faultAfterMs / 1000} s`);
    traffic.start();
    let trafficStopped = false;
    cleanups.push(async () => { if (!trafficStopped) await traffic.stop(); });

    await sleep(faultAfterMs);
    const oldMaster = await target.currentMaster();
    const node = target.node(oldMaster.port);
    const faultAt = Date.now();
    let newMaster: HostPort | null = null;
    let failoverMs: number | null = null;
    let replicaRejoinMs: number | null = null;
    const rejoinFrom = opts.scenario === 'kill' ? 'restart' : opts.scenario === 'freeze' ? 'thaw' : 'failover';

    const awaitNewMaster = async () => {
      try {
        newMaster = await target.waitForNewMaster(oldMaster.port, 30_000);
        failoverMs = Date.now() - faultAt;
        log(`new master ${newMaster.host}:${newMaster.port} after ${failoverMs} ms`);
      } catch (err) {
        notes.push(`no failover: ${(err as Error).message}`);
      }
    };
    const measureRejoin = async (from: number) => {
      if (opts.measureRejoin === false) { notes.push('replica rejoin not measured (measureRejoin: false)'); return; }
      if (await waitForReplica(target, oldMaster.port, 30_000)) replicaRejoinMs = Date.now() - from;
      else notes.push(`the old master ${oldMaster.port} did not serve as a replica within 30 s`);
      log(`old master ${oldMaster.port} serves as a replica after ${replicaRejoinMs ?? '—'} ms`);
    };

    log(`fault: ${opts.scenario} master ${oldMaster.host}:${oldMaster.port}`);
    const faultDone = (async () => {
      if (opts.scenario === 'kill') {
        await node.kill();
        await awaitNewMaster();
        // Only once another master is elected: an empty node back too early would be followed as master.
        const restartAt = Date.now();
        await node.restart();
        await measureRejoin(restartAt);
      } else if (opts.scenario === 'freeze') {
        await node.freeze();
        const elected = awaitNewMaster();
        await sleep(freezeMs);
        const thawAt = Date.now();
        await node.thaw();
        await elected;
        await measureRejoin(thawAt);
      } else {
        const failoverAt = Date.now();
        await target.failover();
        await awaitNewMaster();
        await measureRejoin(failoverAt);
      }
    })().catch((err) => { notes.push(`fault step failed: ${(err as Error).message}`); });

    const trafficEnd = trafficStart + opts.durationSec * 1000;
    await sleep(Math.max(0, trafficEnd - Date.now()));
    // The fault's own steps (restart, rejoin) may outlast the traffic; they are bounded (30 s each).
    await faultDone;
    log('stopping traffic');
    await traffic.stop();
    trafficStopped = true;
    const stoppedAt = Date.now();

    // Settle: back on Redis, write-behind drained, then ask about every acknowledged thing.
    const settleDeadline = Date.now() + 30_000;
    while (ctx.mode.current !== 'redis' && Date.now() < settleDeadline) await sleep(100);
    if (ctx.mode.current !== 'redis') notes.push(`the service was still in ${ctx.mode.current} mode 30 s after the traffic stopped`);
    await withDeadline('write-behind drain', 15_000, ctx.writeBehind.drainOnce()).catch((err) => notes.push(String((err as Error).message)));

    const { places, holds, payments, unresolvedPayments, missingFeatures } = traffic.ledger;
    const askAgain = async (fn: () => Promise<Outcome>): Promise<Outcome> => {
      const deadline = Date.now() + 10_000;
      let r = await fn();
      while (retryable(r) && Date.now() < deadline) { await sleep(200); r = await fn(); }
      return r;
    };
    const checkPlace = async (p: PlaceRecord) => {
      if (!['live', 'missing', 'restored'].includes(p.fate)) return;
      const r = await askAgain(() => api.call('status', 'GET', '/v1/queue/me', { token: p.token }));
      if (ok(r)) {
        if (p.fate === 'missing') { p.fate = 'restored'; p.restoredAt = r.at; }
      } else if (r.status === 401) {
        if (p.fate !== 'missing') { p.missingSince = r.at; p.missingCode = r.code ?? undefined; p.missingMessage = `at the end: ${r.message}`; }
        p.fate = 'lost';
      } else {
        notes.push(`place of user ${p.userId} (entry ${p.seq}) could not be checked: ${r.status} ${r.code}`);
      }
    };
    const checkHold = async (h: HoldRecord) => {
      if (!['live', 'missing', 'restored'].includes(h.fate) || Date.now() >= h.expiresAt - 1000) return;
      const r = await askAgain(() => api.call('status', 'GET', `/v1/reservations/${h.reservationId}`, { token: h.token }));
      if (ok(r) && r.body.status === 'held') {
        if (h.fate === 'missing') { h.fate = 'restored'; h.restoredAt = r.at; }
      } else if (ok(r) && r.body.status === 'paid') {
        h.fate = 'paid'; // paid by a payment whose answer did not come back: not lost
      } else if ((ok(r) || r.status === 404) && Date.now() < h.expiresAt) {
        if (h.fate !== 'missing') h.missingStatus = `at the end: ${ok(r) ? r.body.status : '404'}`;
        h.fate = 'lost';
      } else if (r.status === 401) {
        // The queue token ended (the user paid another seat or left): the hold is read from SQL.
        const row = await db.selectFrom('reservations').select(['status', 'expires_at']).where('id', '=', h.reservationId).executeTakeFirst();
        if (!row || (row.status !== 'held' && row.status !== 'paid')) {
          h.missingStatus = `at the end: SQL ${row?.status ?? 'has no row'}`;
          h.fate = 'lost';
        }
      } else {
        notes.push(`hold ${h.reservationId} could not be checked: ${r.status} ${r.code}`);
      }
    };
    for (let i = 0; i < places.length; i += 50) await Promise.all(places.slice(i, i + 50).map(checkPlace));
    for (let i = 0; i < holds.length; i += 50) await Promise.all(holds.slice(i, i + 50).map(checkHold));

    // SQL is the judge of money and sales.
    const ackedIds = payments.map((p) => p.paymentId);
    const found = new Set<string>();
    for (let i = 0; i < ackedIds.length; i += 500) {
      const rows = await db.selectFrom('payments').select('id').where('id', 'in', ackedIds.slice(i, i + 500)).execute();
      for (const r of rows) found.add(r.id);
    }
    const sqlTotal = Number((await db.selectFrom('payments').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('concert_id', '=', concertId).executeTakeFirst())?.n ?? 0);
    const doubles = await db.selectFrom('payments').select(['schedule_id', 'seat_number', (eb) => eb.fn.countAll<number>().as('n')])
      .where('concert_id', '=', concertId).groupBy(['schedule_id', 'seat_number']).having((eb) => eb.fn.countAll(), '>', 1).execute();
    const userIds = [...new Set(places.map((p) => p.userId))];
    let ledgerMismatches = 0;
    for (let i = 0; i < userIds.length; i += 500) {
      const rows = await sql<{ id: number; balance: number; total: number | null }>`
        select u.id, u.balance, (select sum(l.amount) from ledger l where l.user_id = u.id) as total
        from users u where u.id in (${sql.join(userIds.slice(i, i + 500))})`.execute(db);
      for (const r of rows.rows) if (Number(r.balance) !== Number(r.total ?? 0) || Number(r.balance) < 0) ledgerMismatches++;
    }

    const finalStatus = await api.call('status', 'GET', '/admin/status', { admin: true });
    const sentinelMaster = await target.currentMaster().then((m) => `${m.host}:${m.port}`, () => null);
    const newMasterAddr = newMaster ? `${(newMaster as HostPort).host}:${(newMaster as HostPort).port}` : null;
    if (newMasterAddr && sentinelMaster && sentinelMaster !== newMasterAddr) {
      notes.push(`the sentinels moved the master again after the failover: now ${sentinelMaster}`);
    }
    const followed = newMasterAddr ? statusChanges.find((s) => s.at >= faultAt && s.master === newMasterAddr) : undefined;

    // Requests, errors, stalls.
    const outcomes = api.outcomes;
    const byOp: DrillReport['requests']['byOp'] = {};
    const errorsByCode: Record<string, number> = {};
    for (const o of outcomes) {
      const entry = (byOp[o.op] ??= { ok: 0, errors: {} });
      if (ok(o)) entry.ok++;
      else {
        const code = o.code ?? `HTTP_${o.status}`;
        entry.errors[code] = (entry.errors[code] ?? 0) + 1;
        errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
      }
    }
    const warm = trafficStart + 1500;
    const writes = outcomes.filter((o) => WRITE_OPS.has(o.op) && ok(o)).map((o) => o.at);
    const redisWrites = outcomes.filter((o) => (o.op === 'join' || o.op === 'hold') && ok(o)).map((o) => o.at);
    const stall = longestGap(writes, warm, trafficEnd);
    const redisStall = longestGap(redisWrites, warm, trafficEnd);

    const timeline: DrillReport['timeline'] = [];
    for (const o of outcomes) {
      const t = Math.floor((o.at - faultAt) / 1000);
      let slot = timeline.find((s) => s.t === t);
      if (!slot) { slot = { t, ok: 0, errors: 0 }; timeline.push(slot); }
      if (ok(o)) slot.ok++; else slot.errors++;
    }
    timeline.sort((a, b) => a.t - b.t);

    const rel = (t: number) => t - faultAt;
    const lostPlaces = places.filter((p) => p.fate === 'lost');
    const lostHolds = holds.filter((h) => h.fate === 'lost');
    // Lost from Redis but written behind to SQL before the failover: a rebuild would bring them back.
    let placesInSql = 0;
    for (let i = 0; i < lostPlaces.length; i += 500) {
      const rows = await db.selectFrom('queue_entries').select(['seq', 'status']).where('concert_id', '=', concertId)
        .where('seq', 'in', lostPlaces.slice(i, i + 500).map((p) => p.seq)).where('status', 'in', ['waiting', 'active']).execute();
      placesInSql += rows.length;
    }
    let holdsInSql = 0;
    for (let i = 0; i < lostHolds.length; i += 500) {
      const rows = await db.selectFrom('reservations').select('id').where('id', 'in', lostHolds.slice(i, i + 500).map((h) => h.reservationId))
        .where('status', '=', 'held').execute();
      holdsInSql += rows.length;
    }
    const paymentsLost = ackedIds.filter((id) => !found.has(id)).length;
    const failures: string[] = [];
    if (paymentsLost > 0) failures.push(`${paymentsLost} acknowledged payments are missing in SQL`);
    if (doubles.length > 0) failures.push(`${doubles.length} seats were sold twice`);
    if (ledgerMismatches > 0) failures.push(`${ledgerMismatches} users' balances differ from their ledger`);

    const report: DrillReport = {
      scenario: opts.scenario,
      startedAt: new Date(trafficStart).toISOString(),
      target: target.description,
      database: sqlKind(databaseUrl),
      users: opts.users,
      durationSec: opts.durationSec,
      config: {
        redisTimeoutMs: config.redisTimeoutMs,
        downAfterMs: target.kind === 'own' ? 1000 : null,
        freezeMs: opts.scenario === 'freeze' ? freezeMs : null,
      },
      fault: {
        oldMaster: `${oldMaster.host}:${oldMaster.port}`,
        newMaster: newMasterAddr,
        failoverMs,
        statusFollowedMs: followed ? followed.at - faultAt : null,
        replicaRejoinMs,
        rejoinFrom,
        notes,
      },
      requests: { total: outcomes.length, ok: outcomes.filter(ok).length, byOp },
      errorsByCode,
      writeStall: {
        longestMs: stall.ms, fromMs: rel(stall.start), toMs: rel(stall.start + stall.ms),
        queueAndHoldsMs: redisStall.ms, queueAndHoldsFromMs: rel(redisStall.start),
      },
      queue: {
        acknowledged: places.length,
        left: places.filter((p) => p.fate === 'left').length,
        done: places.filter((p) => p.fate === 'done').length,
        missingObserved: places.filter((p) => p.missingSince !== undefined).length,
        restored: places.filter((p) => p.restoredAt !== undefined).length,
        longestMissingMs: Math.max(0, ...places.map((p) => (p.restoredAt && p.missingSince ? p.restoredAt - p.missingSince : 0))),
        lost: lostPlaces.length,
        lostButInSql: placesInSql,
        lostExamples: lostPlaces.slice(0, 10).map((p) => ({
          userId: p.userId, seq: p.seq, ackMs: rel(p.ackAt), missingMs: p.missingSince ? rel(p.missingSince) : null,
          why: `${p.missingCode ?? ''} ${p.missingMessage ?? ''}`.trim(),
        })),
      },
      holds: {
        acknowledged: holds.length,
        paid: holds.filter((h) => h.fate === 'paid').length,
        released: holds.filter((h) => h.fate === 'released').length,
        missingObserved: holds.filter((h) => h.missingSince !== undefined).length,
        restored: holds.filter((h) => h.restoredAt !== undefined).length,
        longestMissingMs: Math.max(0, ...holds.map((h) => (h.restoredAt && h.missingSince ? h.restoredAt - h.missingSince : 0))),
        lost: lostHolds.length,
        lostButInSql: holdsInSql,
        lostExamples: lostHolds.slice(0, 10).map((h) => ({ reservationId: h.reservationId, ackMs: rel(h.ackAt), why: h.missingStatus ?? '' })),
      },
      payments: { acknowledged: payments.length, lost: paymentsLost, unresolved: unresolvedPayments.length, sqlTotal },
      doubleSales: doubles.length,
      ledgerMismatches,
      modeTransitions: transitions.map((t) => ({ atMs: rel(t.at), from: t.from, to: t.to, reason: t.reason })),
      statusChanges: statusChanges.map((s) => ({ atMs: rel(s.at), mode: s.mode, role: s.role, master: s.master })),
      final: { mode: ctx.mode.current, statusMaster: ok(finalStatus) ? finalStatus.body.redis?.master ?? null : null, sentinelMaster },
      missingFeatures: [...missingFeatures],
      timeline,
      verdict: { ok: failures.length === 0, failures },
    };
    log(`done in ${Math.round((Date.now() - stoppedAt) / 100) / 10} s of checks`);
    return report;
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch {
        // best effort: the rest still runs
      }
    }
  }
}

/** The in-process service logs nothing unless DRILL_LOG_LEVEL asks (error, warn, ...). */
function drillLogLevel(): 'silent' | 'error' | 'warn' | 'info' | 'debug' {
  const level = process.env.DRILL_LOG_LEVEL;
  return level === 'error' || level === 'warn' || level === 'info' || level === 'debug' ? level : 'silent';
}
