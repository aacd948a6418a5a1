/**
 * Measures a scheduled sale at scale: a pre-queue of N fans (default 1,000,000) and their draw,
 * on a scratch redis-server (a free loopback port, never 6379) and a scratch database.
 * Reports the time of each step, Redis memory before and after, and the longest single Redis
 * command during the draw (SLOWLOG, threshold 0.5 ms).
 * Usage: bun bench/draw.ts [--fans 1000000] [--sql sqlite|postgres]
 */
import { parseArgs } from 'node:util';
import { newQueueTokenId } from '../src/modules/tokens/token-slots.ts';
import { loadConfig } from '../src/config.ts';
import { createContext } from '../src/context.ts';
import { createRedis } from '../src/redis/connection.ts';
import { keys } from '../src/redis/keys.ts';
import { insertConcert } from '../src/modules/catalog/catalog.repo.ts';
import { reloadConcert } from '../src/modules/catalog/load-concert.ts';
import { drawTicket } from '../src/modules/draw/algorithm.ts';
import { sendCommand, startRedis } from '../sentinel/topology.ts';
import { createTestDatabase, type SqlTarget } from '../tests/helpers/sql.ts';

const { values } = parseArgs({ options: { fans: { type: 'string', default: '1000000' }, sql: { type: 'string', default: 'sqlite' } } });
const fans = Number(values.fans);
const target = values.sql as SqlTarget;

const redisProc = await startRedis();
const database = await createTestDatabase(target);
const config = loadConfig({
  JWT_SECRET: 'bench-secret-that-is-at-least-32-bytes-long!!', ADMIN_API_KEY: 'bench', LOG_LEVEL: 'error',
  REDIS_URL: redisProc.url, DATABASE_URL: database.url,
});
const redis = createRedis(config.redis, { timeoutMs: 60_000 });
const ctx = createContext(config, { db: database.db, redis });
const db = database.db;
const port = Number(new URL(redisProc.url).port);
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
const timed = async <T>(fn: () => Promise<T>) => {
  const t = performance.now();
  const value = await fn();
  return { value, ms: Math.round(performance.now() - t) };
};

const rows: Record<string, string | number>[] = [];
try {
  const now = Date.now();
  const saleAt = now + 600_000;
  const { concert } = await insertConcert(db, {
    title: 'Bench sale', saleStartsAt: saleAt, schedules: [{ date: now + 30 * 86_400_000, seats: 100, price: 1 }],
  }, { maxActive: 1000, admitPerSecond: 100, activeTtlSeconds: 600 }, now);
  const c = concert.id;
  await reloadConcert(db, redis, c, now);
  const memBefore = await usedMemory();

  // The pre-queue as joins leave it: SQL rows (user, token with entry number 0, pre-queued place)
  // and, in Redis, one hash field per fan with a heartbeat inside the draw's window.
  const sqlFill = await timed(async () => {
    // 50,000 fans per transaction: the fill is set-up, not what is measured.
    for (let block = 1; block <= fans; block += 50_000) await db.transaction().execute(async (db) => {
    for (let from = block; from < block + 50_000 && from <= fans; from += 500) {
      const users = Array.from({ length: Math.min(500, fans - from + 1) }, (_, i) => from + i);
      const jtis = users.map(() => newQueueTokenId());
      await db.insertInto('users').values(users.map((u) => ({ id: u, balance: 0, created_at: now }))).execute();
      await db.insertInto('tokens').values(users.map((u, i) => ({
        jti: jtis[i]!, user_id: u, typ: 'queue' as const, concert_id: c, seq: 0, expires_at: saleAt + 3_600_000, revoked_at: null, created_at: now,
      }))).execute();
      await db.insertInto('prequeue_entries').values(users.map((u, i) => ({
        concert_id: c, user_id: u, ticket: drawTicket(u.toString(16).padStart(16, '0'), u), jti: jtis[i]!, status: 'waiting' as const,
        joined_at: now - 3_600_000, last_seen_at: now - 3_600_000, drawn_seq: null,
      }))).execute();
      if (from % 100_000 === 1) process.stderr.write(`sql ${from}\n`);
    }
    });
  });
  const tokens = await db.selectFrom('prequeue_entries').select(['user_id', 'jti']).where('concert_id', '=', c).execute();
  const redisFill = await timed(async () => {
    for (let i = 0; i < tokens.length; i += 1000) {
      const fields: Record<string, string> = {};
      for (const t of tokens.slice(i, i + 1000)) fields[t.user_id] = `${t.jti}|${saleAt - 1000}`;
      await redis.hset(keys.prequeue(c), fields);
    }
  });
  const memPrequeue = await usedMemory();

  await sendCommand(port, ['CONFIG', 'SET', 'slowlog-log-slower-than', '500']);
  await sendCommand(port, ['CONFIG', 'SET', 'slowlog-max-len', '100000']);
  await sendCommand(port, ['SLOWLOG', 'RESET']);
  process.stderr.write('drawing\n');
  const drawAt = saleAt + 1;
  const draw = await timed(() => ctx.sale.drawConcert(c, drawAt, ctx.backends.redis));
  process.stderr.write(`draw ${draw.ms} ms\n`);
  const apply = await timed(() => ctx.sale.applyDraw(c, drawAt));
  process.stderr.write(`apply ${apply.ms} ms\n`);
  const slow = (await sendCommand(port, ['SLOWLOG', 'GET', '100000'], 60_000)) as unknown as [number, number, number, string[]][];
  const name = (e: [number, number, number, string[]]) => (e[3][0]!.toLowerCase().startsWith('eval') ? `${e[3][0]} (a script)` : e[3][0]!);
  const longest = slow.reduce((m, e) => (e[2] > m.us ? { us: e[2], cmd: name(e) } : m), { us: 0, cmd: '-' });
  const byCmd = new Map<string, number>();
  for (const e of slow) byCmd.set(name(e), (byCmd.get(name(e)) ?? 0) + 1);
  console.error('calls over 0.5 ms by command:', Object.fromEntries(byCmd));
  const scriptUs = slow.filter((e) => name(e).endsWith('(a script)')).map((e) => e[2]).sort((a, b) => a - b);
  const pct = (q: number) => (scriptUs.length ? (scriptUs[Math.min(scriptUs.length - 1, Math.floor(q * scriptUs.length))]! / 1000).toFixed(2) : '-');
  const memDrawn = await usedMemory();
  const waiting = Number(await redis.hget(keys.queueMeta(c), 'waiting'));

  rows.push({
    sql: target, fans, 'sql fill s': (sqlFill.ms / 1000).toFixed(1), 'redis fill s': (redisFill.ms / 1000).toFixed(1),
    'pre-queue Redis MB': ((memPrequeue - memBefore) / 1e6).toFixed(1),
    'draw (heartbeats + SQL record) s': (draw.ms / 1000).toFixed(1), drawn: draw.value?.drawn ?? 0,
    'apply to Redis s': (apply.ms / 1000).toFixed(1), 'in line': waiting,
    'line Redis MB': ((memDrawn - memBefore) / 1e6).toFixed(1),
    'Redis calls > 0.5 ms': slow.length, 'apply batches > 0.5 ms (median / p99 ms)': `${scriptUs.length} (${pct(0.5)} / ${pct(0.99)})`, 'longest Redis call': longest.us ? `${(longest.us / 1000).toFixed(2)} ms (${longest.cmd})` : '< 0.5 ms',
  });
} finally {
  await ctx.stopJobs();
  redis.disconnect();
  await database.drop();
  await redisProc.stop();
}
const cols = Object.keys(rows[0] ?? {});
console.log(`| ${cols.join(' | ')} |`);
console.log(`|${cols.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${cols.map((k) => r[k]).join(' | ')} |`);
