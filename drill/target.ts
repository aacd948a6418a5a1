/**
 * What a drill breaks: the Sentinel topology it runs against, and a handle on each data node
 * that can kill, freeze, thaw and restart it. Three kinds of target:
 *
 * - own:      a fresh topology from sentinel/topology.ts, ended with the drill;
 * - local:    a running topology on 127.0.0.1 (e.g. `npm run stack`), given by its sentinels;
 *             each node is found through `INFO server` (process_id, executable, config_file);
 * - compose:  the infra/ compose project (host networking, so also 127.0.0.1); nodes are its
 *             containers, broken with `docker kill`, `docker pause`, `docker start`.
 *
 * Only loopback addresses are accepted, and never 127.0.0.1:6379 (the shared Redis).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  askSentinelForMaster, isAlive, LOOPBACK, parseInfo, sendCommand, startSentinelTopology, type HostPort, type Topology,
} from '../sentinel/topology.ts';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The shared Redis of this machine: a drill never touches it. */
const FORBIDDEN_PORT = 6379;

export interface NodeHandle {
  port: number;
  /** SIGKILL (or `docker kill`) and wait until the port is gone. */
  kill(): Promise<void>;
  /** SIGSTOP (or `docker pause`): the port stays open, nothing answers. */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** Starts the killed node again, empty, on the same port. */
  restart(): Promise<void>;
}

export interface DrillTarget {
  kind: 'own' | 'local' | 'compose';
  description: string;
  masterName: string;
  sentinels: HostPort[];
  currentMaster(): Promise<HostPort>;
  /** Polls the sentinels until they name a master other than oldPort that says it is master. */
  waitForNewMaster(oldPort: number, timeoutMs: number): Promise<HostPort>;
  node(port: number): NodeHandle;
  /** SENTINEL FAILOVER through the first sentinel that accepts it. */
  failover(): Promise<void>;
  /** Ends what the drill started (the own topology); leaves a running stack alone. */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

export function assertLoopback(addr: HostPort, what: string): void {
  if (!['127.0.0.1', 'localhost'].includes(addr.host)) throw new Error(`${what} ${addr.host}:${addr.port}: only 127.0.0.1 is allowed`);
  if (addr.port === FORBIDDEN_PORT) throw new Error(`${what} 127.0.0.1:${FORBIDDEN_PORT} is the shared Redis: the drill never touches it`);
}

export function parseHostPorts(list: string): HostPort[] {
  return list.split(',').map((s) => s.trim()).filter(Boolean).map((item) => {
    const m = /^([^:]+):(\d{1,5})$/.exec(item);
    if (!m) throw new Error(`"${item}" is not host:port`);
    const addr = { host: m[1] === 'localhost' ? LOOPBACK : m[1]!, port: Number(m[2]) };
    assertLoopback(addr, 'sentinel');
    return addr;
  });
}

async function roleOf(port: number): Promise<string> {
  const role = await sendCommand(port, ['ROLE'], 500);
  return Array.isArray(role) ? String(role[0]) : '';
}

/** Shared by the local and compose targets: sentinel questions need no process handles. */
function sentinelQueries(sentinels: HostPort[], masterName: string) {
  const currentMaster = async (): Promise<HostPort> => {
    const errors: string[] = [];
    for (const s of sentinels) {
      try {
        const master = await askSentinelForMaster(s.port, masterName);
        assertLoopback(master, 'master');
        return master;
      } catch (err) {
        errors.push(`${s.port}: ${(err as Error).message}`);
      }
    }
    throw new Error(`no sentinel answered for ${masterName} (${errors.join('; ')})`);
  };
  const waitForNewMaster = async (oldPort: number, timeoutMs: number): Promise<HostPort> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const master = await currentMaster().catch(() => undefined);
      if (master && master.port !== oldPort && (await roleOf(master.port).catch(() => '')) === 'master') return master;
      if (Date.now() > deadline) throw new Error(`no new master (other than ${oldPort}) within ${timeoutMs} ms`);
      await sleep(50);
    }
  };
  const failover = async (): Promise<void> => {
    const errors: string[] = [];
    for (const s of sentinels) {
      try {
        await sendCommand(s.port, ['SENTINEL', 'FAILOVER', masterName], 2000);
        return;
      } catch (err) {
        errors.push(`${s.port}: ${(err as Error).message}`);
      }
    }
    throw new Error(`no sentinel accepted SENTINEL FAILOVER ${masterName} (${errors.join('; ')})`);
  };
  return { currentMaster, waitForNewMaster, failover };
}

// ---------------------------------------------------------------------------------------------

export async function ownTopology(opts: { downAfterMs?: number } = {}): Promise<DrillTarget> {
  const topology: Topology = await startSentinelTopology({ downAfterMs: opts.downAfterMs ?? 1000 });
  const queries = sentinelQueries(topology.sentinels, topology.masterName);
  return {
    kind: 'own',
    description: `own topology: nodes ${topology.nodes.map((n) => n.port).join(',')}, sentinels ${topology.sentinels.map((s) => s.port).join(',')}`,
    masterName: topology.masterName,
    sentinels: topology.sentinels,
    currentMaster: () => topology.currentMaster(),
    waitForNewMaster: (oldPort, timeoutMs) => topology.waitForNewMaster(oldPort, timeoutMs),
    failover: queries.failover,
    node(port) {
      const proc = topology.nodeByPort(port);
      if (!proc) throw new Error(`port ${port} is not a node of the drill's topology`);
      return {
        port,
        kill: () => proc.kill(),
        freeze: async () => proc.freeze(),
        thaw: async () => proc.thaw(),
        restart: async () => { await proc.restart(); },
      };
    },
    close: () => topology.stopAll(),
  };
}

// ---------------------------------------------------------------------------------------------


/** A node of a running local topology, found and restarted through what it says of itself. */
async function localNode(port: number): Promise<NodeHandle> {
  const info = parseInfo(await sendCommand(port, ['INFO', 'server'], 1000));
  const pid = Number(info.process_id);
  const executable = info.executable;
  const configFile = info.config_file;
  const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ') : '';
  // The pid must be this node's redis-server, on this machine: never signal anything else.
  if (!pid || !cmdline.includes('redis-server') || !cmdline.includes(`:${port}`)) {
    throw new Error(`node ${port}: process ${pid} ("${cmdline.trim()}") is not its redis-server on this machine`);
  }
  let current = pid;
  const waitGone = async (p: number) => {
    for (let i = 0; i < 200 && isAlive(p); i++) await sleep(25);
  };
  return {
    port,
    async kill() {
      process.kill(current, 'SIGKILL');
      await waitGone(current);
    },
    async freeze() { process.kill(current, 'SIGSTOP'); },
    async thaw() { process.kill(current, 'SIGCONT'); },
    async restart() {
      if (!configFile || !executable) throw new Error(`node ${port} was not started from a config file: cannot restart it`);
      if (isAlive(current)) {
        process.kill(current, 'SIGKILL');
        await waitGone(current);
      }
      const dir = dirname(configFile);
      const log = openSync(join(dir, 'redis.log'), 'a');
      try {
        // Detached, like the stack's own processes: it outlives the drill, as the stack does.
        const child = spawn(executable, [configFile], { cwd: dir, detached: true, stdio: ['ignore', log, log] });
        child.unref();
        if (!child.pid) throw new Error(`could not start ${executable} ${configFile}`);
        current = child.pid;
      } finally {
        closeSync(log);
      }
      // Keep `npm run stack:down` able to stop it.
      const pidFile = join(REPO_ROOT, '.stack', 'pids', `redis-${port}.pid`);
      if (existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8').trim()) === pid) writeFileSync(pidFile, `${current}\n`);
      for (let i = 0; i < 200; i++) {
        if ((await sendCommand(port, ['PING'], 300).catch(() => null)) === 'PONG') return;
        await sleep(25);
      }
      throw new Error(`node ${port} did not answer after its restart`);
    },
  };
}

export async function localTopology(sentinels: HostPort[], masterName: string): Promise<DrillTarget> {
  const queries = sentinelQueries(sentinels, masterName);
  const nodes = new Map<number, NodeHandle>();
  // Every node is looked up now, while it answers: a killed node cannot be asked later.
  const master = await queries.currentMaster();
  const replicas = await sendCommand(sentinels[0]!.port, ['SENTINEL', 'REPLICAS', masterName], 1000).catch(() => []);
  const ports = [master.port];
  if (Array.isArray(replicas)) {
    for (const r of replicas) {
      const rec: Record<string, string> = {};
      if (Array.isArray(r)) for (let i = 0; i + 1 < r.length; i += 2) rec[String(r[i])] = String(r[i + 1]);
      if (rec.port && !rec.flags?.includes('disconnected')) {
        assertLoopback({ host: rec.ip ?? '', port: Number(rec.port) }, 'replica');
        ports.push(Number(rec.port));
      }
    }
  }
  for (const port of ports) nodes.set(port, await localNode(port));
  return {
    kind: 'local',
    description: `running topology: nodes ${ports.join(',')}, sentinels ${sentinels.map((s) => s.port).join(',')}`,
    masterName, sentinels, ...queries,
    node(port) {
      const n = nodes.get(port);
      if (!n) throw new Error(`port ${port} is not a known node`);
      return n;
    },
    close: async () => {},
  };
}

// ---------------------------------------------------------------------------------------------

async function docker(args: string[], timeoutMs = 60_000): Promise<string> {
  const proc = Bun.spawn(['docker', ...args], { stdout: 'pipe', stderr: 'pipe' });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`docker ${args.join(' ')}: exit ${code}: ${err.trim() || out.trim()}`);
  return out.trim();
}

/**
 * The compose project of infra/docker-compose.yml. Its data nodes are the services whose
 * command has `--port N`; each one's container is found by the labels every compose CLI puts
 * on it (com.docker.compose.project / .service), so this works with `docker compose` (v2),
 * `docker-compose` (v1) and testcontainers' DockerComposeEnvironment alike.
 */
export async function composeTopology(opts: { project: string; sentinels: HostPort[]; masterName: string;
  nodePorts: Record<string, number> }): Promise<DrillTarget> {
  const queries = sentinelQueries(opts.sentinels, opts.masterName);
  const containers = new Map<number, string>();
  for (const [service, port] of Object.entries(opts.nodePorts)) {
    assertLoopback({ host: LOOPBACK, port }, 'node');
    const ids = await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${opts.project}`,
      '--filter', `label=com.docker.compose.service=${service}`]);
    if (!ids) throw new Error(`compose service ${service} of project ${opts.project} has no container`);
    containers.set(port, ids.split('\n')[0]!);
  }
  return {
    kind: 'compose',
    description: `compose project ${opts.project}: nodes ${[...containers.keys()].join(',')}`,
    masterName: opts.masterName, sentinels: opts.sentinels, ...queries,
    node(port) {
      const id = containers.get(port);
      if (!id) throw new Error(`port ${port} is not a node of the compose project`);
      return {
        port,
        kill: async () => { await docker(['kill', '--signal', 'KILL', id]); },
        freeze: async () => { await docker(['pause', id]); },
        thaw: async () => { await docker(['unpause', id]); },
        // The container's command has no data and no `replicaof` for the first master: it starts
        // empty, and the sentinels turn it into a replica of the new master.
        restart: async () => { await docker(['start', id]); },
      };
    },
    close: async () => {},
  };
}

export { roleOf };
