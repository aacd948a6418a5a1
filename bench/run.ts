/**
 * `npm run bench [-- options]`: load scenarios through the HTTP API against several targets,
 * each a separate server process, interleaved round by round. Writes bench/results/bench-*.{md,json}.
 *
 *   --duration 10             seconds per run
 *   --rounds 2                runs per (scenario, target); targets take turns within each round
 *   --scenarios poll,join,hold,hold-contended,journey,tokens   (also poll-one: one user polling; also --scenario; `--scenario scale` runs bench/scale.ts,
 *                             `--scenario eta` the wait-estimate simulation bench/eta.ts, e.g. `-- --scenario eta --seeds 1,2,3`)
 *   --targets redis,sql-sqlite,sql-pg,mget   (also redis-sqlite: redis mode with SQLite behind; node: the `redis`
 *                             target served by Node through npm run start:node's build)
 *   --poll-users 2000         waiting users the poll scenario takes turns with
 *   --connections 50          concurrent keep-alive connections (journey: virtual users = 4 × this)
 *   --client auto|wrk|autocannon|bun        auto prefers wrk, then autocannon, then the built-in Bun client
 *   --threads 1               wrk threads
 *   --warmup 10               seconds of the same load per (scenario, target) before its first measured run, so the
 *                             JIT has compiled the path (a cold service runs a poll at half its warm rate)
 *   --instances 1,2,4         also run each redis-mode service target on PostgreSQL (redis, node) as a fleet of that many
 *                             instances on one Redis and one database, the load spread over them (one client per
 *                             instance); adds a per-run table of CPU per request (service, Redis, PostgreSQL). Without
 *                             --targets it runs `redis,mget`. Default: one process per target, no fleet table
 *   --connections-per-instance  with --instances: each instance gets --connections (a fleet of N gets N × as many), so
 *                             each instance batches as much as one process does; by default a fleet shares --connections
 *   --cpu-prof                run service targets under `bun --cpu-prof --cpu-prof-md` (profiles in bench/results/profiles)
 *   --out bench/results
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Api, UserIds } from './lib/api.ts';
import { pickClient, runLoadSpread } from './lib/load.ts';
import { cpuCount, CpuMeter, loadAverage } from './lib/proc.ts';
import { aggregate, markdown, type RunRecord } from './lib/report.ts';
import { ALL_SCENARIOS, SCENARIOS, type ScenarioName, type ScenarioState } from './lib/scenarios.ts';
import {
  ALL_TARGETS, assertMode, closeAdmin, DEFAULT_TARGETS, fleetLabel, REPO_ROOT, startTarget, waitPostgresRoom, waitWriteBehindIdle,
  type Target, type TargetName,
} from './lib/servers.ts';
import { parseArgs } from './lib/args.ts';


/**
 * Targets that may run as a fleet: the service in redis mode on PostgreSQL. A SQL-mode fleet would
 * need every instance to lose Redis; SQLite is one host's file, and several processes writing it
 * answer "database is locked" (503) to joins.
 */
const FLEET_TARGETS: TargetName[] = ['redis', 'node'];

const IDLE_WINDOW_S = 2;

/** Share of one core the target's instances, Redis and PostgreSQL backends use with no load. */
async function idleCpu(t: Target, seconds: number): Promise<NonNullable<RunRecord['idle']>> {
  const meters = [new CpuMeter(() => t.pids), new CpuMeter(() => [t.redis.pid]), new CpuMeter(() => t.dbPids())];
  for (const m of meters) await m.start();
  await Bun.sleep(seconds * 1000);
  const [server, redis, db] = await Promise.all(meters.map((m) => m.stop()));
  return {
    server: server?.cores ?? null,
    redis: t.mode === 'redis' ? redis?.cores ?? null : null,
    db: t.db === 'postgres' ? db?.cores ?? null : null,
  };
}

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

function versionOf(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim().split('\n')[0]!;
  } catch {
    return `${cmd} ?`;
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const scenarioArg = String(args.scenarios ?? args.scenario ?? ALL_SCENARIOS.join(','));
  if (scenarioArg.split(',').includes('scale')) {
    const { main: scale } = await import('./scale.ts');
    await scale(process.argv.slice(2));
    return;
  }
  if (scenarioArg.split(',').includes('eta')) {
    const { main: eta } = await import('./eta.ts');
    await eta(process.argv.slice(2));
    return;
  }
  const scenarios = scenarioArg.split(',').map((s) => s.trim()) as ScenarioName[];
  for (const s of scenarios) if (!SCENARIOS[s]) throw new Error(`unknown scenario ${s} (known: ${ALL_SCENARIOS.join(', ')}, scale)`);
  const instances = args.instances === undefined ? null : String(args.instances).split(',').map((s) => Number(s.trim()));
  if (instances?.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--instances takes whole numbers ≥ 1, e.g. 1,2,4 (got ${args.instances})`);
  const defaultTargets = instances ? ['redis', 'mget'] : DEFAULT_TARGETS;
  const targetNames = String(args.targets ?? defaultTargets.join(',')).split(',').map((s) => s.trim()) as TargetName[];
  for (const t of targetNames) if (!ALL_TARGETS.includes(t)) throw new Error(`unknown target ${t} (known: ${ALL_TARGETS.join(', ')})`);
  const fleetTargets = instances ? targetNames.filter((t) => FLEET_TARGETS.includes(t)) : [];
  if (instances && fleetTargets.length === 0) throw new Error(`--instances needs a redis-mode service target on PostgreSQL among --targets (${FLEET_TARGETS.join(', ')})`);
  const durationS = Number(args.duration ?? 10);
  const rounds = Number(args.rounds ?? 2);
  const connections = Number(args.connections ?? 50);
  if (instances && connections < Math.max(...instances)) throw new Error(`--connections ${connections} cannot reach ${Math.max(...instances)} instances`);
  const perInstance = Boolean(args['connections-per-instance']);
  if (perInstance && !instances) throw new Error('--connections-per-instance goes with --instances');
  /** Connections a run on t opens, over all its instances. */
  const connectionsOf = (t: Target) => (perInstance ? connections * t.instances : connections);
  const threads = Number(args.threads ?? 1);
  const warmupS = Number(args.warmup ?? 10);
  const pollUsers = Number(args['poll-users'] ?? 2000);
  const client = await pickClient(String(args.client ?? 'auto') as 'auto');
  const outDir = resolve(REPO_ROOT, String(args.out ?? 'bench/results'));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const logDir = join('/tmp', `bench-logs-${stamp}`);
  const cpuProfileDir = args['cpu-prof'] ? join(outDir, 'profiles') : undefined;
  mkdirSync(outDir, { recursive: true });

  const loadBefore = loadAverage();
  log(`load average ${loadBefore?.join(' ')} on ${cpuCount()} cores; client ${client}; logs in ${logDir}`);
  if (loadBefore && loadBefore[0] > 0.5 * cpuCount()) log('WARNING: the machine is busy; numbers will be low and noisy (re-run when quiet)');

  const targets: Target[] = [];
  const stopAll = async () => {
    for (const t of targets.splice(0)) await t.stop().catch((err) => log(`stop ${t.name}: ${err}`));
    await closeAdmin();
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));

  const runs: RunRecord[] = [];
  const notes: string[] = [];
  let holdsReady = false;
  const users = new Map<Target, UserIds>();
  const lastRate = new Map<string, number>();
  try {
    for (const name of targetNames) {
      for (const n of fleetTargets.includes(name) ? instances! : [1]) {
        log(`starting ${fleetLabel(name, n)}`);
        targets.push(await startTarget(name, { logDir, cpuProfileDir, instances: n }));
      }
    }
    const service = targets.find((t) => t.kind === 'service');
    holdsReady = service ? (await new Api(service.base).call('POST', '/v1/reservations', { body: {} })).status !== 404 : false;
    for (const t of targets) users.set(t, new UserIds());

    for (const sname of scenarios) {
      try {
        await runScenario(sname);
      } catch (err) {
        // One scenario failing (a target died, set-up refused) must not lose the others' results.
        notes.push(`${sname} stopped: ${(err as Error).message.split('\n')[0]}`);
        log(`${sname}: FAILED: ${(err as Error).stack ?? err}`);
      }
    }
  } finally {
    await stopAll();
  }

  async function runScenario(sname: ScenarioName) {
    {
      const scenario = SCENARIOS[sname];
      if ((sname === 'hold' || sname === 'hold-contended' || sname === 'journey') && !holdsReady) {
        notes.push(`${sname} skipped: POST /v1/reservations is not served yet`);
        log(`${sname}: skipped, POST /v1/reservations answers 404`);
        return;
      }
      // A journey's own client talks to one base URL: it would load one instance of a fleet only.
      const applicable = targets.filter((t) => scenario.applies(t) && !(sname === 'journey' && t.instances > 1));
      for (const t of targets) if (sname === 'journey' && t.instances > 1) notes.push(`journey/${t.label}: skipped (the journey client drives one instance)`);
      const states = new Map<Target, ScenarioState>();
      for (const t of applicable) {
        const perRun = (scenario.guess[t.name] ?? 3000) * durationS;
        log(`${sname}: preparing ${t.label}`);
        const t0 = Date.now();
        states.set(t, await scenario.prepare(t, { users: users.get(t)!, totalRequests: Math.ceil(perRun * rounds * 1.5), pollUsers, log }));
        log(`${sname}: ${t.label} prepared in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      }
      if (warmupS > 0) {
        for (const t of applicable) {
          const state = states.get(t)!;
          const rate = scenario.guess[t.name] ?? 3000;
          const reqs = scenario.cycle || state.run ? await state.requests(0) : await state.requests(Math.ceil(rate * warmupS * 1.3) + connectionsOf(t));
          const crowdedWarmup = await waitPostgresRoom(t);
          if (crowdedWarmup) notes.push(`${sname}/${t.label} warm-up: ${crowdedWarmup}`);
          log(`${sname}: warming up ${t.label} for ${warmupS} s`);
          const r = state.run
            ? await state.run(warmupS, connections * 4)
            : await runLoadSpread(client, { base: t.base, requests: reqs, cycle: scenario.cycle, connections: connectionsOf(t), durationS: warmupS, ok: scenario.ok, threads }, t.bases);
          if (r.errors) notes.push(`${sname}/${t.label} warm-up: ${r.errors} errors ${JSON.stringify(r.statuses)}`);
          // A warm-up starts cold: the warm rate is higher, so size the next pool generously.
          lastRate.set(`${sname}/${t.label}`, Math.max(r.rps * 1.5, 50));
        }
      }
      for (let round = 1; round <= rounds; round++) {
        // Interleave: each round starts with a different target.
        const order = applicable.map((_, i) => applicable[(i + round - 1) % applicable.length]!);
        for (const t of order) {
          const key = `${sname}/${t.label}`;
          const state = states.get(t)!;
          const own = lastRate.get(key) ?? scenario.guess[t.name] ?? 3000;
          // A fleet's instances each get a fixed share of the list, so the fastest must not run out
          // first; and a fleet's short warm-up is spread over N cold processes, so its warm-up rate
          // says little: size it for the best rate any target of the scenario has shown.
          const rate = t.instances > 1 ? Math.max(own, ...applicable.map((o) => lastRate.get(`${sname}/${o.label}`) ?? 0)) : own;
          const slack = t.instances > 1 ? 2 : 1.3;
          const reqs = scenario.cycle || state.run ? await state.requests(0) : await state.requests(Math.ceil(rate * durationS * slack) + connectionsOf(t));
          if (!state.run && reqs.length === 0) {
            notes.push(`${key} round ${round}: no requests left to send; run skipped`);
            continue;
          }
          const pending = await waitWriteBehindIdle(t);
          if (pending) notes.push(`${key} round ${round}: write-behind still had ${pending} entries when the run started`);
          const crowded = await waitPostgresRoom(t);
          if (crowded) notes.push(`${key} round ${round}: ${crowded}`);
          await assertMode(t);
          await Bun.sleep(300);
          // With --instances: what the target costs at rest (each instance's ticker, write-behind
          // worker and samplers), to tell a fleet's fixed cost from its cost per request.
          const idle = instances ? await idleCpu(t, IDLE_WINDOW_S) : undefined;
          const meters = {
            server: new CpuMeter(() => t.pids),
            redis: t.mode === 'redis' ? new CpuMeter(() => [t.redis.pid]) : null,
            db: t.db === 'postgres' ? new CpuMeter(() => t.dbPids()) : null,
          };
          const loadAvg = loadAverage();
          const startedAt = new Date().toISOString();
          for (const m of Object.values(meters)) await m?.start();
          const result = state.run
            ? await state.run(durationS, connections * 4)
            : await runLoadSpread(client, { base: t.base, requests: reqs, cycle: scenario.cycle, connections: connectionsOf(t), durationS, ok: scenario.ok, threads }, t.bases);
          const server = await meters.server.stop();
          const redis = await meters.redis?.stop();
          const db = await meters.db?.stop();
          await assertMode(t);
          const { journeys, journeysPerS, steps, failures, perInstance, ...load } =
            result as typeof result & Partial<NonNullable<RunRecord['journey']>> & { perInstance?: { rps: number; requests: number }[] };
          const rec: RunRecord = {
            ...load, scenario: sname, target: t.name, instances: t.instances, round, startedAt, loadAvg,
            cpu: { server: server?.cores ?? null, redis: redis?.cores ?? null, db: db?.cores ?? null },
            idle,
            serverCpuSeconds: server?.seconds ?? null, redisCpuSeconds: redis?.seconds ?? null, dbCpuSeconds: db?.seconds ?? null,
            perInstance: t.instances > 1 ? perInstance?.map(({ rps, requests }) => ({ rps, requests })) : undefined,
            journey: journeys !== undefined ? { journeys, journeysPerS: journeysPerS!, steps: steps!, failures: failures! } : undefined,
          };
          runs.push(rec);
          lastRate.set(key, Math.max(result.rps, 50));
          log(`${key} round ${round}: ${result.rps.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ` +
            `errors ${result.errors}, server CPU ${((server?.cores ?? 0) * 100).toFixed(0)} %` +
            `${t.instances > 1 ? ` over ${t.instances} instances (${perInstance?.map((p) => p.rps.toFixed(0)).join(' / ')} req/s)` : ''}${result.exhausted ? ' (pool used up)' : ''}` +
            `${journeysPerS !== undefined ? `, ${journeysPerS.toFixed(1)} journeys/s` : ''}`);
        }
      }
    }
  }

  const rows = aggregate(runs);
  const meta = {
    finishedAt: new Date().toISOString(), cpus: cpuCount(), loadBefore: loadBefore?.join(' '), loadAfter: loadAverage()?.join(' '),
    client, connections, durationS, rounds, threads, warmupS, bun: Bun.version,
    redisVersion: versionOf('redis-server', ['--version']).split(' ').slice(0, 3).join(' '),
    pgVersion: versionOf('psql', ['--version']),
    targets: targetNames, scenarios, ...(scenarios.includes('poll') ? { pollUsers } : {}),
    ...(instances ? { instances, fleetTargets, idleWindowS: IDLE_WINDOW_S, connectionsPerInstance: perInstance } : {}),
  };
  const md = markdown(meta, rows, runs, notes);
  const base = join(outDir, `bench-${stamp}`);
  writeFileSync(`${base}.json`, `${JSON.stringify({ meta, rows, runs, notes }, null, 2)}\n`);
  writeFileSync(`${base}.md`, md);
  process.stdout.write(`${md}\nwritten: ${base}.md and .json\n`);
}

if (import.meta.main) {
  await main();
  process.exit(0);
}
