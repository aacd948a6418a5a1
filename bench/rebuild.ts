/**
 * Measures the rebuild of Redis from SQL at the seed's scale: 30 concerts × 15 schedules ×
 * 300 seats, 10,000 waiting users (and some active users and live holds), on SQLite and on
 * PostgreSQL. Usage: bun bench/rebuild.ts [--concerts 30] [--waiting 10000] [--sql sqlite,postgres] [--runs 1]
 * (--runs N rebuilds N times over the same SQL and reports each time and the median: the machine is shared)
 */
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startRedis } from '../sentinel/topology.ts';
import { createTestDatabase, type SqlTarget } from '../tests/helpers/sql.ts';
import { insertConcert } from '../src/modules/catalog/catalog.repo.ts';
import { Rebuilder, type RebuildReport } from '../src/jobs/rebuild/index.ts';
import { createLogger } from '../src/logger.ts';
import { registerScripts } from '../src/redis/scripts.ts';
import { keys } from '../src/redis/keys.ts';

const { values } = parseArgs({
  options: {
    concerts: { type: 'string', default: '30' },
    schedules: { type: 'string', default: '15' },
    seats: { type: 'string', default: '300' },
    waiting: { type: 'string', default: '10000' },
    active: { type: 'string', default: '500' },
    holds: { type: 'string', default: '1000' },
    sql: { type: 'string', default: 'sqlite,postgres' },
    runs: { type: 'string', default: '1' },
  },
});
const n = (k: keyof typeof values) => Number(values[k]);

const results = [];
for (const target of String(values.sql).split(',') as SqlTarget[]) {
  const redisProc = await startRedis();
  const redis = new Redis(redisProc.url);
  registerScripts(redis);
  const database = await createTestDatabase(target);
  const db = database.db;
  const now = Date.now();
  try {
    const concertIds: number[] = [];
    const seedStart = performance.now();
    for (let c = 0; c < n('concerts'); c++) {
      const created = await insertConcert(db, {
        title: `Concert ${c + 1}`,
        schedules: Array.from({ length: n('schedules') }, (_, i) => ({ date: now + (30 + i) * 86_400_000, seats: n('seats'), price: 50_000 })),
      }, { maxActive: 1000, admitPerSecond: 100, activeTtlSeconds: 600 }, now);
      concertIds.push(created.concert.id);
    }
    // Waiting and active users of the first concert (the hot one), with written-through tokens.
    const hot = concertIds[0]!;
    const total = n('waiting') + n('active');
    const users = Array.from({ length: total }, (_, i) => i + 1);
    for (let i = 0; i < users.length; i += 500) {
      const chunk = users.slice(i, i + 500);
      await db.insertInto('users').values(chunk.map((u) => ({ id: u, balance: 0, created_at: now }))).execute();
      await db.insertInto('tokens').values(chunk.map((u) => ({
        jti: randomUUID(), user_id: u, typ: 'queue' as const, concert_id: hot, seq: u, expires_at: now + 3_600_000, revoked_at: null, created_at: now,
      }))).execute();
      await db.insertInto('queue_entries').values(chunk.map((u) => ({
        concert_id: hot, seq: u, user_id: u, status: u <= n('active') ? 'active' as const : 'waiting' as const, joined_at: now,
        admitted_at: u <= n('active') ? now : null, active_until: u <= n('active') ? now + 600_000 : null, last_seen_at: now, updated_at: now,
      }))).execute();
    }
    await db.updateTable('queue_state').set({ last_seq: total, last_admitted_seq: n('active') }).where('concert_id', '=', hot).execute();
    // Live holds spread over the hot concert's schedules.
    const schedules = await db.selectFrom('schedules').select('id').where('concert_id', '=', hot).execute();
    for (let h = 0; h < n('holds'); h++) {
      const s = schedules[h % schedules.length]!.id;
      const seat = Math.floor(h / schedules.length) + 1;
      await db.updateTable('seats').set({ status: 'held', hold_reservation_id: `${hot}-${randomUUID()}`, hold_user_id: (h % total) + 1, hold_expires_at: now + 300_000 })
        .where('schedule_id', '=', s).where('seat_number', '=', seat).execute();
    }
    const seedMs = Math.round(performance.now() - seedStart);

    const rebuilder = new Rebuilder({ db, redis, log: createLogger('silent'), clock: Date.now, liveConcerts: async () => concertIds });
    let report: RebuildReport | null = null;
    const runsMs: number[] = [];
    const runsCpuMs: number[] = [];
    for (let run = 0; run < n('runs'); run++) {
      // CPU of this process (the service's side of the rebuild): steadier than wall time on a busy machine.
      const cpu0 = process.cpuUsage();
      report = await rebuilder.tryRebuild(concertIds, Date.now());
      const cpu = process.cpuUsage(cpu0);
      runsMs.push(report?.ms ?? NaN);
      runsCpuMs.push(Math.round((cpu.user + cpu.system) / 1000));
    }
    const medianMs = [...runsMs].sort((a, b) => a - b)[Math.floor(runsMs.length / 2)];
    const waitingInRedis = Number(await redis.hget(keys.queueMeta(hot), 'waiting'));
    const activeInRedis = await redis.zcard(keys.active(hot));
    const memory = /used_memory:(\d+)/.exec(await redis.info('memory'))?.[1];
    results.push({ sql: target, seedMs, rebuildMs: medianMs, runsMs, runsCpuMs, ...report, waitingInRedis, activeInRedis, redisBytes: Number(memory) });
  } finally {
    redis.disconnect();
    await database.drop();
    await redisProc.stop();
  }
}
console.log('| sql | concerts | seats | holds | waiting | active | rebuild ms (median) | runs ms | process CPU ms | Redis bytes after |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.sql} | ${r.concerts} | ${r.seats} | ${r.holds} | ${r.waiting} | ${r.active} | ${r.rebuildMs} | ${r.runsMs.join(', ')} | ${r.runsCpuMs.join(', ')} | ${r.redisBytes} |`);
}
console.log(JSON.stringify(results));
