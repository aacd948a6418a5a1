/**
 * Local Sentinel stack for development: 1 master + 2 replicas + 3 sentinels (+ the service).
 *
 *   bun sentinel/stack.ts up [--with-app]   start, daemonized; PID files in .stack/pids/
 *   bun sentinel/stack.ts status            each process and the current master
 *   bun sentinel/stack.ts down              end exactly the processes named in the PID files
 *
 * Ports: STACK_MASTER_PORT (6380), STACK_REPLICA_PORTS (6381,6382),
 * STACK_SENTINEL_PORTS (26379,26380,26381); STACK_MASTER_NAME (mymaster).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { askSentinelForMaster, isAlive, LOOPBACK, portInUse, sendCommand, startSentinelTopology } from './topology.ts';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const STACK_DIR = join(REPO_ROOT, '.stack');
const PID_DIR = join(STACK_DIR, 'pids');
const STATE_FILE = join(STACK_DIR, 'stack.json');
const APP_LOG = join(STACK_DIR, 'app.log');
const APP_ENTRY = 'src/main.ts';

type Kind = 'redis' | 'sentinel' | 'app';

interface StackConfig {
  masterName: string;
  masterPort: number;
  replicaPorts: number[];
  sentinelPorts: number[];
}

interface PidEntry {
  kind: Kind;
  port: number | undefined;
  pid: number;
  file: string;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

function parsePort(value: string, name: string): number {
  const port = Number(value.trim());
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name}: "${value}" is not a port number`);
  return port;
}

function parsePortList(value: string, name: string): number[] {
  return value.split(',').filter((part) => part.trim() !== '').map((part) => parsePort(part, name));
}

function configFromEnv(env = process.env): StackConfig {
  const config: StackConfig = {
    masterName: env.STACK_MASTER_NAME || 'mymaster',
    masterPort: parsePort(env.STACK_MASTER_PORT || '6380', 'STACK_MASTER_PORT'),
    replicaPorts: parsePortList(env.STACK_REPLICA_PORTS || '6381,6382', 'STACK_REPLICA_PORTS'),
    sentinelPorts: parsePortList(env.STACK_SENTINEL_PORTS || '26379,26380,26381', 'STACK_SENTINEL_PORTS'),
  };
  const all = [config.masterPort, ...config.replicaPorts, ...config.sentinelPorts];
  if (new Set(all).size !== all.length) throw new Error(`stack ports must be distinct: ${all.join(', ')}`);
  if (config.replicaPorts.length < 1) throw new Error('STACK_REPLICA_PORTS needs at least one port');
  if (config.sentinelPorts.length < 1) throw new Error('STACK_SENTINEL_PORTS needs at least one port');
  return config;
}

function sentinelsValue(config: StackConfig): string {
  return config.sentinelPorts.map((port) => `${LOOPBACK}:${port}`).join(',');
}

function readPidFiles(): PidEntry[] {
  if (!existsSync(PID_DIR)) return [];
  const order: Record<Kind, number> = { app: 0, sentinel: 1, redis: 2 };
  const entries: PidEntry[] = [];
  for (const name of readdirSync(PID_DIR)) {
    const match = /^(redis|sentinel)-(\d+)\.pid$|^(app)\.pid$/.exec(name);
    if (!match) continue;
    const file = join(PID_DIR, name);
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) continue;
    const kind = (match[1] ?? match[3]) as Kind;
    entries.push({ kind, port: match[2] ? Number(match[2]) : undefined, pid, file });
  }
  // The app first (it depends on Redis), then sentinels (so none fails over while nodes stop).
  return entries.sort((a, b) => order[a.kind] - order[b.kind] || (a.port ?? 0) - (b.port ?? 0));
}

function cmdlineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return undefined;
  }
}


/** True if the pid is still the process the PID file was written for, not a recycled pid. */
function isOurs(entry: PidEntry): boolean {
  const cmdline = cmdlineOf(entry.pid);
  if (cmdline === undefined || !isAlive(entry.pid)) return false;
  if (entry.kind === 'app') return /\bbun(\.exe)?\b/.test(cmdline) && cmdline.includes(APP_ENTRY);
  // redis-server rewrites its title to "redis-server 127.0.0.1:<port> [sentinel]".
  return cmdline.includes('redis-server') && cmdline.includes(`:${entry.port}`);
}

function label(entry: PidEntry): string {
  return entry.kind === 'app' ? 'app' : `${entry.kind} ${LOOPBACK}:${entry.port}`;
}

function readState(): StackConfig | undefined {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as StackConfig;
  } catch {
    return undefined;
  }
}

async function up(withApp: boolean): Promise<number> {
  const running = readPidFiles().filter(isOurs);
  if (running.length > 0) {
    console.error(`The stack is already running (${running.map(label).join(', ')}). Stop it with: npm run stack:down`);
    return 1;
  }
  rmSync(PID_DIR, { recursive: true, force: true }); // stale files of a stack that died

  const config = configFromEnv();
  const ports = [config.masterPort, ...config.replicaPorts, ...config.sentinelPorts];
  const busy: number[] = [];
  for (const port of ports) if (await portInUse(port)) busy.push(port);
  if (busy.length > 0) {
    console.error(`Ports already in use on ${LOOPBACK}: ${busy.join(', ')}. Choose others with STACK_*_PORTS.`);
    return 1;
  }

  // Fresh configs: sentinels rewrite theirs with the state of the previous run.
  mkdirSync(STACK_DIR, { recursive: true });
  for (const name of readdirSync(STACK_DIR)) {
    if (/^(node|sentinel)-\d+$/.test(name)) rmSync(join(STACK_DIR, name), { recursive: true, force: true });
  }

  const topology = await startSentinelTopology({
    masterName: config.masterName,
    ports: { master: config.masterPort, replicas: config.replicaPorts, sentinels: config.sentinelPorts },
    dir: STACK_DIR,
    detached: true,
    downAfterMs: process.env.STACK_DOWN_AFTER_MS ? Number(process.env.STACK_DOWN_AFTER_MS) : undefined,
  });
  mkdirSync(PID_DIR, { recursive: true });
  writeFileSync(STATE_FILE, `${JSON.stringify(config, null, 2)}\n`);
  for (const node of topology.nodes) writeFileSync(join(PID_DIR, `redis-${node.port}.pid`), `${node.pid}\n`);
  for (const sentinel of topology.sentinelProcs) writeFileSync(join(PID_DIR, `sentinel-${sentinel.port}.pid`), `${sentinel.pid}\n`);

  const sentinels = sentinelsValue(config);
  console.log(`Sentinel stack is up (data and logs in ${STACK_DIR}):`);
  console.log(`  master    ${LOOPBACK}:${config.masterPort}`);
  console.log(`  replicas  ${config.replicaPorts.map((p) => `${LOOPBACK}:${p}`).join(', ')}`);
  console.log(`  sentinels ${sentinels} (master name ${config.masterName})`);
  console.log('');
  console.log(`REDIS_SENTINELS=${sentinels}`);

  if (withApp) {
    const pid = startApp(sentinels, config.masterName);
    console.log(`App started: bun ${APP_ENTRY} (pid ${pid}), log ${APP_LOG}`);
    // Only to report an app that dies at once (e.g. src/main.ts missing); not a readiness check.
    for (let waited = 0; waited < 1_000 && isAlive(pid); waited += 100) await sleep(100);
    if (!isAlive(pid)) {
      console.error(`warning: the app exited at once; last lines of ${APP_LOG}:`);
      console.error(readFileSync(APP_LOG, 'utf8').trimEnd().split('\n').slice(-10).join('\n'));
    }
  }
  console.log(withApp ? 'Start another instance by hand with:' : 'Start the service against it:');
  console.log(`  REDIS_SENTINELS=${sentinels} REDIS_MASTER_NAME=${config.masterName} npm start`);
  console.log('Status: npx bun sentinel/stack.ts status    Stop: npm run stack:down');
  return 0;
}

function startApp(sentinels: string, masterName: string): number {
  const log = openSync(APP_LOG, 'a');
  try {
    // process.execPath is the bun running this script (npm scripts put node_modules/.bin first).
    const bun = process.versions.bun ? process.execPath : 'bun';
    const child = spawn(bun, [APP_ENTRY], {
      cwd: REPO_ROOT,
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, REDIS_SENTINELS: sentinels, REDIS_MASTER_NAME: masterName },
    });
    child.on('error', (err) => console.error(`could not start the app: ${err.message}`));
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${bun} ${APP_ENTRY}`);
    writeFileSync(join(PID_DIR, 'app.pid'), `${child.pid}\n`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

async function stopProcess(pid: number): Promise<'stopped' | 'killed'> {
  process.kill(pid, 'SIGTERM');
  try {
    process.kill(pid, 'SIGCONT'); // a frozen process acts on SIGTERM only once it runs again
  } catch {
    // already gone
  }
  for (let waited = 0; waited < 5_000; waited += 50) {
    if (!isAlive(pid)) return 'stopped';
    await sleep(50);
  }
  process.kill(pid, 'SIGKILL');
  for (let waited = 0; waited < 2_000 && isAlive(pid); waited += 50) await sleep(50);
  return 'killed';
}

async function down(): Promise<number> {
  const entries = readPidFiles();
  if (entries.length === 0) {
    console.log('Nothing to stop: no PID files in .stack/pids/.');
    return 0;
  }
  for (const entry of entries) {
    const what = `${label(entry)} (pid ${entry.pid})`;
    if (!isAlive(entry.pid)) {
      console.log(`${what}: was not running`);
    } else if (!isOurs(entry)) {
      console.log(`${what}: pid now belongs to another program ("${cmdlineOf(entry.pid)}"); left alone`);
    } else {
      const how = await stopProcess(entry.pid);
      console.log(`${what}: ${how === 'stopped' ? 'stopped (SIGTERM)' : 'killed (SIGKILL after 5 s)'}`);
    }
    rmSync(entry.file, { force: true });
  }
  return 0;
}

async function status(): Promise<number> {
  const entries = readPidFiles();
  const state = readState();
  if (entries.length === 0) {
    console.log('The stack is not running (no PID files in .stack/pids/).');
    return 0;
  }
  for (const entry of entries) {
    const what = `${label(entry).padEnd(26)} pid ${String(entry.pid).padEnd(8)}`;
    if (!isOurs(entry)) {
      console.log(`${what} not running`);
      continue;
    }
    let detail = 'running';
    if (entry.kind === 'redis' && entry.port !== undefined) {
      try {
        const role = await sendCommand(entry.port, ['ROLE'], 500);
        detail += Array.isArray(role) ? `, ${role[0]}` : '';
      } catch (err) {
        detail += `, not answering (${(err as Error).message})`;
      }
    }
    console.log(`${what} ${detail}`);
  }
  const sentinelPorts = entries.filter((e) => e.kind === 'sentinel' && isOurs(e)).map((e) => e.port!);
  const masterName = state?.masterName ?? 'mymaster';
  for (const port of sentinelPorts) {
    try {
      const master = await askSentinelForMaster(port, masterName);
      console.log(`current master: ${master.host}:${master.port} (per sentinel ${LOOPBACK}:${port})`);
      return 0;
    } catch {
      // ask the next sentinel
    }
  }
  console.log('current master: unknown (no sentinel answered)');
  return 1;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...flags] = argv;
  switch (command) {
    case 'up':
      return up(flags.includes('--with-app'));
    case 'down':
      return down();
    case 'status':
      return status();
    default:
      console.error('usage: bun sentinel/stack.ts up [--with-app] | status | down');
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
