/**
 * Starts and stops real redis-server processes on loopback ports: a standalone server, or the
 * Sentinel topology of the architecture (1 master, 2 replicas, 3 sentinels, quorum 2).
 *
 * Used by the tests and by `sentinel/stack.ts`. Only the local `redis-server` binary is needed
 * (Redis 7: sentinel mode is `redis-server <conf> --sentinel`). Every process started here
 * without `detached` is ended when this process ends, even if a test never calls stopAll():
 * an 'exit' hook covers `bun run`/node, and a watchdog process covers `bun test` (whose exit
 * does not fire 'exit' listeners) and a runner that is itself SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LOOPBACK = '127.0.0.1' as const;
const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server';
const TEMPLATE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'templates');
const START_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 5_000;

export interface HostPort {
  host: string;
  port: number;
}

export interface RedisProc {
  readonly port: number;
  readonly host: typeof LOOPBACK;
  readonly url: string;
  /** pid of the current process; changes after restart(). */
  readonly pid: number;
  /** Working directory: config, log file. */
  readonly dir: string;
  readonly logFile: string;
  /** False once the process has exited. */
  readonly running: boolean;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM (and SIGCONT, in case it is frozen) and wait for the exit; SIGKILL after 5 s. */
  stop(): Promise<void>;
  /** SIGSTOP: the port stays open but nothing answers. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /**
   * Kills the process if it still runs and starts a fresh, empty one on the same port with the
   * same arguments and config file (which Sentinel may have rewritten, e.g. `replicaof`).
   * Resolves to this same object, whose pid is now the new process's.
   */
  restart(): Promise<RedisProc>;
  /** Last lines of the log file, for error messages. */
  logTail(lines?: number): string;
}

export interface StartRedisOptions {
  port?: number;
  dir?: string;
  /** Extra redis-server arguments, appended last so they override the defaults. */
  args?: string[];
  /** Let the process outlive this one (own session, not killed by the exit hook or watchdog). */
  detached?: boolean;
}

export interface TopologyOptions {
  masterName?: string;
  ports?: { master?: number; replicas?: number[]; sentinels?: number[] };
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  /**
   * Default 2, every replica: the old master of a SENTINEL FAILOVER then refuses writes as soon
   * as the promoted replica leaves it (with 1 it keeps serving, with the other replica attached,
   * until the sentinels demote it: a second with two masters). The cost: while a node is down
   * the master refuses writes and the service serves from SQL until the node is back.
   */
  minReplicasToWrite?: number;
  dir?: string;
  detached?: boolean;
  /** Deadline for the whole topology to be replicated and mutually known. Default 20 s. */
  readyTimeoutMs?: number;
}

export interface Topology {
  masterName: string;
  /** Addresses of the sentinels, in the shape ioredis' `sentinels` option takes. */
  sentinels: HostPort[];
  /** Data nodes; nodes[0] is the initial master. */
  nodes: RedisProc[];
  sentinelProcs: RedisProc[];
  /** Working directory holding every node's config and log. */
  dir: string;
  /** The master as the first live sentinel reports it (SENTINEL get-master-addr-by-name). */
  currentMaster(): Promise<HostPort>;
  nodeByPort(port: number): RedisProc | undefined;
  /** Polls until a sentinel names a master other than oldPort and that node says it is master. */
  waitForNewMaster(oldPort: number, timeoutMs: number): Promise<HostPort>;
  /** SIGKILLs every process; removes the working dir if it was a temp dir. Idempotent. */
  stopAll(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// One-shot RESP2 client. The launcher probes servers that are starting, frozen or dead, so it
// wants one socket per call with a hard deadline: no reconnects, no offline queue.
export type RespValue = string | number | null | Error | RespValue[];

export function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
  return Buffer.from(parts.join(''));
}

/** Parses one reply at `offset`; undefined while the buffer does not yet hold all of it. */
export function parseReply(buf: Buffer, offset = 0): { value: RespValue; next: number } | undefined {
  const lineEnd = buf.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[offset]!);
  const line = buf.toString('utf8', offset + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next: afterLine };
    case '-':
      return { value: new Error(line), next: afterLine };
    case ':':
      return { value: Number(line), next: afterLine };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: afterLine };
      if (buf.length < afterLine + len + 2) return undefined;
      return { value: buf.toString('utf8', afterLine, afterLine + len), next: afterLine + len + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next: afterLine };
      const items: RespValue[] = [];
      let next = afterLine;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, next);
        if (!item) return undefined;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/** Sends one command to 127.0.0.1:port; rejects on an error reply, a socket error or the deadline. */
export function sendCommand(port: number, args: readonly string[], timeoutMs = 1000, host = '127.0.0.1'): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    let settled = false;
    const socket = createConnection({ host, port });
    const finish = (err: Error | undefined, value?: RespValue) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value ?? null);
    };
    const timer = setTimeout(
      () => finish(new Error(`${args[0]} to ${host}:${port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(encodeCommand(args)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      let parsed: ReturnType<typeof parseReply>;
      try {
        parsed = parseReply(received);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (!parsed) return;
      if (parsed.value instanceof Error) finish(parsed.value);
      else finish(undefined, parsed.value);
    });
    socket.once('error', (err) => finish(err));
    socket.once('close', () => finish(new Error(`${host}:${port} closed the connection before replying`)));
  });
}

/** Turns a flat [k1, v1, k2, v2, ...] reply (SENTINEL MASTER/REPLICAS) into a record. */
export function pairsToRecord(reply: RespValue): Record<string, string> {
  const record: Record<string, string> = {};
  if (!Array.isArray(reply)) return record;
  for (let i = 0; i + 1 < reply.length; i += 2) record[String(reply[i])] = String(reply[i + 1]);
  return record;
}

/** Parses `INFO <section>` text into a record of its `key:value` lines. */
export function parseInfo(info: RespValue): Record<string, string> {
  const record: Record<string, string> = {};
  if (typeof info !== 'string') return record;
  for (const line of info.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) record[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return record;
}

// ---------------------------------------------------------------------------------------------
// Ports

/** A port that was free on 127.0.0.1 a moment ago (another process may still take it). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/** n distinct free ports: all n listeners are held open together, so no port repeats. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const server = createServer();
      servers.push(server);
      ports.push(
        await new Promise<number>((resolvePort, reject) => {
          server.once('error', reject);
          server.listen(0, LOOPBACK, () => {
            const address = server.address();
            if (address && typeof address === 'object') resolvePort(address.port);
            else reject(new Error('listener has no port'));
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((done) => s.close(() => done()))));
  }
}

/** True if something accepts TCP connections on 127.0.0.1:port. */
export function portInUse(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((answer) => {
    const socket = createConnection({ host: LOOPBACK, port });
    const done = (inUse: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      answer(inUse);
    };
    const timer = setTimeout(() => done(true), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------------------------
// Cleanup of children: exit hook + watchdog

const liveChildren = new Map<number, ChildProcess>();
let exitHookInstalled = false;
let watchdog: ChildProcess | undefined;

/*
 * The watchdog is a shell reading "+pid"/"-pid" lines on a pipe from us. When we end in any
 * way, even SIGKILL, the pipe reaches EOF and it SIGKILLs the pids still listed. It runs in its
 * own process group so a Ctrl-C in the terminal does not end it before it has done its job.
 */
const WATCHDOG_SCRIPT = `trap '' INT HUP
pids=""
while IFS= read -r line; do
  case "$line" in
    +*) pids="$pids \${line#+}" ;;
    -*) kept=""; for p in $pids; do [ "$p" = "\${line#-}" ] || kept="$kept $p"; done; pids="$kept" ;;
  esac
done
for p in $pids; do kill -9 "$p" 2>/dev/null; done`;

function tellWatchdog(line: string): void {
  if (!watchdog) {
    watchdog = spawn('sh', ['-c', WATCHDOG_SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    watchdog.on('error', () => {});
    watchdog.stdin?.on('error', () => {});
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  }
  watchdog.stdin?.write(`${line}\n`);
}

function trackChild(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  liveChildren.set(pid, child);
  tellWatchdog(`+${pid}`);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const pid of liveChildren.keys()) signal(pid, 'SIGKILL');
    });
  }
}

function untrackChild(pid: number | undefined): void {
  if (pid === undefined || !liveChildren.delete(pid)) return;
  tellWatchdog(`-${pid}`);
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// One redis-server process

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

function tailOf(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

class RedisProcess implements RedisProc {
  readonly host = LOOPBACK;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private alive = false;

  constructor(
    readonly port: number,
    readonly dir: string,
    /** Full redis-server argv, without the binary. */
    private readonly argv: readonly string[],
    private readonly detached: boolean,
    /** A temp dir made for this process alone: removed once it has exited, made again by restart(). */
    private readonly ownsDir = false,
  ) {}

  get url(): string {
    return `redis://${LOOPBACK}:${this.port}`;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  get logFile(): string {
    return join(this.dir, 'redis.log');
  }

  get running(): boolean {
    return this.alive;
  }

  logTail(lines = 30): string {
    return tailOf(this.logFile, lines);
  }

  /** Spawns the process and resolves once it answers on its port; otherwise kills it and throws. */
  async launch(): Promise<this> {
    mkdirSync(this.dir, { recursive: true });
    // stdout/stderr go to the log file: redis writes config errors there before any logfile opens.
    const logFd = openSync(this.logFile, 'a');
    let spawnError: Error | undefined;
    let child: ChildProcess;
    try {
      child = spawn(REDIS_SERVER_BIN, [...this.argv], {
        cwd: this.dir,
        detached: this.detached,
        stdio: ['ignore', logFd, logFd],
      });
    } finally {
      closeSync(logFd);
    }
    this.child = child;
    this.alive = true;
    this.exited = new Promise<void>((done) => {
      const onGone = () => {
        this.alive = false;
        untrackChild(child.pid);
        done();
      };
      child.once('exit', onGone);
      child.once('error', (err) => {
        spawnError = err;
        onGone();
      });
    });
    if (this.detached) child.unref();
    else trackChild(child);

    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (!this.alive) {
        const why = spawnError ? `could not run ${REDIS_SERVER_BIN}: ${spawnError.message}` : 'exited during start-up';
        const tail = this.logTail();
        this.removeOwnDir();
        throw new Error(`redis-server on port ${this.port} ${why}\n--- ${this.logFile} ---\n${tail}`);
      }
      try {
        // Compare pids: another server already on this port would answer too, while ours is
        // about to exit with "Address already in use".
        const info = parseInfo(await sendCommand(this.port, ['INFO', 'server'], 300));
        if (Number(info.process_id) === child.pid) return this;
      } catch {
        // not listening yet
      }
      await sleep(25);
    }
    const tail = this.logTail();
    await this.kill();
    throw new Error(`redis-server on port ${this.port} did not answer PING within ${START_TIMEOUT_MS} ms\n--- ${this.logFile} ---\n${tail}`);
  }

  async kill(): Promise<void> {
    if (this.alive) signal(this.pid, 'SIGKILL');
    await this.exited;
    this.removeOwnDir();
  }

  async stop(): Promise<void> {
    if (this.alive) {
      signal(this.pid, 'SIGTERM');
      signal(this.pid, 'SIGCONT'); // a frozen process only acts on SIGTERM once it runs again
      const timer = setTimeout(() => signal(this.pid, 'SIGKILL'), STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
    this.removeOwnDir();
  }

  private removeOwnDir(): void {
    if (this.ownsDir && !process.env.KEEP_REDIS_DIRS) rmSync(this.dir, { recursive: true, force: true });
  }

  freeze(): void {
    if (this.alive) signal(this.pid, 'SIGSTOP');
  }

  thaw(): void {
    if (this.alive) signal(this.pid, 'SIGCONT');
  }

  async restart(): Promise<RedisProc> {
    await this.kill();
    return this.launch();
  }
}

function isPortClash(err: unknown): boolean {
  return err instanceof Error && /Address already in use|bind: /i.test(err.message);
}

/**
 * Starts a standalone redis-server on 127.0.0.1 with no persistence, in a fresh temp dir unless
 * `dir` is given. With no `port`, a free one is chosen (and chosen again if another process
 * takes it first).
 */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisProc> {
  const attempts = opts.port === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort());
    const dir = opts.dir ? resolve(opts.dir) : mkdtempSync(join(tmpdir(), `redis-${port}-`));
    const argv = ['--port', String(port), '--bind', LOOPBACK, '--save', '', '--appendonly', 'no', '--dir', dir, ...(opts.args ?? [])];
    try {
      return await new RedisProcess(port, dir, argv, opts.detached ?? false, opts.dir === undefined).launch();
    } catch (err) {
      if (attempt >= attempts || !isPortClash(err)) throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sentinel topology

/** Replaces every {{name}}; a placeholder with no value is an error, not an empty string. */
export function renderTemplate(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`template placeholder {{${name}}} has no value`);
    return String(value);
  });
}

function writeConfig(templateName: string, file: string, values: Record<string, string | number>): void {
  const template = readFileSync(join(TEMPLATE_DIR, templateName), 'utf8');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, renderTemplate(template, values));
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
async function pollUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** Count of replicas the master reports as connected and online. */
async function onlineReplicaCount(masterPort: number): Promise<number> {
  const info = parseInfo(await sendCommand(masterPort, ['INFO', 'replication'], 500));
  return Object.entries(info).filter(([key, value]) => /^slave\d+$/.test(key) && value.includes('state=online')).length;
}

async function roleOf(port: number): Promise<string> {
  const role = await sendCommand(port, ['ROLE'], 500);
  return Array.isArray(role) ? String(role[0]) : '';
}

/** Reads the master's address from one sentinel. */
export async function askSentinelForMaster(sentinelPort: number, masterName: string, timeoutMs = 500): Promise<HostPort> {
  const reply = await sendCommand(sentinelPort, ['SENTINEL', 'get-master-addr-by-name', masterName], timeoutMs);
  if (!Array.isArray(reply) || reply.length !== 2) throw new Error(`sentinel ${sentinelPort} does not know ${masterName}`);
  return { host: String(reply[0]), port: Number(reply[1]) };
}

/**
 * Starts 1 master + N replicas (default 2) + M sentinels (default 3, quorum M/2+1) and resolves
 * once every replica is online at the master and every sentinel knows the master, all replicas
 * and all other sentinels. On failure everything it started is killed before it throws.
 */
export async function startSentinelTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const masterName = opts.masterName ?? 'mymaster';
  const downAfterMs = opts.downAfterMs ?? 1_000;
  const failoverTimeoutMs = opts.failoverTimeoutMs ?? 5_000;
  const minReplicasToWrite = opts.minReplicasToWrite ?? 2;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  const detached = opts.detached ?? false;
  const ownsDir = opts.dir === undefined;
  const root = opts.dir ? resolve(opts.dir) : mkdtempSync(join(tmpdir(), 'redis-sentinel-'));
  mkdirSync(root, { recursive: true });

  const replicaCount = opts.ports?.replicas?.length ?? 2;
  const sentinelCount = opts.ports?.sentinels?.length ?? 3;
  const quorum = Math.floor(sentinelCount / 2) + 1;
  const spare = await freePorts(1 + replicaCount + sentinelCount);
  const masterPort = opts.ports?.master ?? spare[0]!;
  const replicaPorts = opts.ports?.replicas ?? spare.slice(1, 1 + replicaCount);
  const sentinelPorts = opts.ports?.sentinels ?? spare.slice(1 + replicaCount);

  const nodes: RedisProcess[] = [];
  const sentinelProcs: RedisProcess[] = [];
  let stopped = false;

  const stopAll = async (): Promise<void> => {
    // Sentinels first, so none of them starts a failover while the data nodes go away.
    await Promise.all(sentinelProcs.map((p) => p.kill()));
    await Promise.all(nodes.map((p) => p.kill()));
    if (!stopped && ownsDir && !process.env.KEEP_REDIS_DIRS) rmSync(root, { recursive: true, force: true });
    stopped = true;
  };

  const startDataNode = (port: number, replicaOf: number | undefined): Promise<RedisProcess> => {
    const dir = join(root, `node-${port}`);
    const conf = join(dir, 'redis.conf');
    writeConfig('redis.conf.tmpl', conf, {
      port,
      dir,
      minReplicasToWrite,
      replicaof: replicaOf === undefined ? '' : `replicaof ${LOOPBACK} ${replicaOf}`,
    });
    const node = new RedisProcess(port, dir, [conf], detached);
    nodes.push(node);
    return node.launch();
  };

  const startSentinel = (port: number): Promise<RedisProcess> => {
    const dir = join(root, `sentinel-${port}`);
    const conf = join(dir, 'sentinel.conf');
    writeConfig('sentinel.conf.tmpl', conf, { port, dir, masterName, masterPort, quorum, downAfterMs, failoverTimeoutMs });
    const sentinel = new RedisProcess(port, dir, [conf, '--sentinel'], detached);
    sentinelProcs.push(sentinel);
    return sentinel.launch();
  };

  try {
    await startDataNode(masterPort, undefined);
    await Promise.all(replicaPorts.map((port) => startDataNode(port, masterPort)));
    await pollUntil(`${replicaCount} online replicas at master ${masterPort}`, readyTimeoutMs, async () =>
      (await onlineReplicaCount(masterPort)) === replicaCount ? true : undefined,
    );
    // Sentinels start after the sync so their first INFO of the master already lists the replicas.
    await Promise.all(sentinelPorts.map(startSentinel));
    await pollUntil(`every sentinel to know the master, ${replicaCount} replicas and ${sentinelCount - 1} peers`, readyTimeoutMs, async () => {
      for (const port of sentinelPorts) {
        const master = pairsToRecord(await sendCommand(port, ['SENTINEL', 'MASTER', masterName], 500));
        if (master.flags !== 'master' || Number(master.port) !== masterPort) return undefined;
        const replicas = await sendCommand(port, ['SENTINEL', 'REPLICAS', masterName], 500);
        const peers = await sendCommand(port, ['SENTINEL', 'SENTINELS', masterName], 500);
        if (!Array.isArray(replicas) || replicas.length !== replicaCount) return undefined;
        if (!Array.isArray(peers) || peers.length !== sentinelCount - 1) return undefined;
      }
      return true;
    });
  } catch (err) {
    const logs = [...nodes, ...sentinelProcs].map((p) => `--- ${p.logFile} ---\n${p.logTail(10)}`).join('\n');
    await stopAll();
    throw new Error(`sentinel topology did not start: ${(err as Error).message}\n${ownsDir ? logs : ''}`);
  }

  const currentMaster = async (): Promise<HostPort> => {
    const errors: string[] = [];
    for (const sentinel of sentinelProcs) {
      if (!sentinel.running) continue;
      try {
        return await askSentinelForMaster(sentinel.port, masterName);
      } catch (err) {
        errors.push(`${sentinel.port}: ${(err as Error).message}`);
      }
    }
    throw new Error(`no live sentinel answered for ${masterName} (${errors.join('; ') || 'none running'})`);
  };

  const waitForNewMaster = (oldPort: number, timeoutMs: number): Promise<HostPort> =>
    pollUntil(`a master other than port ${oldPort}`, timeoutMs, async () => {
      const master = await currentMaster();
      if (master.port === oldPort) return undefined;
      return (await roleOf(master.port)) === 'master' ? master : undefined;
    });

  return {
    masterName,
    sentinels: sentinelPorts.map((port) => ({ host: LOOPBACK, port })),
    nodes,
    sentinelProcs,
    dir: root,
    currentMaster,
    nodeByPort: (port) => nodes.find((n) => n.port === port),
    waitForNewMaster,
    stopAll,
  };
}

/** True if the pid is alive and not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
