import type { Logger } from '../../logger.ts';
import { reloadConcert, type LoadReport } from '../../modules/catalog/load-concert.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import type { Db } from '../../store/connect.ts';
import { purgeRevokedUserTokens } from './revoked-tokens.ts';

export interface RebuildReport { concerts: number; seats: number; holds: number; waiting: number; active: number; ms: number }

const REBUILD_CONCURRENCY = 4;

/**
 * Reloads Redis from SQL for the given concerts (callers hold the rebuild lease), then drops
 * the Redis records of user tokens SQL revoked meanwhile and the cached concert list.
 * Each concert's stream is drained again under its load lock, with its joins and admissions
 * held off, so that an instance that has not yet left Redis mode cannot slip a change in
 * between the drain and the reload.
 */
export async function reloadConcerts(db: Db, redis: RedisClient, log: Logger, concerts: number[], now: number,
  drainConcert?: (concertId: number) => Promise<unknown>): Promise<RebuildReport> {
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
}
