/**
 * infra/: the compose file, the Dockerfile and the sentinel entrypoint.
 *
 * - The compose file describes the architecture's topology (1 master + 2 replicas + 3
 *   sentinels, quorum 2, short down-after, min-replicas-to-write 2), PostgreSQL and the app,
 *   all on 127.0.0.1, and a compose CLI (when one is installed) accepts it.
 * - Without Docker: the compose file's own Redis commands and sentinel entrypoint run on local
 *   redis-server processes, and a switch drill runs against them with the app's REDIS_SENTINELS.
 * - With a Docker engine: the stack up through testcontainers' DockerComposeEnvironment, a
 *   kill drill against the containers (`docker kill` of the master), and the containerised app
 *   must follow the new master and keep serving. CI (.ci/run) starts a private engine and
 *   builds the images from the host's binaries (infra/local-images.sh), so it runs there; with
 *   CI set, a missing engine or image fails the test. Elsewhere it is skipped, with the reason
 *   printed, when no engine answers.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DockerComposeEnvironment, type StartedDockerComposeEnvironment } from 'testcontainers';
import { DrillClient, ok } from '../drill/client.ts';
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
// With a Docker engine: the real thing, through testcontainers' DockerComposeEnvironment.
// The images are the compose file's own tags (in CI built from the host's binaries by
// infra/local-images.sh, which .ci/run calls after starting its private engine). In CI an
// absent engine is a failure, not a skip; elsewhere the test is skipped with the reason printed.

async function dockerEngine(): Promise<string | null> {
  const info = await run(['docker', 'info', '--format', '{{.ServerVersion}}'], { timeoutMs: 10_000 });
  if (info.code === 0 && info.out) return null;
  return `no Docker engine answers (docker info: ${info.err.split('\n')[0] || `exit ${info.code}`})`;
}

async function missingImages(): Promise<string[]> {
  const wanted = [...new Set(Object.values(services).map((s) => s.image).filter((i): i is string => !!i))];
  const missing: string[] = [];
  for (const image of wanted) if ((await run(['docker', 'image', 'inspect', image], { timeoutMs: 10_000 })).code !== 0) missing.push(image);
  return missing;
}

const noEngine = await dockerEngine();
const cli = noEngine ? null : await composeCli();
const missing = noEngine || !cli ? [] : await missingImages();
const engineProblem = noEngine
  ?? (cli ? null : 'a Docker engine answers, but no compose CLI is installed')
  ?? (missing.length ? `images ${missing.join(', ')} are missing (no registry here: run infra/local-images.sh)` : null);
const inCi = !!process.env.CI && process.env.CI !== 'false';
if (engineProblem) console.log(`${inCi ? 'FAIL (CI)' : 'skip'}: compose stack: ${engineProblem}`);

describe.skipIf(engineProblem !== null && !inCi)('compose stack with a Docker engine (testcontainers)', () => {
  // Ryuk (testcontainers' reaper) is an image pulled from Docker Hub: off here, and the stack is
  // taken down in afterAll (and CI's engine, with everything in it, goes at the end of the run).
  process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
  const project = `ticketing-test-${process.pid}`;
  const appUrl = `http://127.0.0.1:${app.environment!.PORT}`;
  const sentinelAddrs = parseHostPorts(app.environment!.REDIS_SENTINELS!);
  const masterName = app.environment!.REDIS_MASTER_NAME!;
  let stack: StartedDockerComposeEnvironment | undefined;
  let upSeconds = 0;

  beforeAll(async () => {
    if (engineProblem) throw new Error(`CI runs the compose stack for real, but ${engineProblem}`);
    const started = Date.now();
    stack = await new DockerComposeEnvironment(join(ROOT, 'infra'), 'docker-compose.yml')
      .withProjectName(project)
      .withEnvironment(TEST_ENV)
      // docker-compose v1 (Debian's) has no `docker compose` plugin: name the standalone binary.
      .withClientOptions(cli![0] === 'docker-compose' ? { executable: { standalone: true, executablePath: 'docker-compose' } } : {})
      // Every service with a healthcheck (data nodes, PostgreSQL, the app) is waited for through
      // it; each wait is bounded.
      .withStartupTimeout(120_000)
      .up();
    upSeconds = (Date.now() - started) / 1000;
  }, 300_000);

  afterAll(async () => {
    // timeout 0 would mean "the default 10 s" (testcontainers passes -t only when non-zero).
    await stack?.down({ removeVolumes: true, timeout: 1000 });
  }, 120_000);

  /** Polls check until it answers true; fails naming what it waited for. */
  const until = async (what: string, timeoutMs: number, check: () => Promise<boolean>) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await Bun.sleep(100);
    }
  };
  const appStatus = () => fetch(`${appUrl}/admin/status`, { headers: { 'X-Admin-Key': TEST_ENV.ADMIN_API_KEY }, signal: AbortSignal.timeout(2000) })
    .then((r) => r.json() as Promise<{ mode: string; redis: { master: string | null } }>);

  test('kill drill against the containers; the containerised app follows the new master and keeps answering', async () => {
    console.log(`compose up through testcontainers (${cli!.join(' ')}): ${upSeconds.toFixed(1)} s`);
    expect(stack!.getContainer(cli![0] === 'docker-compose' ? `${project}_app_1` : 'app-1')).toBeDefined();
    await until('the containerised app to be ready', 60_000, async () => (await fetch(`${appUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).ok);
    const sentinelPorts = sentinelAddrs.map((s) => s.port);
    await until('3 sentinels that know 2 replicas and 2 peers', 60_000, async () => {
      for (const port of sentinelPorts) {
        const replicas = await sendCommand(port, ['SENTINEL', 'REPLICAS', masterName], 500);
        const peers = await sendCommand(port, ['SENTINEL', 'SENTINELS', masterName], 500);
        if (!Array.isArray(replicas) || replicas.length !== 2 || !Array.isArray(peers) || peers.length !== 2) return false;
      }
      return true;
    });

    // The containerised app under its own light traffic, all through the drill: a new user takes
    // a token, joins (a write to the master) and polls, about once a second. Each request has a
    // 5 s deadline.
    const api = new DrillClient(appUrl, TEST_ENV.ADMIN_API_KEY, 5_000);
    const concert = await api.call('status', 'POST', '/admin/concerts', {
      admin: true, body: { title: `compose ${project}`, schedules: [{ date: new Date(Date.now() + 30 * 86_400_000).toISOString(), seats: 100, price: 1000 }] },
    });
    expect(concert.status).toBe(201);
    let nextUser = 900_000_000 + (process.pid % 1000) * 10_000;
    type Journey = { at: number; ok: boolean; status: number; why?: string };
    const journey = async (): Promise<Journey> => {
      const userId = nextUser++;
      const t = await api.call('token', 'POST', '/v1/tokens', { body: { userId } });
      if (!ok(t)) return { at: t.at, ok: false, status: t.status, why: `token ${t.status} ${t.code}` };
      const j = await api.call('join', 'POST', `/v1/concerts/${concert.body.id}/queue`, { token: t.body.token });
      if (!ok(j)) return { at: j.at, ok: false, status: j.status, why: `join ${j.status} ${j.code}` };
      const p = await api.call('poll', 'GET', '/v1/queue/me', { token: j.body.token });
      if (!ok(p)) return { at: p.at, ok: false, status: p.status, why: `poll ${p.status} ${p.code}` };
      return { at: p.at, ok: true, status: p.status };
    };
    const first = await journey();
    expect(first.why).toBeUndefined();
    const probes: Journey[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        probes.push(await journey());
        // About one journey a second: the app's token limit per client is 60 a minute.
        await Bun.sleep(1000);
      }
    })();

    const nodePorts = Object.fromEntries(redisNodes.map(([name, s]) => [name, Number(argAfter(s.command, '--port'))]));
    const target = await composeTopology({ project, masterName, sentinels: sentinelAddrs, nodePorts });
    const oldMaster = await target.currentMaster();
    const drillStart = Date.now();
    let report: Awaited<ReturnType<typeof runDrill>>;
    try {
      report = await runDrill({
        scenario: 'kill', target, databaseUrl: app.environment!.DATABASE_URL,
        durationSec: 15, faultAfterSec: 4, users: 30,
      });
    } finally {
      probing = false;
      await prober;
    }
    console.log(`compose kill drill: master ${report.fault.oldMaster} killed, new master ${report.fault.newMaster} after ` +
      `${((report.fault.failoverMs ?? NaN) / 1000).toFixed(1)} s; the drill's service followed after ` +
      `${((report.fault.statusFollowedMs ?? NaN) / 1000).toFixed(1)} s; the killed node served as a replica ` +
      `${((report.fault.replicaRejoinMs ?? NaN) / 1000).toFixed(1)} s after its restart`);
    console.log(`  errors: ${JSON.stringify(report.errorsByCode)}; notes: ${report.fault.notes.join('; ') || '-'}`);
    expect(report.fault.oldMaster).toBe(`${oldMaster.host}:${oldMaster.port}`);
    expect(report.fault.newMaster).not.toBeNull();
    expect(report.fault.newMaster).not.toBe(report.fault.oldMaster);
    expect(report.fault.failoverMs).toBeLessThan(30_000);
    expect(report.payments.lost).toBe(0);
    expect(report.doubleSales).toBe(0);
    expect(report.fault.replicaRejoinMs).not.toBeNull();

    // The containerised app names the new master, and serves fresh users again.
    await until(`the containerised app to name the sentinels' master ${report.final.sentinelMaster}`, 30_000,
      async () => (await appStatus()).redis.master === report.final.sentinelMaster);
    // Back from SQL mode once the rebuild has run (the fleet's shared mode; seconds after the failover).
    const backSince = Date.now();
    await until('the containerised app to serve from Redis again', 30_000, async () => (await appStatus()).mode === 'redis');
    console.log(`  the containerised app served from Redis again ${((Date.now() - backSince) / 1000).toFixed(1)} s after it named the new master`);
    const status = await appStatus();
    expect(status.redis.master).toBe(report.final.sentinelMaster);
    expect(status.redis.master).not.toBe(report.fault.oldMaster);
    expect(status.mode).toBe('redis');
    const after: Journey[] = [];
    for (let i = 0; i < 10; i++) after.push(await journey());
    expect(after.filter((r) => !r.ok)).toEqual([]);

    // Through the drill the app may refuse for a moment (503 while the new master lacks its 2
    // replicas and the app moves to SQL and back), never with anything else, and never for long.
    const failed = probes.filter((r) => !r.ok);
    let longestRefusalMs = 0;
    let refusedSince: number | null = null;
    for (const r of probes) {
      if (!r.ok) refusedSince ??= r.at;
      else if (refusedSince !== null) { longestRefusalMs = Math.max(longestRefusalMs, r.at - refusedSince); refusedSince = null; }
    }
    if (refusedSince !== null) longestRefusalMs = Math.max(longestRefusalMs, after[0]!.at - refusedSince);
    const rel = (at: number) => `${((at - drillStart) / 1000).toFixed(1)} s`;
    console.log(`  containerised app during the drill (kill at about ${rel(drillStart + 4000)}): ${probes.length} journeys, ` +
      `${failed.length} refused${failed.length ? ` (${failed.map((f) => `${f.why} at ${rel(f.at)}`).join(', ')})` : ''}; ` +
      `longest refusal ${(longestRefusalMs / 1000).toFixed(1)} s; after the drill ${after.length}/${after.length} journeys succeeded`);
    expect(probes.length).toBeGreaterThan(10);
    expect(failed.filter((r) => r.status !== 503)).toEqual([]);
    expect(longestRefusalMs).toBeLessThan(15_000);
  }, 300_000);
});
