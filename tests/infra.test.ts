/**
 * infra/: the compose file, the Dockerfile and the sentinel entrypoint.
 *
 * - The compose file describes the architecture's topology (1 master + 2 replicas + 3
 *   sentinels, quorum 2, short down-after, min-replicas-to-write 2), PostgreSQL and the app,
 *   all on 127.0.0.1, and a compose CLI (when one is installed) accepts it.
 * - Without Docker: the compose file's own Redis commands and sentinel entrypoint run on local
 *   redis-server processes, and a switch drill runs against them with the app's REDIS_SENTINELS.
 * - With a Docker engine: `docker compose up`, a kill drill against the containers, and the
 *   containerised app must follow the new master. Skipped, with the reason printed, when no
 *   engine answers (as on the development machines and CI here).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runDrill } from '../drill/drill.ts';
import { formatReport } from '../drill/report.ts';
import { composeTopology, parseHostPorts } from '../drill/target.ts';
import { pairsToRecord, parseInfo, portInUse, sendCommand, startRedis, type RedisProc } from '../sentinel/topology.ts';

const ROOT = resolve(import.meta.dir, '..');
const COMPOSE_FILE = join(ROOT, 'infra', 'docker-compose.yml');
const DOCKERFILE = join(ROOT, 'infra', 'Dockerfile');
const ENTRYPOINT = join(ROOT, 'infra', 'sentinel-entrypoint.sh');

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  network_mode?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
const compose = Bun.YAML.parse(readFileSync(COMPOSE_FILE, 'utf8')) as { services: Record<string, Service> };
const services = compose.services;

const argAfter = (cmd: string[] | undefined, flag: string): string | undefined => {
  const i = cmd?.indexOf(flag) ?? -1;
  return i >= 0 ? cmd![i + 1] : undefined;
};
const redisNodes = Object.entries(services).filter(([, s]) => s.command?.[0] === 'redis-server');
const sentinels = Object.entries(services).filter(([, s]) => s.environment?.SENTINEL_PORT !== undefined);
const master = redisNodes.find(([, s]) => argAfter(s.command, '--replicaof') === undefined);
const app = services.app!;
const TEST_ENV = { JWT_SECRET: 'compose-test-secret-that-is-at-least-32-bytes', ADMIN_API_KEY: 'compose-test-admin-key' };

/** Runs a command with a deadline; never throws. */
async function run(cmd: string[], opts: { timeoutMs?: number; env?: Record<string, string> } = {}) {
  try {
    const proc = Bun.spawn(cmd, { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, ...opts.env } });
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    return { code, out: out.trim(), err: err.trim() };
  } catch (e) {
    return { code: -1, out: '', err: (e as Error).message };
  }
}

/** `docker compose` (v2 plugin) or `docker-compose` (v1), whichever answers. */
async function composeCli(): Promise<string[] | null> {
  if ((await run(['docker', 'compose', 'version'])).code === 0) return ['docker', 'compose'];
  if ((await run(['docker-compose', 'version'])).code === 0) return ['docker-compose'];
  return null;
}

describe('compose file', () => {
  test('has the topology: 1 master, 2 replicas of it, 3 sentinels (quorum 2, short down-after), min-replicas-to-write 2', () => {
    expect(redisNodes.length).toBe(3);
    expect(master).toBeDefined();
    const masterPort = argAfter(master![1].command, '--port');
    const replicas = redisNodes.filter(([name]) => name !== master![0]);
    expect(replicas.length).toBe(2);
    for (const [, s] of replicas) expect(s.command!.slice(s.command!.indexOf('--replicaof') + 1, s.command!.indexOf('--replicaof') + 3)).toEqual(['127.0.0.1', masterPort!]);
    for (const [, s] of redisNodes) {
      expect(argAfter(s.command, '--min-replicas-to-write')).toBe('2');
      expect(argAfter(s.command, '--bind')).toBe('127.0.0.1');
      expect(s.environment?.REDIS_PORT).toBe(argAfter(s.command, '--port'));
    }
    expect(sentinels.length).toBe(3);
    for (const [, s] of sentinels) {
      expect(s.environment!.MASTER_PORT).toBe(masterPort);
      expect(s.environment!.QUORUM).toBe('2');
      expect(Number(s.environment!.DOWN_AFTER_MS)).toBeLessThanOrEqual(5000);
      expect(s.entrypoint).toEqual(['sh', '/usr/local/bin/sentinel-entrypoint.sh']);
    }
  });

  test('runs the app from infra/Dockerfile on Sentinel and PostgreSQL, with its secrets from the environment', () => {
    expect(app.build).toEqual({ context: '..', dockerfile: 'infra/Dockerfile' });
    const env = app.environment!;
    const sentinelAddrs = sentinels.map(([, s]) => `127.0.0.1:${s.environment!.SENTINEL_PORT}`).sort();
    expect(env.REDIS_SENTINELS!.split(',').sort()).toEqual(sentinelAddrs);
    expect(env.DATABASE_URL).toMatch(/^postgres:\/\/.+@127\.0\.0\.1:15432\//);
    expect(env.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?/);
    expect(env.ADMIN_API_KEY).toMatch(/^\$\{ADMIN_API_KEY:\?/);
    expect(Object.keys(app.depends_on!).sort()).toEqual(['postgres', ...sentinels.map(([n]) => n)].sort());
    expect(services.postgres!.command).toContain('port=15432');
  });

  test('stays on 127.0.0.1 and off the ports of the local Redis, PostgreSQL and `npm run stack`', () => {
    for (const [, s] of Object.entries(services)) expect(s.network_mode).toBe('host');
    const text = readFileSync(COMPOSE_FILE, 'utf8').split('\n').filter((l) => !l.trim().startsWith('#')).join('\n');
    const ports = [...text.matchAll(/(?<![\d.])(\d{4,5})(?!\d)/g)].map((m) => Number(m[1])).filter((p) => p > 1024);
    for (const taken of [6379, 5432, 6380, 6381, 6382, 26379, 26380, 26381]) expect(ports).not.toContain(taken);
    expect(text).not.toMatch(/0\.0\.0\.0/);
  });

  test('Dockerfile: official Bun image, runs bun src/main.ts', () => {
    const dockerfile = readFileSync(DOCKERFILE, 'utf8');
    expect(dockerfile).toMatch(/^FROM oven\/bun:1\.4\.4$/m);
    expect(dockerfile).toMatch(/^CMD \["bun", "src\/main\.ts"\]$/m);
    const pinned = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).dependencies.bun;
    expect(dockerfile).toContain(`oven/bun:${pinned}`);
  });

  test('a compose CLI accepts the file (skipped when none is installed)', async () => {
    const cli = await composeCli();
    if (!cli) {
      console.log('skip: neither `docker compose` nor `docker-compose` is installed: compose file not validated by a CLI');
      return;
    }
    const ok = await run([...cli, '-f', COMPOSE_FILE, 'config', '-q'], { env: TEST_ENV });
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    // The secrets are required: no silent default.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'JWT_SECRET' && k !== 'ADMIN_API_KEY')) as Record<string, string>;
    const proc = Bun.spawn([...cli, '-f', COMPOSE_FILE, 'config', '-q'], { env, stdout: 'pipe', stderr: 'pipe' });
    expect(await proc.exited).not.toBe(0);
  });
});

describe('compose topology on local redis-server processes (no Docker)', () => {
  const nodes: RedisProc[] = [];
  const sentinelProcs: ReturnType<typeof Bun.spawn>[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'compose-topology-'));
  afterAll(async () => {
    for (const p of sentinelProcs) p.kill('SIGTERM');
    await Promise.all(sentinelProcs.map((p) => p.exited));
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('the compose commands and sentinel entrypoint form a working topology the app follows through a failover', async () => {
    const ports = [...redisNodes.map(([, s]) => Number(argAfter(s.command, '--port'))), ...sentinels.map(([, s]) => Number(s.environment!.SENTINEL_PORT))];
    const busy: number[] = [];
    for (const port of ports) if (await portInUse(port)) busy.push(port);
    if (busy.length > 0) {
      console.log(`skip: ports ${busy.join(', ')} are in use on 127.0.0.1 (a compose stack may be running)`);
      return;
    }
    // Data nodes: exactly the compose commands (startRedis adds a temp --dir; later flags win).
    for (const [name, s] of [master!, ...redisNodes.filter(([n]) => n !== master![0])]) {
      const port = Number(argAfter(s.command, '--port'));
      nodes.push(await startRedis({ port, dir: join(dir, name), args: s.command!.slice(1) }));
    }
    const masterPort = Number(argAfter(master![1].command, '--port'));
    const deadline = Date.now() + 20_000;
    const until = async (what: string, check: () => Promise<boolean>) => {
      while (!(await check().catch(() => false))) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await Bun.sleep(100);
      }
    };
    await until('2 online replicas', async () => {
      const info = parseInfo(await sendCommand(masterPort, ['INFO', 'replication'], 500));
      return Object.entries(info).filter(([k, v]) => /^slave\d+$/.test(k) && v.includes('state=online')).length === 2;
    });
    const minReplicas = await sendCommand(masterPort, ['CONFIG', 'GET', 'min-replicas-to-write']);
    expect(minReplicas).toEqual(['min-replicas-to-write', '2']);

    // Sentinels: the entrypoint script with each service's environment; `timeout` bounds its life.
    for (const [name, s] of sentinels) {
      sentinelProcs.push(Bun.spawn(['timeout', '-s', 'KILL', '120', 'sh', ENTRYPOINT], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...s.environment, SENTINEL_CONF: join(dir, name, 'sentinel.conf') },
        stdout: 'ignore', stderr: 'ignore',
      }));
    }
    const sentinelPorts = sentinels.map(([, s]) => Number(s.environment!.SENTINEL_PORT));
    await until('sentinels that know 2 replicas and 2 peers', async () => {
      for (const port of sentinelPorts) {
        const replicas = await sendCommand(port, ['SENTINEL', 'REPLICAS', 'mymaster'], 500);
        const peers = await sendCommand(port, ['SENTINEL', 'SENTINELS', 'mymaster'], 500);
        if (!Array.isArray(replicas) || replicas.length !== 2 || !Array.isArray(peers) || peers.length !== 2) return false;
      }
      return true;
    });
    const watched = pairsToRecord(await sendCommand(sentinelPorts[0]!, ['SENTINEL', 'MASTER', 'mymaster']));
    expect(watched.quorum).toBe('2');
    expect(watched['down-after-milliseconds']).toBe(sentinels[0]![1].environment!.DOWN_AFTER_MS);

    // The app's own REDIS_SENTINELS, through a failover under traffic.
    const report = await runDrill({
      scenario: 'switch', sentinels: parseHostPorts(app.environment!.REDIS_SENTINELS!), masterName: app.environment!.REDIS_MASTER_NAME,
      durationSec: 8, faultAfterSec: 3, users: 30, measureRejoin: false,
    });
    console.log(formatReport(report));
    expect(report.fault.newMaster).not.toBe(report.fault.oldMaster);
    expect(report.final.statusMaster).toBe(report.final.sentinelMaster);
    expect(report.final.statusMaster).not.toBe(report.fault.oldMaster);
    expect(report.payments.lost).toBe(0);
    expect(report.doubleSales).toBe(0);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// With a Docker engine: the real thing.

async function dockerEngine(): Promise<string | null> {
  const info = await run(['docker', 'info', '--format', '{{.ServerVersion}}'], { timeoutMs: 10_000 });
  if (info.code === 0 && info.out) return null;
  return `no Docker engine answers (docker info: ${info.err.split('\n')[0] || `exit ${info.code}`})`;
}

const noEngine = await dockerEngine();
const cli = noEngine ? null : await composeCli();
const skipReason = noEngine ?? (cli ? null : 'a Docker engine answers, but no compose CLI is installed');
if (skipReason) console.log(`skip: compose drill: ${skipReason}`);

describe.skipIf(skipReason !== null)('compose stack with a Docker engine', () => {
  const project = `ticketing-drill-${process.pid}`;
  const composeCmd = (...args: string[]) => [...cli!, '-p', project, '-f', COMPOSE_FILE, ...args];
  afterAll(async () => {
    await run(composeCmd('down', '-v', '--remove-orphans'), { timeoutMs: 120_000, env: TEST_ENV });
  });

  test('kill drill against the containers; the containerised app follows the new master', async () => {
    const up = await run(composeCmd('up', '-d', '--build'), { timeoutMs: 600_000, env: TEST_ENV });
    if (up.code !== 0) throw new Error(`compose up failed: ${up.err}`);
    const appUrl = `http://127.0.0.1:${app.environment!.PORT}`;
    const deadline = Date.now() + 120_000;
    while ((await fetch(`${appUrl}/readyz`).then((r) => r.ok, () => false)) === false) {
      if (Date.now() > deadline) throw new Error('the compose app did not become ready within 120 s');
      await Bun.sleep(500);
    }
    const target = await composeTopology({
      composeFile: COMPOSE_FILE, project, masterName: app.environment!.REDIS_MASTER_NAME!,
      sentinels: parseHostPorts(app.environment!.REDIS_SENTINELS!),
      nodePorts: Object.fromEntries(redisNodes.map(([name, s]) => [name, Number(argAfter(s.command, '--port'))])),
    });
    const report = await runDrill({
      scenario: 'kill', target, databaseUrl: app.environment!.DATABASE_URL, durationSec: 15, faultAfterSec: 4, users: 40,
    });
    console.log(JSON.stringify(report.fault), JSON.stringify(report.errorsByCode));
    expect(report.payments.lost).toBe(0);
    expect(report.doubleSales).toBe(0);
    expect(report.fault.newMaster).not.toBeNull();
    const status = await fetch(`${appUrl}/admin/status`, { headers: { 'X-Admin-Key': TEST_ENV.ADMIN_API_KEY } }).then((r) => r.json()) as
      { redis: { master: string | null } };
    expect(status.redis.master).toBe(report.final.sentinelMaster);
  }, 900_000);
});
