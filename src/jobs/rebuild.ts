import type { Logger } from '../logger.ts';
import { reloadConcert, type LoadReport } from '../modules/catalog/load-concert.ts';
import { forgetUserTokens } from '../modules/tokens/token-slots.ts';
import type { RedisClient } from '../redis/connection.ts';
import { keys } from '../redis/keys.ts';
import { withLease } from '../redis/lease.ts';
import type { Db } from '../store/connect.ts';

export interface RebuildReport { concerts: number; seats: number; holds: number; waiting: number; active: number; ms: number }

/** A lease renewed while the rebuild runs: a rebuilder that dies frees it within this time. */
const LOCK_MS = 10_000;
const REBUILD_CONCURRENCY = 4;

/**
 * Reloads Redis from SQL for every live concert, under a Redis lock so one instance does it.
 * Each concert's stream is drained again under its load lock, with its joins and admissions
 * held off, so that an instance that has not yet left Redis mode cannot slip a change in
 * between the drain and the reload.
 * Returns null when another instance holds the lock; callers wait for its epoch to advance.
 */
export async function rebuildRedis(db: Db, redis: RedisClient, log: Logger, concerts: number[], now = Date.now(),
  drainConcert?: (concertId: number) => Promise<unknown>): Promise<RebuildReport | null> {
  return withLease(redis, keys.rebuildLock, LOCK_MS, async () => {
    const started = performance.now();
    const reports: LoadReport[] = [];
    // A few concerts at a time: SQL reads of one overlap Redis writes of another.
    const queue = [...concerts];
    await Promise.all(Array.from({ length: Math.min(REBUILD_CONCURRENCY, queue.length) }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        const r = await reloadConcert(db, redis, id, now, drainConcert ? () => drainConcert(id) : undefined);
        if (r) reports.push(r);
      }
    }));
    const revokedTokens = await purgeRevokedUserTokens(db, redis, now);
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
    log.info('redis rebuilt from sql', { ...report, revokedTokens });
    return report;
  });
}

/**
 * A user token revoked while Redis was not in use (joining in SQL mode revokes it in SQL only)
 * still has its Redis record, which would make it valid again once Redis serves: remove the
 * records of every revoked user token that has not expired yet.
 */
async function purgeRevokedUserTokens(db: Db, redis: RedisClient, now: number): Promise<number> {
  const rows = await db.selectFrom('tokens').select('jti')
    .where('typ', '=', 'user').where('revoked_at', 'is not', null).where('expires_at', '>', now).execute();
  for (let i = 0; i < rows.length; i += 1000) {
    const jtis = rows.slice(i, i + 1000).map((r) => r.jti);
    await forgetUserTokens(redis, jtis);
  }
  return rows.length;
}
