/**
 * The processes under test. Each target is a separate `bun` process (the real `src/main.ts`,
 * or the bare MGET route), so the load client never shares its CPU accounting. Each target
 * gets its own redis-server on a free loopback port and its own database, dropped at the end.
 * A redis-mode service target on PostgreSQL may run as a fleet of N instances (`instances`): N processes of
 * the real service, each on its own port with its own instance id (the service derives it from
 * its pid), sharing the target's one Redis and one database, the mode row included, as the
 * instances of a real deployment do.
 *
 * SQL mode is reached the way production reaches it: the target's own Redis is stopped after
 * start-up, the circuit breaker opens and the instance moves to `sql` (and records it in the
 * shared mode row). Writing the mode row alone does not stick while Redis answers: the
 * coordinator's probe sees a live Redis and rebuilds straight back to `redis`.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { freePort, startRedis, type RedisProc } from '../../sentinel/topology.ts';

export const REPO_ROOT = resolve(import.meta.dir, '..', '..');
export const BENCH_JWT_SECRET = 'bench-secret-that-is-at-least-32-bytes-long!';
export const BENCH_ADMIN_KEY = 'bench-admin-key';
const PG_ADMIN_URL = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export type TargetName = 'redis' | 'redis-sqlite' | 'sql-sqlite' | 'sql-pg' | 'mget' | 'script' | 'node';
export const ALL_TARGETS: TargetName[] = ['redis', 'redis-sqlite', 'sql-sqlite', 'sql-pg', 'mget', 'script', 'node'];
export const DEFAULT_TARGETS: TargetName[] = ['redis', 'sql-sqlite', 'sql-pg', 'mget'];

export const TARGET_LABEL: Record<TargetName, string> = {
  redis: 'service, redis mode (PostgreSQL behind)',
  'redis-sqlite': 'service, redis mode (SQLite behind)',
  'sql-sqlite': 'service, SQL mode on SQLite',
  'sql-pg': 'service, SQL mode on PostgreSQL',
  mget: 'bare Hono route, one MGET',
  script: 'bare Hono routes: one call of the service\'s pollQueue script a poll; a join\'s Redis and token work without SQL (bench/script-server.ts)',
  node: 'service on Node (npm run start:node), redis mode (PostgreSQL behind)',
};

export interface Target {
  name: TargetName;
  /** The name with the fleet size when it runs more than one instance (`redis ×2`): the key of its runs. */
  label: string;
  /** Service processes sharing the target's Redis and database (1 unless started as a fleet). */
  instances: number;
  /** mget: a bare route (the MGET or the script route), sent the same requests without real tokens. */
  kind: 'service' | 'mget';
  mode: 'redis' | 'sql';
  db: 'sqlite' | 'postgres' | null;
  /** The first instance: set-up and admin calls go there. */
  base: string;
  pid: number;
  /** Every instance's base URL and pid (one entry for a single process). */
  bases: string[];
  pids: number[];
  /** The target's redis-server (stopped for SQL-mode targets). */
  redis: RedisProc;
  logFile: string;
  /** PostgreSQL backends serving this target's database (empty for SQLite). */
  dbPids(): Promise<number[]>;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Scratch databases

interface ScratchDb { url: string; kind: 'sqlite' | 'postgres'; backendPids(): Promise<number[]>; drop(): Promise<void> }

let pgAdmin: pg.Pool | null = null;
function admin(): pg.Pool {
  if (!pgAdmin) {
    pgAdmin = new pg.Pool({ connectionString: PG_ADMIN_URL, max: 2 });
    pgAdmin.on('error', () => {});
  }
  return pgAdmin;
}

export async function createScratchDb(kind: 'sqlite' | 'postgres', label: string): Promise<ScratchDb> {
  const name = `bench_${label.replace(/\W/g, '_')}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  if (kind === 'sqlite') {
    const path = `/tmp/${name}.db`;
    return {
      url: `sqlite:${path}`, kind,
      backendPids: async () => [],
      async drop() {
        for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
      },
    };
  }
  await admin().query(`CREATE DATABASE "${name}"`);
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(), kind,
    async backendPids() {
      const r = await admin().query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name]);
      return r.rows.map((x) => x.pid);
    },
    async drop() {
      await admin().query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
    },
  };
}

export async function closeAdmin(): Promise<void> {
  if (pgAdmin) await pgAdmin.end().catch(() => {});
  pgAdmin = null;
}

// ---------------------------------------------------------------------------------------------
// Processes

const started = new Set<number>();
process.on('exit', () => {
  for (const pid of started) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

export interface SpawnedServer { pid: number; base: string; port: number; logFile: string; proc: ReturnType<typeof Bun.spawn> }

/** Starts `bun <script>` with env as a separate process and waits until GET /healthz answers. */
export function spawnBun(script: string, env: Record<string, string>, opts: { name: string; bunArgs?: string[]; logDir: string }): Promise<SpawnedServer> {
  return spawnServer([process.execPath, ...(opts.bunArgs ?? []), script], env, opts);
}

/** Starts the command (run in the repository) with env and waits until GET /healthz answers. */
export async function spawnServer(cmd: string[], env: Record<string, string>, opts: { name: string; logDir: string }): Promise<SpawnedServer> {
  const port = await freePort();
  mkdirSync(opts.logDir, { recursive: true });
  const logFile = join(opts.logDir, `${opts.name}.log`);
  const proc = Bun.spawn(cmd, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdout: Bun.file(logFile),
    stderr: Bun.file(`${logFile}.err`),
  });
  started.add(proc.pid);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) {
      const err = await Bun.file(`${logFile}.err`).text().catch(() => '');
      throw new Error(`${opts.name} exited during start (code ${proc.exitCode}): ${err.slice(-2000)}`);
    }
    try {
      const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      await stopProcess(proc);
      throw new Error(`${opts.name} did not answer /healthz within 30 s (log: ${logFile})`);
    }
    await Bun.sleep(100);
  }
  return { pid: proc.pid, base, port, logFile, proc };
}

let built = false;
/** `npm run build:node` once per bench process (dist/ is the source as it is now). */
function buildForNode(): void {
  if (built) return;
  const r = Bun.spawnSync(['npm', 'run', '--silent', 'build:node'], { cwd: REPO_ROOT, stdout: 'pipe', stderr: 'pipe' });
  if (r.exitCode !== 0) throw new Error(`npm run build:node failed: ${r.stdout.toString()}${r.stderr.toString()}`);
  built = true;
}

/** SIGTERM (a graceful shutdown writes a CPU profile), SIGKILL after 10 s. */
export async function stopProcess(proc: ReturnType<typeof Bun.spawn>): Promise<void> {
  if (proc.exitCode === null) {
    proc.kill('SIGTERM');
    const killed = await Promise.race([proc.exited.then(() => false), Bun.sleep(10_000).then(() => true)]);
    if (killed) {
      proc.kill('SIGKILL');
      await proc.exited;
    }
  }
  started.delete(proc.pid);
}

export function serviceEnv(redisUrl: string, databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    DATABASE_URL: databaseUrl,
    JWT_SECRET: BENCH_JWT_SECRET,
    ADMIN_API_KEY: BENCH_ADMIN_KEY,
    LOG_LEVEL: 'warn',
    // Bench runs and their set-up outlast the default 5-minute heartbeat grace.
    QUEUE_GRACE_SECONDS: '3600',
    // All load comes from 127.0.0.1 and a few thousand tokens: keep the per-client limiter on
    // the path (its cost is measured) but out of the way.
    RATE_LIMIT_PER_SECOND: '1000000',
    RATE_LIMIT_BURST: '1000000',
    TOKEN_RATE_LIMIT_PER_MINUTE: '0',
    ...extra,
  };
}

async function adminStatus(base: string): Promise<{ mode: string } | null> {
  try {
    const r = await fetch(`${base}/admin/status`, { headers: { 'X-Admin-Key': BENCH_ADMIN_KEY }, signal: AbortSignal.timeout(5000) });
    return r.ok ? ((await r.json()) as { mode: string }) : null;
  } catch {
    return null;
  }
}

export interface StartOptions {
  logDir: string;
  cpuProfileDir?: string;
  env?: Record<string, string>;
  /** Service instances on the target's one Redis and database (redis-mode service targets only; default 1). */
  instances?: number;
}

/** How a fleet of `instances` service processes of one target is shown and keyed. */
export function fleetLabel(name: TargetName, instances: number): string {
  return instances > 1 ? `${name} ×${instances}` : name;
}

export async function startTarget(name: TargetName, opts: StartOptions): Promise<Target> {
  const instances = opts.instances ?? 1;
  const mode = name.startsWith('sql-') ? 'sql' : 'redis';
  if (!Number.isInteger(instances) || instances < 1) throw new Error(`${name}: instances must be a whole number ≥ 1, got ${instances}`);
  // A fleet in SQL mode would need every instance to see its Redis fail, and a SQLite file is
  // locked against a second writing process: only redis-mode fleets on PostgreSQL are run.
  if (instances > 1 && (name === 'mget' || name === 'script' || name === 'redis-sqlite' || mode === 'sql')) throw new Error(`${name}: runs as one process only`);
  const label = fleetLabel(name, instances);
  const redis = await startRedis();
  const fileLabel = label.replace(' ×', '-x');
  const bunArgsFor = (instance: string) => opts.cpuProfileDir
    ? ['--cpu-prof', '--cpu-prof-md', `--cpu-prof-dir=${opts.cpuProfileDir}`, `--cpu-prof-name=${instance}-${Date.now()}.cpuprofile`]
    : [];
  if (name === 'mget' || name === 'script') {
    const srv = await spawnBun(name === 'mget' ? 'bench/mget-server.ts' : 'bench/script-server.ts', { REDIS_URL: redis.url }, { name, logDir: opts.logDir, bunArgs: bunArgsFor(name) });
    return {
      name, label, instances, kind: 'mget', mode: 'redis', db: null, base: srv.base, pid: srv.pid, bases: [srv.base], pids: [srv.pid], redis, logFile: srv.logFile,
      dbPids: async () => [],
      async stop() {
        await stopProcess(srv.proc);
        await redis.stop();
      },
    };
  }
  const dbKind = name === 'redis' || name === 'sql-pg' || name === 'node' ? 'postgres' : 'sqlite';
  const db = await createScratchDb(dbKind, fileLabel);
  const env = serviceEnv(redis.url, db.url, opts.env);
  const spawnInstance = (instance: string): Promise<SpawnedServer> => {
    // `node`: the same service as `redis`, compiled by npm run build:node and run by Node
    // (whose --cpu-prof writes the same .cpuprofile format, without Bun's markdown summary).
    const nodeArgs = opts.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`, `--cpu-prof-name=${instance}-${Date.now()}.cpuprofile`] : [];
    return name === 'node'
      ? (buildForNode(), spawnServer(['node', ...nodeArgs, 'dist/main.js'], env, { name: instance, logDir: opts.logDir }))
      : spawnBun('src/main.ts', env, { name: instance, bunArgs: bunArgsFor(instance), logDir: opts.logDir });
  };
  const srvs: SpawnedServer[] = [];
  try {
    // One after another: the first migrates the database, the others find it ready (as a rolling start does).
    for (let i = 1; i <= instances; i++) srvs.push(await spawnInstance(instances > 1 ? `${fileLabel}-${i}` : name));
  } catch (err) {
    await Promise.all(srvs.map((s) => stopProcess(s.proc)));
    await redis.stop();
    await db.drop();
    throw err;
  }
  const first = srvs[0]!;
  const target: Target = {
    name, label, instances, kind: 'service', mode, db: dbKind, base: first.base, pid: first.pid,
    bases: srvs.map((s) => s.base), pids: srvs.map((s) => s.pid), redis, logFile: first.logFile,
    dbPids: () => db.backendPids(),
    async stop() {
      await Promise.all(srvs.map((s) => stopProcess(s.proc)));
      await redis.stop();
      await db.drop();
    },
  };
  try {
    if (mode === 'sql') {
      await redis.stop();
      const deadline = Date.now() + 20_000;
      for (;;) {
        const r = await fetch(`${first.base}/readyz`).then((x) => x.json() as Promise<{ mode: string }>).catch(() => null);
        if (r?.mode === 'sql') break;
        if (Date.now() > deadline) throw new Error(`${name}: the service did not move to SQL mode within 20 s`);
        await Bun.sleep(100);
      }
    }
    await assertMode(target);
  } catch (err) {
    await target.stop();
    throw err;
  }
  return target;
}

/** Confirms (again, just before a measurement) that every instance of the target still runs in its mode. */
export async function assertMode(t: Target): Promise<void> {
  if (t.kind !== 'service') return;
  for (const [i, base] of t.bases.entries()) {
    const status = await adminStatus(base);
    const which = t.instances > 1 ? `${t.label} instance ${i + 1}` : t.name;
    if (status?.mode !== t.mode) throw new Error(`${which}: /admin/status reports mode ${status?.mode}, expected ${t.mode}`);
  }
}

/** The service's PostgreSQL pool size (src/store/connect.ts): the most connections one instance opens. */
const SERVICE_PG_POOL = 20;

/**
 * Waits (bounded) until PostgreSQL has room for every pooled connection the target's instances
 * may open, so a run does not fail with "too many clients" because other targets' pools still
 * hold connections from their own runs (pg closes an idle one after 10 s). Returns a note when
 * it gave up waiting.
 */
export async function waitPostgresRoom(t: Target, timeoutMs = 15_000): Promise<string | null> {
  if (t.db !== 'postgres') return null;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await admin().query<{ max: number; reserved: number; used: number }>(
      `SELECT current_setting('max_connections')::int AS max, current_setting('superuser_reserved_connections')::int AS reserved,
              (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS used`);
    const { max, reserved, used } = r.rows[0]!;
    const mine = (await t.dbPids()).length;
    const room = max - reserved - (used - mine);
    if (room >= SERVICE_PG_POOL * t.instances) return null;
    if (Date.now() > deadline) {
      return `PostgreSQL had room for ${room} connections, the ${t.instances} instance(s) may open ${SERVICE_PG_POOL * t.instances} (max_connections ${max})`;
    }
    await Bun.sleep(500);
  }
}

/** Waits (bounded) until the write-behind streams are drained, so set-up work is not measured. */
export async function waitWriteBehindIdle(t: Target, timeoutMs = 60_000): Promise<number | null> {
  if (t.kind !== 'service' || t.mode !== 'redis') return 0;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await fetch(`${t.base}/admin/status`, { headers: { 'X-Admin-Key': BENCH_ADMIN_KEY } })
      .then((x) => x.json() as Promise<{ writeBehind?: { pending: number | null } }>).catch(() => null);
    const pending = r?.writeBehind?.pending ?? null;
    if (pending === 0) return 0;
    if (Date.now() > deadline) return pending;
    await Bun.sleep(200);
  }
}
