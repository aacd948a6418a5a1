/**
 * The processes under test. Each target is a separate `bun` process (the real `src/main.ts`,
 * or the bare MGET route), so the load client never shares its CPU accounting. Each target
 * gets its own redis-server on a free loopback port and its own database, dropped at the end.
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
  script: 'bare Hono route, one call of the service\'s pollQueue script (bench/script-server.ts)',
  node: 'service on Node (npm run start:node), redis mode (PostgreSQL behind)',
};

export interface Target {
  name: TargetName;
  /** mget: a bare route (the MGET or the script route), sent the same requests without real tokens. */
  kind: 'service' | 'mget';
  mode: 'redis' | 'sql';
  db: 'sqlite' | 'postgres' | null;
  base: string;
  pid: number;
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

export interface StartOptions { logDir: string; cpuProfileDir?: string; env?: Record<string, string> }

export async function startTarget(name: TargetName, opts: StartOptions): Promise<Target> {
  const redis = await startRedis();
  const bunArgs = opts.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-md', `--cpu-prof-dir=${opts.cpuProfileDir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : [];
  if (name === 'mget' || name === 'script') {
    const srv = await spawnBun(name === 'mget' ? 'bench/mget-server.ts' : 'bench/script-server.ts', { REDIS_URL: redis.url }, { name, logDir: opts.logDir, bunArgs });
    return {
      name, kind: 'mget', mode: 'redis', db: null, base: srv.base, pid: srv.pid, redis, logFile: srv.logFile,
      dbPids: async () => [],
      async stop() {
        await stopProcess(srv.proc);
        await redis.stop();
      },
    };
  }
  const dbKind = name === 'redis' || name === 'sql-pg' || name === 'node' ? 'postgres' : 'sqlite';
  const db = await createScratchDb(dbKind, name);
  let srv: SpawnedServer;
  try {
    const env = serviceEnv(redis.url, db.url, opts.env);
    // `node`: the same service as `redis`, compiled by npm run build:node and run by Node
    // (whose --cpu-prof writes the same .cpuprofile format, without Bun's markdown summary).
    const nodeArgs = opts.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : [];
    srv = name === 'node'
      ? (buildForNode(), await spawnServer(['node', ...nodeArgs, 'dist/main.js'], env, { name, logDir: opts.logDir }))
      : await spawnBun('src/main.ts', env, { name, bunArgs, logDir: opts.logDir });
  } catch (err) {
    await redis.stop();
    await db.drop();
    throw err;
  }
  const mode = name.startsWith('sql-') ? 'sql' : 'redis';
  const target: Target = {
    name, kind: 'service', mode, db: dbKind, base: srv.base, pid: srv.pid, redis, logFile: srv.logFile,
    dbPids: () => db.backendPids(),
    async stop() {
      await stopProcess(srv.proc);
      await redis.stop();
      await db.drop();
    },
  };
  try {
    if (mode === 'sql') {
      await redis.stop();
      const deadline = Date.now() + 20_000;
      for (;;) {
        const r = await fetch(`${srv.base}/readyz`).then((x) => x.json() as Promise<{ mode: string }>).catch(() => null);
        if (r?.mode === 'sql') break;
        if (Date.now() > deadline) throw new Error(`${name}: the service did not move to SQL mode within 20 s`);
        await Bun.sleep(100);
      }
    }
    const status = await adminStatus(srv.base);
    if (status?.mode !== mode) throw new Error(`${name}: /admin/status reports mode ${status?.mode}, expected ${mode}`);
  } catch (err) {
    await target.stop();
    throw err;
  }
  return target;
}

/** Confirms (again, just before a measurement) that the target still runs in its mode. */
export async function assertMode(t: Target): Promise<void> {
  if (t.kind !== 'service') return;
  const status = await adminStatus(t.base);
  if (status?.mode !== t.mode) throw new Error(`${t.name}: /admin/status reports mode ${status?.mode}, expected ${t.mode}`);
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
