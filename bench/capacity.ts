/**
 * `npm run capacity [-- options]`: Redis bytes per entity, measured on a scratch redis-server
 * loaded through the service's own code (loadConcert, the Lua scripts and their wrappers), and
 * the memory plan for the seed's scenario next to the seed's own estimate.
 *
 * Counts (defaults: the seed's scenario, plus holds and a write-behind backlog it leaves out):
 *   --tokens 100000 --waiting 10000000 --active 10000 --concerts 30 --schedules 15 --seats 300
 *   --holds 10000 --stream 100000 --nodes 3 --headroom 0.3
 * Sample sizes (how many entities are really loaded to measure the per-entity cost):
 *   --sample-waiting 1000000 --sample-tokens 100000 --sample-active 10000
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { insertConcert } from '../src/modules/catalog/catalog.repo.ts';
import { loadConcert } from '../src/modules/catalog/load-concert.ts';
import { reserveEntryNumbers } from '../src/modules/queue/queue-state.repo.ts';
import { RedisQueueStore } from '../src/modules/queue/queue.redis.ts';
import { recordGrantedHold } from '../src/modules/reservations/reservations.repo.ts';
import { RedisHoldStore } from '../src/modules/reservations/holds.redis.ts';
import { newReservationId } from '../src/modules/reservations/reservation-id.ts';
import { JwtCodec } from '../src/modules/tokens/jwt.ts';
import { createRedis, type RedisClient } from '../src/redis/connection.ts';
import { keys } from '../src/redis/keys.ts';
import { runScript } from '../src/redis/scripts.ts';
import { openDatabase } from '../src/store/connect.ts';
import { migrateToLatest } from '../src/store/migrate.ts';
import { startRedis, type RedisProc } from '../sentinel/topology.ts';
import { pmap } from './lib/api.ts';
import { fmt } from './lib/report.ts';
import { BENCH_JWT_SECRET, createScratchDb, REPO_ROOT } from './lib/servers.ts';
import type { Redis } from 'ioredis';

const log = (msg: string) => process.stderr.write(`[capacity ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

function parse(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else out[a.slice(2)] = argv[++i] ?? '';
  }
  return out;
}

const num = (args: Record<string, string>, name: string, fallback: number) => {
  const v = args[name];
  if (v === undefined) return fallback;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number, got ${v}`);
  return n;
};

async function usedMemory(redis: RedisClient): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await (redis as Redis).info('memory'))![1]);
}

async function memoryUsage(redis: RedisClient, key: string): Promise<number> {
  return Number((await (redis as Redis).call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);
}

async function scan(redis: RedisClient, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await (redis as Redis).scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    out.push(...batch);
  } while (cursor !== '0');
  return out;
}

/** A dict's bucket array is the next power of two of its size, 8 bytes a bucket. */
const bucketBytesPerEntry = (n: number) => (n <= 0 ? 0 : (8 * 2 ** Math.ceil(Math.log2(n))) / n);

interface Entity { name: string; bytes: number; how: string }

async function main() {
  const args = parse(process.argv.slice(2));
  const counts = {
    tokens: num(args, 'tokens', 100_000),
    waiting: num(args, 'waiting', 10_000_000),
    active: num(args, 'active', 10_000),
    concerts: num(args, 'concerts', 30),
    schedules: num(args, 'schedules', 15),
    seats: num(args, 'seats', 300),
    holds: num(args, 'holds', 10_000),
    stream: num(args, 'stream', 100_000),
  };
  const nodes = num(args, 'nodes', 3);
  const headroom = num(args, 'headroom', 0.3);
  const sample = {
    waiting: Math.max(1000, Math.min(num(args, 'sample-waiting', 1_000_000), counts.waiting || 1000)),
    tokens: Math.max(1000, Math.min(num(args, 'sample-tokens', 100_000), counts.tokens || 1000)),
    active: Math.max(500, Math.min(num(args, 'sample-active', 10_000), counts.active || 500)),
  };
  const outDir = resolve(REPO_ROOT, args.out ?? 'bench/results');
  mkdirSync(outDir, { recursive: true });

  let proc: RedisProc | null = null;
  let scratch: Awaited<ReturnType<typeof createScratchDb>> | null = null;
  let redis: RedisClient | null = null;
  let db: ReturnType<typeof openDatabase> | null = null;
  try {
    proc = await startRedis();
    scratch = await createScratchDb('sqlite', 'capacity');
    const config = loadConfig({
      REDIS_URL: proc.url, DATABASE_URL: scratch.url, JWT_SECRET: BENCH_JWT_SECRET, REDIS_TIMEOUT_MS: '60000',
      QUEUE_GRACE_SECONDS: '3600', LOG_LEVEL: 'error',
    });
    db = openDatabase(config.databaseUrl);
    await migrateToLatest(db);
    redis = createRedis(config.redis, { timeoutMs: config.redisTimeoutMs });
    const r = redis;
    const now = Date.now();
    const entities: Entity[] = [];
    const detail: Record<string, unknown> = {};
    const baseline = await usedMemory(r);
    detail.emptyRedisUsedMemory = baseline;

    // ---- catalog: the seed's concerts, schedules and seats, loaded as the service loads them
    log(`catalog: ${counts.concerts} concerts × ${counts.schedules} schedules × ${counts.seats} seats`);
    const day = 86_400_000;
    const concertIds: number[] = [];
    const catalogConcerts = Math.max(2, counts.concerts);
    for (let i = 0; i < catalogConcerts; i++) {
      const created = await insertConcert(db, {
        title: `Concert number ${i + 1}: a tour title of a usual length`,
        schedules: Array.from({ length: Math.max(1, counts.schedules) }, (_, s) => ({ date: now + (30 + s) * day, seats: Math.max(1, counts.seats), price: 120_000 })),
      }, { maxActive: 1000, admitPerSecond: 100, activeTtlSeconds: 600 }, now);
      concertIds.push(created.concert.id);
    }
    const beforeCatalog = await usedMemory(r);
    for (const id of concertIds) await loadConcert(db, r, id, now);
    const catalogDelta = (await usedMemory(r)) - beforeCatalog;
    const usage = { concert: 0, schedule: 0, seats: 0 };
    for (const key of await scan(r, '{c:*')) {
      const bytes = await memoryUsage(r, key);
      if (/:sched:\d+$/.test(key)) usage.schedule += bytes;
      else if (/:seats:\d+$/.test(key)) usage.seats += bytes;
      else usage.concert += bytes; // concert hash, schedule id set, queue meta, empty write-behind stream and its group
    }
    // MEMORY USAGE leaves out the expires-dict entries; spread the rest of the real delta pro rata.
    const scale = catalogDelta / (usage.concert + usage.schedule + usage.seats);
    const nSchedules = catalogConcerts * Math.max(1, counts.schedules);
    const nSeats = nSchedules * Math.max(1, counts.seats);
    entities.push(
      { name: 'concert', bytes: (usage.concert * scale) / catalogConcerts, how: 'concert hash + schedule-id set + queue meta hash + empty stream with its group (loadConcert)' },
      { name: 'schedule', bytes: (usage.schedule * scale) / nSchedules, how: 'schedule hash' },
      { name: 'seat', bytes: (usage.seats * scale) / nSeats, how: `one field of the schedule's seats hash (${counts.seats} seats: ${await (r as Redis).object('ENCODING', keys.seats(concertIds[0]!, 1))})` },
    );
    detail.catalog = { usedMemoryDelta: catalogDelta, memoryUsage: usage, scale };

    // ---- user tokens: issueToken (string key {tok:<hh>}:<jti> = userId with TTL, + a member of its tag's live zset)
    log(`user tokens: ${sample.tokens}`);
    const beforeTokens = await usedMemory(r);
    const ttlMs = config.userTokenTtlSeconds * 1000;
    for (let from = 0; from < sample.tokens; from += 1000) {
      const p = (r as Redis).pipeline();
      for (let i = from; i < Math.min(sample.tokens, from + 1000); i++) {
        const jti = randomUUID();
        runScript(p as unknown as RedisClient, 'issueToken', [keys.userToken(jti), keys.liveUserTokens(jti)], [20_000_000 + i, jti, now, ttlMs, 1_000_000_000]);
      }
      await p.exec();
    }
    const tokenBytes = ((await usedMemory(r)) - beforeTokens) / sample.tokens;
    entities.push({ name: 'user token', bytes: tokenBytes, how: '{tok:<hh>}:<jti> string = userId, with TTL, + a member of its tag\'s live-token zset (issueToken)' });
    const jwtLength = (await new JwtCodec(BENCH_JWT_SECRET).sign({
      typ: 'user', sub: '12345678', jti: randomUUID(), iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + 1800,
    })).length;
    detail.userJwtLength = jwtLength;

    // ---- waiting users: joinQueue through RedisQueueStore, one concert
    const queue = new RedisQueueStore(r, config, async (id) => { await loadConcert(db!, r, id, Date.now()); },
      (id, upTo) => reserveEntryNumbers(db!, id, upTo));
    const waitConcert = concertIds[0]!;
    log(`waiting users: ${sample.waiting} joins into concert ${waitConcert}`);
    const beforeWaiting = await usedMemory(r);
    // Queue token ids of the service's shape (10 characters, as newQueueTokenId).
    const jtis = (i: number) => i.toString(36).padStart(10, '0');
    for (let from = 0; from < sample.waiting; from += 2000) {
      const batch = Array.from({ length: Math.min(2000, sample.waiting - from) }, (_, k) => from + k);
      // Each join made with a user token (36 characters, as newUserTokenId), whose record rides in the stream entry.
      await Promise.all(batch.map((i) => queue.join(waitConcert, 30_000_000 + i, jtis(i), now, {
        issuedAt: now, expiresAt: now + config.queueTokenTtlSeconds * 1000, srcJti: `0a${i.toString(16).padStart(34, '0')}`, replacesSrc: true,
      })));
    }
    const withStream = await usedMemory(r);
    const joinEntries = await (r as Redis).xlen(keys.stream(waitConcert));
    await (r as Redis).xtrim(keys.stream(waitConcert), 'MAXLEN', 0);
    const afterWaiting = await usedMemory(r);
    const waitingBytesSample = (afterWaiting - beforeWaiting) / sample.waiting;
    // One dict (the token hash's) whose bucket array is a power of two: project the per-entry
    // cost from the sample's size to the planned size. The line string grows linearly.
    const waitingBytes = waitingBytesSample - bucketBytesPerEntry(sample.waiting) + bucketBytesPerEntry(counts.waiting);
    const queueKeyUsage = {
      line: (await memoryUsage(r, keys.line(waitConcert))) / sample.waiting,
      tokenHash: (await memoryUsage(r, keys.queueTokens(waitConcert))) / sample.waiting,
    };
    entities.push({
      name: 'waiting user', bytes: waitingBytes,
      how: `a 10-byte slot of the line string (user id, last poll) + queue token hash field (<10-character jti><seq u32>, 14 bytes); measured over ${fmt(sample.waiting)} (${fmt(waitingBytesSample, 1)} B), projected to ${fmt(counts.waiting)}`,
    });
    const streamJoinBytes = (withStream - afterWaiting) / joinEntries;
    detail.waiting = { sample: sample.waiting, bytesAtSample: waitingBytesSample, perKey: queueKeyUsage, joinStreamEntries: joinEntries };
    // The line is not needed below: free it so the next measurements start from a small Redis.
    await (r as Redis).del(keys.line(waitConcert), keys.queueTokens(waitConcert));

    // ---- active users: joined, then admitted by the admission script, in another concert
    const activeConcert = concertIds[1]!;
    log(`active users: ${sample.active} in concert ${activeConcert}`);
    await (r as Redis).hset(keys.queueMeta(activeConcert), { maxActive: sample.active, admitPerSecond: 1_000_000, activeTtl: 3600 });
    const beforeActive = await usedMemory(r);
    const activeUsers = Array.from({ length: sample.active }, (_, i) => ({ userId: 40_000_000 + i, jti: randomUUID() }));
    await pmap(activeUsers, 500, (u) => queue.join(activeConcert, u.userId, u.jti, now));
    let tick = Math.floor(Date.now() / config.admissionTickMs);
    for (let guard = 0; guard < 10_000; guard++) {
      const out = await queue.admitTick(activeConcert, Date.now(), ++tick);
      if (out && out.waiting <= 0) break;
    }
    await (r as Redis).xtrim(keys.stream(activeConcert), 'MAXLEN', 0);
    const activeCount = await (r as Redis).zcard(keys.active(activeConcert));
    if (activeCount !== sample.active) throw new Error(`admitted ${activeCount} of ${sample.active}`);
    const activeBytes = ((await usedMemory(r)) - beforeActive) / sample.active;
    entities.push({ name: 'active user', bytes: activeBytes, how: 'active zset member + queue token hash field (admitNext empties the line slot)' });

    // ---- holds: holdSeat through RedisHoldStore, one per admitted user, distinct seats
    // Holds are written through to SQL as in the service; only their Redis bytes are measured.
    const holds = new RedisHoldStore(r, async () => now + 60 * day, {
      find: async () => null,
      listOwn: async () => [],
      ownLiveHold: async () => null,
      recordGranted: (hold, at) => recordGrantedHold(db!, hold, at),
      release: async () => {},
    });
    const seatsOfConcert = Math.max(1, counts.schedules) * Math.max(1, counts.seats);
    const nHolds = Math.min(sample.active, seatsOfConcert);
    log(`holds: ${nHolds} in concert ${activeConcert}`);
    const scheduleIds = (await db.selectFrom('schedules').select('id').where('concert_id', '=', activeConcert).orderBy('id').execute()).map((s) => s.id);
    const beforeHolds = await usedMemory(r);
    await pmap(activeUsers.slice(0, nHolds), 200, (u, i) => holds.hold({
      concertId: activeConcert, scheduleId: scheduleIds[Math.floor(i / Math.max(1, counts.seats))]!, seatNumber: (i % Math.max(1, counts.seats)) + 1,
      userId: u.userId, jti: u.jti, reservationId: newReservationId(activeConcert), ttlMs: config.holdTtlSeconds * 1000, maxHolds: config.maxHoldsPerUser,
      maxTickets: config.maxTicketsPerUser,
    }, Date.now()));
    const holdsWithStream = await usedMemory(r);
    const holdEntries = await (r as Redis).xlen(keys.stream(activeConcert));
    await (r as Redis).xtrim(keys.stream(activeConcert), 'MAXLEN', 0);
    const afterHolds = await usedMemory(r);
    entities.push({
      name: 'hold', bytes: (afterHolds - beforeHolds) / nHolds,
      how: 'hold string with TTL + holds zset member + the user\'s holds zset + reservation hash (holdSeat)',
    });
    const streamHoldBytes = (holdsWithStream - afterHolds) / holdEntries;
    entities.push({ name: 'stream entry', bytes: streamJoinBytes, how: `write-behind entry of a join (a hold's entry: ${fmt(streamHoldBytes, 1)} B)` });
    detail.stream = { joinEntryBytes: streamJoinBytes, holdEntryBytes: streamHoldBytes };

    // ---- alternatives for the waiting line (not what the service does; what it could save)
    log(`alternatives: ${sample.waiting} entries each`);
    const alt: Record<string, number> = {};
    {
      const n = sample.waiting;
      const measure = async (fill: (p: ReturnType<Redis['pipeline']>, from: number, to: number) => void, key: string) => {
        const before = await usedMemory(r);
        for (let from = 0; from < n; from += 1000) {
          const p = (r as Redis).pipeline();
          fill(p, from, Math.min(n, from + 1000));
          await p.exec();
        }
        const bytes = ((await usedMemory(r)) - before) / n;
        await (r as Redis).del(key);
        return bytes;
      };
      // The token record is the largest part left; other shapes of it, measured with the 36-character
      // uuid ids the service issued before (the service's own record is measured above):
      const uuids = (i: number) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
      // small hashes of 128 users each (listpack), bucketed by user id with the users of one
      // concert spread over the whole id range (ids 100 apart: 1 in 100 users waits).
      const bucketed = (users: number, spread: number, value: (i: number) => string) => measure((p, from, to) => {
        for (let i = from; i < to; i++) {
          const u = 30_000_000 + i * spread;
          p.hset(`alt:tb:${Math.floor(u / 128)}`, u % 128, value(i));
        }
      }, 'alt:none').then(async (bytes) => {
        let cursor = '0';
        do {
          const [next, found] = await (r as Redis).scan(cursor, 'MATCH', 'alt:tb:*', 'COUNT', 1000);
          cursor = next;
          if (found.length) await (r as Redis).del(...found);
        } while (cursor !== '0');
        return bytes;
      });
      alt.tokenBucketsDenseText = await bucketed(n, 1, (i) => `${uuids(i)}:${i + 1}`);
      alt.tokenBucketsSparseText = await bucketed(n, 100, (i) => `${uuids(i)}:${i + 1}`);
      const jtiBytes = (i: number) => Buffer.from(uuids(i).replace(/-/g, ''), 'hex').toString('latin1');
      alt.tokenBucketsDenseBinary = await bucketed(n, 1, (i) => `${jtiBytes(i)}${i + 1}`);
      // The jti in the line's slot (26 bytes: user, last poll, 16-byte jti) and a user -> seq
      // index as the only per-user record.
      alt.userSeqIndex = await measure((p, from, to) => {
        const fields: Record<string, number> = {};
        for (let i = from; i < to; i++) fields[30_000_000 + i] = i + 1;
        p.hset('alt:useq', fields);
      }, 'alt:useq');
      // Where Redis's smallest hash entry ends: values of 14 and of 15 bytes.
      for (const len of [14, 15]) {
        alt[`value${len}`] = await measure((p, from, to) => {
          const fields: Record<string, string> = {};
          for (let i = from; i < to; i++) fields[30_000_000 + i] = String(i + 1).padStart(len, 'x');
          p.hset('alt:len', fields);
        }, 'alt:len');
      }
      // The record as the service kept it before: "<uuid>:<seq>" as text.
      alt.uuidTextTokenField = await measure((p, from, to) => {
        const fields: Record<string, string> = {};
        for (let i = from; i < to; i++) fields[30_000_000 + i] = `${uuids(i)}:${i + 1}`;
        p.hset('alt:tok2', fields);
      }, 'alt:tok2');
    }
    detail.alternatives = alt;

    // ---- the plan
    const byName = Object.fromEntries(entities.map((e) => [e.name, e.bytes]));
    const lines = [
      { item: 'user tokens', count: counts.tokens, bytes: byName['user token']! },
      { item: 'waiting users', count: counts.waiting, bytes: byName['waiting user']! },
      { item: 'active users', count: counts.active, bytes: byName['active user']! },
      { item: 'concerts', count: counts.concerts, bytes: byName.concert! },
      { item: 'schedules', count: counts.concerts * counts.schedules, bytes: byName.schedule! },
      { item: 'seats (tickets)', count: counts.concerts * counts.schedules * counts.seats, bytes: byName.seat! },
      { item: 'holds', count: counts.holds, bytes: byName.hold! },
      { item: 'write-behind backlog', count: counts.stream, bytes: byName['stream entry']! },
    ];
    const dataBytes = lines.reduce((a, l) => a + l.count * l.bytes, 0);
    const perNode = dataBytes + baseline;
    const total = perNode * nodes * (1 + headroom);

    // The seed's own figures (bytes per item as it wrote them) and the same arithmetic corrected.
    const seedItems = [
      { item: 'user tokens', seedB: 68, seedMB: 6.8, correctedMB: (counts.tokens * jwtLength) / 1e6, note: `a JWT is ${jwtLength} B, not 68 B (and our Redis keeps only the user id under the jti)` },
      { item: 'waiting users', seedB: 36, seedMB: 360, correctedMB: (counts.waiting * 36) / 1e6, note: '36-byte uuid per user' },
      { item: 'active users', seedB: 36, seedMB: 0.36, correctedMB: (counts.active * 36) / 1e6, note: '' },
      { item: 'concerts', seedB: 20, seedMB: 0.6, correctedMB: (counts.concerts * 20) / 1e6, note: '20 B × 30 is 600 B, not 0.6 MB' },
      { item: 'schedules', seedB: 30, seedMB: 13.5, correctedMB: (counts.concerts * counts.schedules * 30) / 1e6, note: '30 B × 450 is 13.5 KB, not 13.5 MB' },
      { item: 'seats (tickets)', seedB: 40, seedMB: 0.54, correctedMB: (counts.concerts * counts.schedules * counts.seats * 40) / 1e6, note: '30 × 15 × 300 is 135,000 tickets, not 13,500' },
    ];
    const seedSum = 382.8;
    const correctedSum = seedItems.reduce((a, s) => a + s.correctedMB, 0);

    const MB = (b: number) => (b >= 1e5 ? fmt(b / 1e6, 1) : `${fmt(b / 1e6, 4)}`);
    const md: string[] = [];
    md.push(`# Redis memory plan, ${new Date().toISOString()}`, '');
    md.push(`Measured on redis-server ${await (r as Redis).info('server').then((s) => /redis_version:(\S+)/.exec(s)?.[1])} ` +
      `(jemalloc, 64-bit, default encodings) loaded through the service's own code. Bytes are INFO used_memory deltas ` +
      `divided by the number of entities loaded (the catalog is split by MEMORY USAGE of its keys).`, '');
    md.push('| entity | bytes | what it is in Redis |', '|---|---:|---|');
    for (const e of entities) md.push(`| ${e.name} | ${fmt(e.bytes, 1)} | ${e.how} |`);
    md.push('', `Per waiting user, MEMORY USAGE of each key: line string ${fmt(queueKeyUsage.line, 1)} B, ` +
      `queue token hash ${fmt(queueKeyUsage.tokenHash, 1)} B (at ${fmt(sample.waiting)} users).`, '');
    md.push(`## Plan: ${nodes} nodes (each holds everything: 1 master + ${nodes - 1} replicas) + ${Math.round(headroom * 100)} % headroom`, '');
    md.push('| item | count | B/item (seed) | MB (seed) | MB (seed, corrected) | B/item (measured) | MB (measured) |');
    md.push('|---|---:|---:|---:|---:|---:|---:|');
    for (const l of lines) {
      const s = seedItems.find((x) => x.item === l.item);
      md.push(`| ${l.item} | ${fmt(l.count)} | ${s ? s.seedB : '–'} | ${s ? fmt(s.seedMB, 2) : '–'} | ${s ? fmt(s.correctedMB, 3) : '–'} | ` +
        `${fmt(l.bytes, 1)} | ${MB(l.count * l.bytes)} |`);
    }
    md.push(`| empty Redis | 1 | | | | ${fmt(baseline)} | ${MB(baseline)} |`);
    md.push(`| **per node** | | | **${fmt(seedSum, 1)}** | **${fmt(correctedSum, 1)}** | | **${MB(perNode)}** |`);
    md.push(`| **× ${nodes} nodes + ${Math.round(headroom * 100)} %** | | | **${fmt(seedSum * nodes * (1 + headroom), 0)}** (the seed says ≈ 1.7 GB) | ` +
      `**${fmt(correctedSum * nodes * (1 + headroom), 0)}** | | **${MB(total)}** |`, '');
    md.push(`Each node needs about ${fmt((perNode * (1 + headroom)) / 1e9, 2)} GB (data + ${Math.round(headroom * 100)} %); ` +
      `the waiting line is ${fmt((100 * counts.waiting * byName['waiting user']!) / dataBytes, 0)} % of it.`, '');
    md.push('Seed corrections: ' + seedItems.filter((s) => s.note).map((s) => `${s.item}: ${s.note}`).join('; ') + '.', '');
    md.push(`The token record is most of a waiting user (MEMORY USAGE ${fmt(queueKeyUsage.tokenHash, 1)} B). As used_memory ` +
      `deltas over ${fmt(sample.waiting)} fields: a value of 14 bytes, the record's size, ${fmt(alt.value14!, 1)} B; of 15 bytes ` +
      `${fmt(alt.value15!, 1)} B; the "<uuid>:<seq>" text the service kept before ${fmt(alt.uuidTextTokenField!, 1)} B. ` +
      `Other shapes of it, with uuid ids, measured the ` +
      `same way over ${fmt(sample.waiting)} entries: hashes of 128 users bucketed by user id ${fmt(alt.tokenBucketsDenseText!, 1)} B ` +
      `when one concert's users are consecutive ids, ${fmt(alt.tokenBucketsSparseText!, 1)} B when 1 in 100 ids waits; the same with ` +
      `the jti as 16 raw bytes ${fmt(alt.tokenBucketsDenseBinary!, 1)} B; a user → entry number hash alone (the jti kept in a ` +
      `26-byte line slot instead) ${fmt(alt.userSeqIndex!, 1)} B + 16 B.`, '');
    md.push('Not in the plan: allocator fragmentation (used_memory_rss / used_memory, typically 1.1–1.5 after churn), the ' +
      'replication backlog (repl-backlog-size, 1 MB by default; size it for a failover window), replica output buffers, and ' +
      'copy-on-write during a fork if persistence is turned on. The headroom has to cover these.', '');
    const text = md.join('\n');
    const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
    const base = join(outDir, `capacity-${stamp}`);
    writeFileSync(`${base}.json`, `${JSON.stringify({ counts, nodes, headroom, sample, entities, lines, perNode, total, seedItems, seedSum, correctedSum, detail }, null, 2)}\n`);
    writeFileSync(`${base}.md`, text);
    process.stdout.write(`${text}\nwritten: ${base}.md and .json\n`);
  } finally {
    redis?.disconnect();
    await db?.destroy().catch(() => {});
    await proc?.stop();
    await scratch?.drop();
  }
}

await main();
process.exit(0);
