/**
 * Write-behind throughput: how fast the worker moves stream entries into SQL, and whether it
 * keeps up with a sustained hold rate. On a scratch redis-server and a fresh SQLite file or
 * PostgreSQL database per engine:
 *
 *   holds            N hold entries of one concert whose rows were written through already
 *                    (what Redis mode leaves in the stream: the hold bench's load)
 *   holds-unwritten  N hold entries with no row yet (write-throughs that did not finish)
 *   queue            N/2 joins and N/2 admissions of the claimed entries
 *   joins            N joins as Redis mode writes them now: no row yet, each entry carrying its
 *                    queue token's record (token, claim, the spent user token's revocation)
 *   sustained        hold entries added at --rate per second for --seconds while the worker's
 *                    loop runs; the lag (age of the oldest entry) is sampled every 100 ms
 *   joins-sustained  the same with join entries at --join-rate per second
 *
 * The drains time WriteBehindWorker.drainOnce over a stream filled beforehand (entries/s).
 * Usage: bun bench/write-behind.ts [--entries 40000] [--rate 7800] [--join-rate 5000] [--seconds 5] [--sql sqlite,postgres] [--batch n]
 */
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startRedis } from '../sentinel/topology.ts';
import { createTestDatabase, type SqlTarget } from '../tests/helpers/sql.ts';
import { insertConcert } from '../src/modules/catalog/catalog.repo.ts';
import { ensureStreamGroup } from '../src/modules/catalog/load-concert.ts';
import { WriteBehindWorker } from '../src/jobs/write-behind.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { keys } from '../src/redis/keys.ts';
import type { Db } from '../src/store/connect.ts';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '40000' },
    rate: { type: 'string', default: '7800' },
    'join-rate': { type: 'string', default: '5000' },
    seconds: { type: 'string', default: '5' },
    sql: { type: 'string', default: 'sqlite,postgres' },
    scenarios: { type: 'string', default: 'holds,holds-unwritten,queue,joins,sustained,joins-sustained' },
    batch: { type: 'string' },
  },
});
const N = Number(values.entries);
const RATE = Number(values.rate);
const JOIN_RATE = Number(values['join-rate']);

/** A join's stream entry as joinQueue writes it: the place and its new queue token's record. */
function joinFields(seq: number, stamp: number): string[] {
  return ['e', 'join', 'u', String(seq), 's', String(seq), 't', String(stamp), 'q', `q${seq}-${randomUUID().slice(0, 8)}`,
    'i', String(stamp), 'y', String(stamp + 3_600_000), 'c', `u${seq}-${randomUUID()}`, 'v', '1', 'r', ''];
}
const SECONDS = Number(values.seconds);
const SEATS_PER_SCHEDULE = 10_000;

interface Seat { scheduleId: number; seat: number }

async function newConcert(db: Db, seats: number, now: number): Promise<{ id: number; seats: Seat[] }> {
  const schedules = Math.ceil(seats / SEATS_PER_SCHEDULE);
  const created = await insertConcert(db, {
    title: 'write-behind bench',
    schedules: Array.from({ length: schedules }, (_, i) => ({ date: now + (30 + i) * 86_400_000, seats: SEATS_PER_SCHEDULE, price: 50_000 })),
  }, { maxActive: 1_000_000, admitPerSecond: 1_000_000, activeTtlSeconds: 3600 }, now);
  const out: Seat[] = [];
  for (const s of created.schedules) for (let n = 1; n <= s.capacity && out.length < seats; n++) out.push({ scheduleId: s.id, seat: n });
  return { id: created.concert.id, seats: out };
}

/** A hold's stream entry, as holdSeat-11.lua writes it. */
const holdFields = (rid: string, user: number, s: Seat, now: number): string[] =>
  ['e', 'hold', 'r', rid, 'u', String(user), 'sc', String(s.scheduleId), 'n', String(s.seat), 'p', '50000', 'x', String(now + 300_000), 't', String(now)];

/** The rows a hold's write-through leaves (reservation, then the seat). */
async function writeThrough(db: Db, concertId: number, holds: { rid: string; user: number; seat: Seat }[], now: number) {
  for (let i = 0; i < holds.length; i += 500) {
    await db.insertInto('reservations').values(holds.slice(i, i + 500).map((h) => ({
      id: h.rid, user_id: h.user, concert_id: concertId, schedule_id: h.seat.scheduleId, seat_number: h.seat.seat, price: 50_000,
      status: 'held' as const, expires_at: now + 300_000, created_at: now, updated_at: now,
    }))).execute();
  }
  await db.transaction().execute(async (trx) => {
    for (const h of holds) {
      await trx.updateTable('seats').set({ status: 'held', hold_reservation_id: h.rid, hold_user_id: h.user, hold_expires_at: now + 300_000 })
        .where('schedule_id', '=', h.seat.scheduleId).where('seat_number', '=', h.seat.seat).execute();
    }
  });
}

async function fill(redis: Redis, stream: string, entries: string[][]) {
  for (let i = 0; i < entries.length; i += 1000) {
    const p = redis.pipeline();
    for (const f of entries.slice(i, i + 1000)) p.xadd(stream, '*', ...f);
    await p.exec();
  }
}

function worker(db: Db, redis: Redis, concertId: number, intervalMs = 100) {
  return new WriteBehindWorker(db, redis, createLogger('silent'), createMetrics(), {
    consumer: `bench-${randomUUID()}`, concerts: async () => [concertId], intervalMs,
    batchSize: values.batch ? Number(values.batch) : undefined,
  });
}

async function timedDrain(db: Db, redis: Redis, concertId: number, count: number) {
  const w = worker(db, redis, concertId);
  const t0 = performance.now();
  const applied = await w.drainOnce(Date.now(), { reclaim: false });
  const ms = performance.now() - t0;
  if (applied !== count) throw new Error(`drained ${applied} of ${count}`);
  if ((await redis.xlen(keys.stream(concertId))) !== 0) throw new Error('stream not empty after the drain');
  return { entries: count, ms: Math.round(ms), perSecond: Math.round(count / (ms / 1000)) };
}

const oldestAgeMs = async (redis: Redis, stream: string, now: number) => {
  const first = await redis.xrange(stream, '-', '+', 'COUNT', 1);
  const id = first[0]?.[0];
  return id ? Math.max(0, now - Number(id.split('-')[0])) : 0;
};

const results: Record<string, unknown>[] = [];
for (const target of String(values.sql).split(',') as SqlTarget[]) {
  const redisProc = await startRedis();
  const redis = new Redis(redisProc.url);
  const database = await createTestDatabase(target);
  const db = database.db;
  const scenarios = String(values.scenarios).split(',');
  try {
    for (const scenario of scenarios) {
      const now = Date.now();
      if (scenario === 'holds' || scenario === 'holds-unwritten') {
        const c = await newConcert(db, N, now);
        const holds = c.seats.map((seat, i) => ({ rid: `${c.id}-${randomUUID()}`, user: 1 + Math.floor(i / 4), seat }));
        if (scenario === 'holds') await writeThrough(db, c.id, holds, now);
        await ensureStreamGroup(redis, c.id);
        await fill(redis, keys.stream(c.id), holds.map((h) => holdFields(h.rid, h.user, h.seat, now)));
        const r = await timedDrain(db, redis, c.id, holds.length);
        const seatsHeld = await db.selectFrom('seats').select((eb) => eb.fn.countAll<number>().as('n'))
          .where('concert_id', '=', c.id).where('status', '=', 'held').executeTakeFirstOrThrow();
        if (Number(seatsHeld.n) !== holds.length) throw new Error(`${seatsHeld.n} seats held of ${holds.length}`);
        results.push({ sql: target, scenario, ...r });
      } else if (scenario === 'queue') {
        const c = await newConcert(db, 1, now);
        const half = Math.floor(N / 2);
        // Joins claimed their entry rows in SQL before they were acknowledged.
        for (let s = 1; s <= half; s += 500) {
          await db.insertInto('queue_entries').values(Array.from({ length: Math.min(500, half - s + 1) }, (_, k) => ({
            concert_id: c.id, seq: s + k, user_id: s + k, status: 'waiting' as const, joined_at: now, admitted_at: null,
            active_until: null, last_seen_at: now, updated_at: now,
          }))).execute();
        }
        const entries: string[][] = [];
        for (let s = 1; s <= half; s++) entries.push(['e', 'join', 'u', String(s), 's', String(s), 't', String(now)]);
        for (let s = 1; s <= half; s++) entries.push(['e', 'admit', 'u', String(s), 's', String(s), 't', String(now + 1), 'x', String(now + 600_000)]);
        await ensureStreamGroup(redis, c.id);
        await fill(redis, keys.stream(c.id), entries);
        const r = await timedDrain(db, redis, c.id, entries.length);
        const state = await db.selectFrom('queue_state').select(['last_seq', 'last_admitted_seq', 'admitted_total'])
          .where('concert_id', '=', c.id).executeTakeFirstOrThrow();
        if (Number(state.admitted_total) !== half || Number(state.last_admitted_seq) !== half) throw new Error(`queue state ${JSON.stringify(state)}`);
        results.push({ sql: target, scenario, ...r });
      } else if (scenario === 'joins') {
        const c = await newConcert(db, 1, now);
        const entries = Array.from({ length: N }, (_, k) => joinFields(k + 1, now));
        await ensureStreamGroup(redis, c.id);
        await fill(redis, keys.stream(c.id), entries);
        const r = await timedDrain(db, redis, c.id, entries.length);
        const recorded = await db.selectFrom('tokens').select((eb) => eb.fn.countAll<number>().as('n'))
          .where('concert_id', '=', c.id).where('revoked_at', 'is', null).executeTakeFirstOrThrow();
        if (Number(recorded.n) !== N) throw new Error(`${recorded.n} tokens recorded of ${N}`);
        results.push({ sql: target, scenario, ...r });
      } else if (scenario === 'sustained' || scenario === 'joins-sustained') {
        const joins = scenario === 'joins-sustained';
        const rate = joins ? JOIN_RATE : RATE;
        const total = Math.round(rate * SECONDS);
        const c = await newConcert(db, joins ? 1 : total, now);
        const holds = joins ? [] : c.seats.map((seat, i) => ({ rid: `${c.id}-${randomUUID()}`, user: 1 + Math.floor(i / 4), seat }));
        if (!joins) await writeThrough(db, c.id, holds, now);
        const fieldsOf = (k: number, stamp: number) => (joins ? joinFields(k + 1, stamp) : holdFields(holds[k]!.rid, holds[k]!.user, holds[k]!.seat, stamp));
        await ensureStreamGroup(redis, c.id);
        const stream = keys.stream(c.id);
        const producer = new Redis(redisProc.url);
        const w = worker(db, redis, c.id);
        w.start();
        let maxLagMs = 0;
        const lags: number[] = [];
        const t0 = performance.now();
        let added = 0;
        // Entries arrive every 10 ms in the amount the rate asks for by then.
        while (added < total) {
          const due = Math.min(total, Math.round(((performance.now() - t0) / 1000) * rate));
          if (due > added) {
            const p = producer.pipeline();
            const stamp = Date.now();
            for (let k = added; k < due; k++) p.xadd(stream, '*', ...fieldsOf(k, stamp));
            await p.exec();
            added = due;
          }
          if (lags.length < ((performance.now() - t0) / 100)) {
            const lag = await oldestAgeMs(producer, stream, Date.now());
            lags.push(lag);
            maxLagMs = Math.max(maxLagMs, lag);
          }
          await Bun.sleep(10);
        }
        const loadMs = performance.now() - t0;
        const leftAtEnd = await producer.xlen(stream);
        while ((await producer.xlen(stream)) > 0) await Bun.sleep(20);
        const drainedAfterMs = performance.now() - t0 - loadMs;
        await w.stop();
        producer.disconnect();
        lags.sort((a, b) => a - b);
        results.push({
          sql: target, scenario, entries: total, rate: Math.round(total / (loadMs / 1000)),
          committedDuringLoad: total - leftAtEnd, leftAtEnd, drainedAfterMs: Math.round(drainedAfterMs),
          lagP50Ms: lags[Math.floor(lags.length / 2)] ?? 0, maxLagMs,
        });
      }
      console.error(JSON.stringify(results.at(-1)));
    }
  } finally {
    redis.disconnect();
    await database.drop();
    await redisProc.stop();
  }
}

const sustained = (x: Record<string, unknown>) => String(x.scenario).endsWith('sustained');
console.log('| sql | scenario | entries | drain ms | entries/s |');
console.log('|---|---|---|---|---|');
for (const r of results.filter((x) => !sustained(x))) console.log(`| ${r.sql} | ${r.scenario} | ${r.entries} | ${r.ms} | ${r.perSecond} |`);
console.log('\n| sql | entries | offered/s | count | committed while offered | left at the end | drained after (ms) | lag p50 (ms) | lag max (ms) |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of results.filter(sustained)) {
  const what = r.scenario === 'sustained' ? 'holds' : 'joins';
  console.log(`| ${r.sql} | ${what} | ${r.rate} | ${r.entries} | ${r.committedDuringLoad} | ${r.leftAtEnd} | ${r.drainedAfterMs} | ${r.lagP50Ms} | ${r.maxLagMs} |`);
}
console.log(JSON.stringify(results));
