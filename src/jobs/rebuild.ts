import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.ts';
import { loadConcert, type LoadReport } from '../modules/catalog/load-concert.ts';
import type { RedisClient } from '../redis/connection.ts';
import { keys } from '../redis/keys.ts';
import type { Db } from '../store/connect.ts';

export interface RebuildReport { concerts: number; seats: number; holds: number; waiting: number; active: number; ms: number }

const LOCK_MS = 60_000;
const REBUILD_CONCURRENCY = 4;

/**
 * Reloads Redis from SQL for every live concert, under a Redis lock so one instance does it.
 * Returns null when another instance holds the lock; callers wait for its epoch to advance.
 */
export async function rebuildRedis(db: Db, redis: RedisClient, log: Logger, concerts: number[], now = Date.now()):
  Promise<RebuildReport | null> {
  const owner = randomUUID();
  const got = await redis.set(keys.rebuildLock, owner, 'PX', LOCK_MS, 'NX');
  if (got !== 'OK') return null;
  const started = performance.now();
  try {
    const reports: LoadReport[] = [];
    // A few concerts at a time: SQL reads of one overlap Redis writes of another.
    const queue = [...concerts];
    await Promise.all(Array.from({ length: Math.min(REBUILD_CONCURRENCY, queue.length) }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        const r = await loadConcert(db, redis, id, now);
        if (r) reports.push(r);
      }
    }));
    await redis.del(keys.concertList);
    await redis.incr(keys.rebuildEpoch);
    const report: RebuildReport = {
      concerts: reports.length,
      seats: reports.reduce((a, r) => a + r.seats, 0),
      holds: reports.reduce((a, r) => a + r.holds, 0),
      waiting: reports.reduce((a, r) => a + r.waiting, 0),
      active: reports.reduce((a, r) => a + r.active, 0),
      ms: Math.round(performance.now() - started),
    };
    log.info('redis rebuilt from sql', { ...report });
    return report;
  } finally {
    // Release only our own lock.
    await redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1,
      keys.rebuildLock, owner).catch(() => {});
  }
}
