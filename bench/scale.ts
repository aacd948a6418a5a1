/**
 * Scale: one concert's waiting line grown to 1,000,000 users (`npm run bench -- --scenario scale`
 * or `bun bench/scale.ts`). Users join through the service's own joinQueue script, in pipelined
 * batches straight to Redis (no HTTP), with the arguments RedisQueueStore.join passes for a join
 * made with a user token (its record rides in the stream entry). At each
 * checkpoint it reports:
 *   - the join rate of the last segment (and Redis CPU per join),
 *   - Redis bytes per waiting user: INFO used_memory delta, and MEMORY USAGE of the queue keys,
 *     with the write-behind stream counted apart (the worker drains it in steady state),
 *   - poll cost: the pollQueue script's latency from a client (one call at a time) and as Redis
 *     sees it (INFO commandstats usec_per_call), and GET /v1/queue/me through the real service.
 *
 *   --users 1000000  --checkpoints 10000,100000,1000000  --batch 1000  --inflight 4
 *   --http-duration 5  --warmup 10  --connections 50  --client auto|wrk|autocannon|bun  --no-http
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { keys } from '../src/redis/keys.ts';
import { registerScripts, runScript, scripts } from '../src/redis/scripts.ts';
import { raiseSeqCeiling, type PollQueueRaw } from '../src/redis/script-calls.ts';
import { reserveEntryNumbers } from '../src/modules/queue/queue-state.repo.ts';
import { openDatabase } from '../src/store/connect.ts';
import { JwtCodec } from '../src/modules/tokens/jwt.ts';
import { startRedis, type RedisProc } from '../sentinel/topology.ts';
import { Api, configureQueue, createConcert } from './lib/api.ts';
import { percentile, pickClient, runLoad, type LoadResult } from './lib/load.ts';
import { cpuCount, CpuMeter, loadAverage } from './lib/proc.ts';
import { fmt } from './lib/report.ts';
import { BENCH_JWT_SECRET, closeAdmin, createScratchDb, REPO_ROOT, serviceEnv, spawnBun, stopProcess, type SpawnedServer } from './lib/servers.ts';
import { parseArgs } from './lib/args.ts';

const log = (msg: string) => process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);


/** A queue token id of the service's shape (10 characters, as newQueueTokenId), derived from the user's index. */
const jtiOf = (i: number) => i.toString(36).padStart(10, '0');
/** The user token a join is made with: 36 characters, as newUserTokenId (a slot tag in hex, then a uuid's tail). */
const srcJtiOf = (i: number) => `0a${i.toString(16).padStart(34, '0')}`;
/** QUEUE_TOKEN_TTL_SECONDS's default. */
const QUEUE_TOKEN_TTL_MS = 3600 * 1000;
/** User ids of 8 digits, as a service with millions of accounts would have. */
const USER_BASE = 10_000_000;
const GRACE_MS = 3600 * 1000;

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

async function memoryUsage(redis: Redis, key: string): Promise<number> {
  return Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
}

async function evalshaStats(redis: Redis): Promise<{ calls: number; usecPerCall: number } | null> {
  const info = await redis.info('commandstats');
  const m = /cmdstat_evalsha:calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/.exec(info);
  return m ? { calls: Number(m[1]), usecPerCall: Number(m[2]) } : null;
}

export interface Checkpoint {
  waiting: number;
  joinsPerS: number;
  redisCpuPerJoinUs: number | null;
  usedMemoryDelta: number;
  bytesPerUserAll: number;
  bytesPerUserQueue: number;
  keyBytes: Record<string, number>;
  streamEntries: number;
  streamBytesPerEntry: number;
  bytesPerUserAfterDrain: number;
  pollScript: { p50Us: number; p99Us: number; serverUsPerCall: number | null; pipelinedPerS: number };
  http: (LoadResult & { serverCpu: number | null }) | null;
}

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const users = Number(args.users ?? 1_000_000);
  const checkpoints = String(args.checkpoints ?? '10000,100000,1000000').split(',').map(Number).filter((n) => n > 0 && n <= users);
  if (!checkpoints.includes(users)) checkpoints.push(users);
  const batch = Number(args.batch ?? 1000);
  const inflight = Number(args.inflight ?? 4);
  const httpDuration = Number(args['http-duration'] ?? 5);
  const warmupS = Number(args.warmup ?? 10);
  const connections = Number(args.connections ?? 50);
  const withHttp = !args['no-http'];
  const client = await pickClient(String(args.client ?? 'auto') as 'auto');
  const outDir = resolve(REPO_ROOT, String(args.out ?? 'bench/results'));
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const logDir = join('/tmp', `bench-logs-scale-${stamp}`);
  mkdirSync(outDir, { recursive: true });
  const loadBefore = loadAverage();
  log(`load average ${loadBefore?.join(' ')}; ${users} users, checkpoints ${checkpoints.join(', ')}; client ${client}`);

  let redisProc: RedisProc | null = null;
  let db: Awaited<ReturnType<typeof createScratchDb>> | null = null;
  let server: SpawnedServer | null = null;
  let redis: Redis | null = null;
  const results: Checkpoint[] = [];
  let concertId = 0;
  try {
    redisProc = await startRedis();
    db = await createScratchDb('sqlite', 'scale');
    const env = serviceEnv(redisProc.url, db.url);
    const startService = async () => spawnBun('src/main.ts', env, { name: `scale-service-${Date.now()}`, logDir });

    // The concert is created through the service, which loads its queue keys into Redis. Only
    // one user is ever admitted (maxActive 1): everyone else keeps waiting.
    server = await startService();
    const api = new Api(server.base);
    const concert = await createConcert(api, 'scale', [{ seats: 100, price: 50_000 }]);
    concertId = concert.id;
    await configureQueue(api, concertId, { maxActive: 1, admitPerSecond: 1, activeTtlSeconds: 86_400 });
    // While filling, the service is stopped: its write-behind worker would otherwise drain a
    // million join events into SQL on the same two cores and blur the join rate.
    await stopProcess(server.proc);
    server = null;

    redis = new Redis(redisProc.url, { maxRetriesPerRequest: null });
    registerScripts(redis);
    // The fill's entry numbers, reserved in SQL at once as the service reserves them block by block.
    const sqlDb = openDatabase(db!.url);
    const ceiling = await reserveEntryNumbers(sqlDb, concertId, Math.max(...checkpoints));
    await sqlDb.destroy();
    await raiseSeqCeiling(redis, { concertId, ceiling });
    const qKeys = [keys.queueMeta(concertId), keys.line(concertId), keys.active(concertId),
      keys.queueTokens(concertId), keys.stream(concertId)];
    const baseline = await usedMemory(redis);
    const seqs = new Int32Array(users);
    const jwt = new JwtCodec(BENCH_JWT_SECRET);
    const redisCpu = new CpuMeter(() => [redisProc!.pid]);

    let joined = 0;
    for (const target of checkpoints) {
      // ---- fill to the checkpoint
      const segment = target - joined;
      const t0 = performance.now();
      await redisCpu.start();
      let next = joined;
      const worker = async () => {
        for (;;) {
          const from = next;
          if (from >= target) return;
          const to = Math.min(target, from + batch);
          next = to;
          const p = redis!.pipeline();
          const now = Date.now();
          for (let i = from; i < to; i++) {
            // The token's record rides in the join's stream entry (a join with a user token, which it spends).
            runScript(p as unknown as Redis, 'joinQueue', qKeys,
              [USER_BASE + i, jtiOf(i), now, GRACE_MS, now, now + QUEUE_TOKEN_TTL_MS, srcJtiOf(i), 1]);
          }
          const replies = (await p.exec()) ?? [];
          for (let k = 0; k < replies.length; k++) {
            const [err, r] = replies[k]!;
            if (err) throw err;
            const reply = r as (number | string)[];
            if (reply[0] !== 0) throw new Error(`joinQueue answered code ${reply[0]} for user ${USER_BASE + from + k}`);
            seqs[from + k] = Number(reply[1]);
          }
        }
      };
      await Promise.all(Array.from({ length: inflight }, worker));
      joined = target;
      const fillS = (performance.now() - t0) / 1000;
      const cpu = await redisCpu.stop();
      const joinsPerS = segment / fillS;
      log(`${target} waiting: ${fmt(joinsPerS)} joins/s over the last ${fmt(segment)}`);

      // ---- memory
      const used = await usedMemory(redis);
      const keyBytes: Record<string, number> = {};
      for (const [name, key] of [['line string', qKeys[1]!], ['queue token hash', qKeys[3]!],
        ['meta hash', qKeys[0]!], ['active zset', qKeys[2]!], ['stream', qKeys[4]!]] as const) {
        keyBytes[name] = await memoryUsage(redis, key);
      }
      const streamEntries = await redis.xlen(qKeys[4]!);
      const queueBytes = keyBytes['line string']! + keyBytes['queue token hash']!;
      // The write-behind worker acknowledges and deletes entries as it commits them; drain the
      // stream the same way so later measurements see the steady state.
      await redis.xtrim(qKeys[4]!, 'MAXLEN', 0);
      const usedAfterDrain = await usedMemory(redis);

      // ---- pollQueue script: one call at a time from a client, then as Redis counts it
      const sample = Array.from({ length: 5000 }, () => Math.floor(Math.random() * target));
      await redis.config('RESETSTAT');
      const lat: number[] = [];
      for (const i of sample) {
        const s = performance.now();
        const r = await runScript(redis, 'pollQueue', qKeys, [USER_BASE + i, jtiOf(i), Date.now(), GRACE_MS]) as PollQueueRaw;
        lat.push((performance.now() - s) * 1000);
        // A place answers its fields packed in one string, anything else {code}.
        if (typeof r !== 'string') throw new Error(`pollQueue answered code ${r[0]} for user ${USER_BASE + i}`);
      }
      const stats = await evalshaStats(redis);
      lat.sort((a, b) => a - b);
      const pt0 = performance.now();
      const pp = redis.pipeline();
      for (const i of sample) runScript(pp as unknown as Redis, 'pollQueue', qKeys, [USER_BASE + i, jtiOf(i), Date.now(), GRACE_MS]);
      await pp.exec();
      const pipelinedPerS = sample.length / ((performance.now() - pt0) / 1000);
      await redis.xtrim(qKeys[4]!, 'MAXLEN', 0);

      // ---- HTTP poll through the real service
      let http: Checkpoint['http'] = null;
      if (withHttp) {
        server = await startService();
        const now = Date.now();
        const tokens = await Promise.all(Array.from({ length: 2000 }, () => Math.floor(Math.random() * target)).map((i) => jwt.sign({
          typ: 'queue', sub: String(USER_BASE + i), jti: jtiOf(i), cid: concertId, seq: seqs[i]!,
          iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + 3600,
        })));
        const requests = tokens.map((token) => ({ method: 'GET', path: '/v1/queue/me', token }));
        // A fresh process runs the poll at about half its warm rate until the JIT has compiled it.
        if (warmupS > 0) await runLoad(client, { base: server.base, requests, cycle: true, connections, durationS: warmupS, ok: [200] });
        const meter = new CpuMeter(() => [server!.pid]);
        await meter.start();
        const r = await runLoad(client, { base: server.base, requests, cycle: true, connections, durationS: httpDuration, ok: [200] });
        const c = await meter.stop();
        http = { ...r, serverCpu: c?.cores ?? null };
        await stopProcess(server.proc);
        server = null;
        await redis.xtrim(qKeys[4]!, 'MAXLEN', 0);
        log(`${target} waiting: HTTP poll ${fmt(r.rps)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, errors ${r.errors}`);
      }

      results.push({
        waiting: target, joinsPerS,
        redisCpuPerJoinUs: cpu ? (cpu.seconds / segment) * 1e6 : null,
        usedMemoryDelta: used - baseline,
        bytesPerUserAll: (used - baseline) / target,
        bytesPerUserQueue: queueBytes / target,
        keyBytes, streamEntries,
        streamBytesPerEntry: streamEntries ? keyBytes.stream! / streamEntries : 0,
        bytesPerUserAfterDrain: (usedAfterDrain - baseline) / target,
        pollScript: { p50Us: percentile(lat, 50), p99Us: percentile(lat, 99), serverUsPerCall: stats?.usecPerCall ?? null, pipelinedPerS },
        http,
      });
    }
    const encodings: Record<string, string> = {};
    for (const k of [qKeys[1]!, qKeys[3]!]) encodings[k] = String(await redis.object('ENCODING', k));

    const meta = {
      finishedAt: new Date().toISOString(), cpus: cpuCount(), loadBefore: loadBefore?.join(' '), loadAfter: loadAverage()?.join(' '),
      users, batch, inflight, client, connections, httpDuration, warmupS, concertId, encodings,
      joinScriptSha: scripts.find((s) => s.name === 'joinQueue')?.sha1,
    };
    const md = report(meta, results);
    const base = join(outDir, `scale-${stamp}`);
    writeFileSync(`${base}.json`, `${JSON.stringify({ meta, results }, null, 2)}\n`);
    writeFileSync(`${base}.md`, md);
    process.stdout.write(`${md}\nwritten: ${base}.md and .json\n`);
  } finally {
    if (server) await stopProcess(server.proc);
    redis?.disconnect();
    await redisProc?.stop();
    await db?.drop();
    await closeAdmin();
  }
}

function report(meta: Record<string, unknown>, rs: Checkpoint[]): string {
  const l: string[] = [];
  l.push(`# Scale: one concert's waiting line, ${meta.finishedAt}`, '');
  l.push(`Machine: ${meta.cpus} cores, load average before ${meta.loadBefore} / after ${meta.loadAfter}. Joins: the joinQueue ` +
    `script in pipelines of ${meta.batch}, ${meta.inflight} in flight, one connection. HTTP poll: ${meta.client}, ${meta.connections} ` +
    `connections, ${meta.warmupS} s warm-up then ${meta.httpDuration} s, 2,000 random waiting users' queue tokens.`, '');
  l.push('| waiting | joins/s (segment) | Redis CPU µs/join | used_memory Δ B/user (with stream) | B/user after drain | queue keys B/user | stream B/entry |');
  l.push('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rs) {
    l.push(`| ${fmt(r.waiting)} | ${fmt(r.joinsPerS)} | ${fmt(r.redisCpuPerJoinUs, 1)} | ${fmt(r.bytesPerUserAll, 1)} | ` +
      `${fmt(r.bytesPerUserAfterDrain, 1)} | ${fmt(r.bytesPerUserQueue, 1)} | ${fmt(r.streamBytesPerEntry, 1)} |`);
  }
  l.push('', 'MEMORY USAGE (SAMPLES 0) of each queue key, bytes per waiting user:', '');
  l.push('| waiting | line string (FIFO + heartbeat) | queue token hash |', '|---:|---:|---:|');
  for (const r of rs) {
    const k = r.keyBytes;
    l.push(`| ${fmt(r.waiting)} | ${fmt(k['line string']! / r.waiting, 1)} | ${fmt(k['queue token hash']! / r.waiting, 1)} |`);
  }
  l.push('', 'Poll cost:', '');
  l.push('| waiting | pollQueue p50 µs (client) | p99 µs | Redis µs/call | pipelined polls/s | HTTP poll req/s | HTTP p50 ms | HTTP p99 ms | errors | server CPU |');
  l.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rs) {
    const h = r.http;
    l.push(`| ${fmt(r.waiting)} | ${fmt(r.pollScript.p50Us, 1)} | ${fmt(r.pollScript.p99Us, 1)} | ${fmt(r.pollScript.serverUsPerCall, 2)} | ` +
      `${fmt(r.pollScript.pipelinedPerS)} | ${h ? fmt(h.rps) : '–'} | ${h ? fmt(h.p50Ms, 2) : '–'} | ${h ? fmt(h.p99Ms, 2) : '–'} | ` +
      `${h ? h.errors : '–'} | ${h?.serverCpu != null ? `${Math.round(h.serverCpu * 100)} %` : '–'} |`);
  }
  const first = rs[0];
  const last = rs[rs.length - 1];
  if (first && last && first !== last) {
    l.push('', `Flatness: pollQueue Redis µs/call ${fmt(first.pollScript.serverUsPerCall, 2)} at ${fmt(first.waiting)} → ` +
      `${fmt(last.pollScript.serverUsPerCall, 2)} at ${fmt(last.waiting)}; HTTP poll ${first.http ? fmt(first.http.rps) : '–'} → ` +
      `${last.http ? fmt(last.http.rps) : '–'} req/s.`);
  }
  l.push('', `Encodings at the end: ${JSON.stringify(meta.encodings)}.`, '');
  return l.join('\n');
}

if (import.meta.main) {
  await main(process.argv.slice(2));
  process.exit(0);
}
