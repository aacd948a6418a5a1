/**
 * A private PostgreSQL 15 cluster for one chaos run: its own data directory in a temp dir, its
 * own loopback port, trust auth, so that the nemesis can stop it (immediate: a crash) and start
 * it again. It never touches the shared PostgreSQL on 5432.
 *
 * initdb refuses to run as root, so when we are root every PostgreSQL binary runs as the
 * `postgres` OS user (runuser), on a data dir chowned to it.
 */
import { spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PG_BIN_DIRS = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/14/bin'];

export interface PgCluster {
  port: number;
  url: string;
  dir: string;
  logFile: string;
  running: boolean;
  /** pg_ctl stop -m immediate: every backend dies at once, as in a crash. */
  crash(): Promise<void>;
  /** pg_ctl start, waiting until it accepts connections. */
  start(): Promise<void>;
  /** Fast stop (if running) and removal of the data dir. Idempotent. */
  destroy(): Promise<void>;
  logTail(lines?: number): string;
}

export function findPgBin(): string | undefined {
  if (process.env.PG_BIN_DIR && existsSync(join(process.env.PG_BIN_DIR, 'initdb'))) return process.env.PG_BIN_DIR;
  return PG_BIN_DIRS.find((d) => existsSync(join(d, 'initdb')));
}

function pgUid(): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
    if (!line) return undefined;
    const f = line.split(':');
    return { uid: Number(f[2]), gid: Number(f[3]) };
  } catch {
    return undefined;
  }
}

export async function startPgCluster(port: number): Promise<PgCluster> {
  const bin = findPgBin();
  if (!bin) throw new Error(`initdb not found (looked in ${PG_BIN_DIRS.join(', ')}; set PG_BIN_DIR)`);
  if (port === 5432) throw new Error('port 5432 is the shared PostgreSQL: the chaos run never touches it');
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? pgUid() : undefined;
  if (asRoot && !owner) throw new Error('running as root and there is no postgres OS user to run initdb as');

  const dir = mkdtempSync(join(tmpdir(), 'chaos-pg-'));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const data = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  // Asynchronous on purpose: the fans keep running (and their clock keeps ticking) while
  // pg_ctl waits for the server.
  const run = (file: string, args: string[], timeoutMs = 60_000) => new Promise<string>((resolve, reject) => {
    const cmd = asRoot ? 'runuser' : join(bin, file);
    const argv = asRoot ? ['-u', 'postgres', '--', join(bin, file), ...args] : args;
    const child = spawn(cmd, argv, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => { clearTimeout(timer); reject(err); });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${file} ${args.join(' ')} failed (exit ${code ?? sig}): ${out.trim().slice(-800)}`));
    });
  });
  const options = [
    `-p ${port}`, '-c listen_addresses=127.0.0.1', `-c unix_socket_directories=${dir}`,
    // fsync only matters when the OS crashes; a process crash (stop -m immediate) keeps what
    // was written. synchronous_commit stays on: a commit must survive the crash.
    '-c fsync=off', '-c max_connections=200',
  ].join(' ');

  let running = false;
  let destroyed = false;
  const cluster: PgCluster = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dir,
    logFile,
    get running() { return running; },
    async crash() {
      if (!running) return;
      running = false;
      await run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
    },
    async start() {
      await run('pg_ctl', ['-D', data, '-l', logFile, '-o', options, '-w', '-t', '60', 'start']);
      running = true;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      if (existsSync(join(data, 'postmaster.pid'))) {
        try { await run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '20', 'stop']); } catch {
          try { await run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '10', 'stop']); } catch { /* gone already */ }
        }
      }
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
    logTail(lines = 20) {
      try { return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n'); } catch { return '(no log)'; }
    },
  };
  try {
    await run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    await cluster.start();
  } catch (err) {
    const tail = cluster.logTail();
    await cluster.destroy();
    throw new Error(`private PostgreSQL did not start: ${(err as Error).message}\n--- postgres.log ---\n${tail}`);
  }
  return cluster;
}

/** Synchronous last-resort stop for an exit hook: SIGQUIT (immediate shutdown) to the postmaster. */
export function killPostmaster(cluster: PgCluster): void {
  try {
    const pid = Number(readFileSync(join(cluster.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (pid > 0) process.kill(pid, 'SIGQUIT');
  } catch { /* not running */ }
  try { rmSync(cluster.dir, { recursive: true, force: true }); } catch { /* best effort */ }
}
