import type { Logger } from '../../logger.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { watchMasterChanges } from '../../resilience/failover-watch.ts';

/**
 * A Sentinel failover promoted a replica that may lack the old master's last writes: while the
 * fleet serves from Redis, take the safe path back to a Redis that matches SQL (SQL mode,
 * drain, rebuild, back to Redis). Outside Redis mode the rebuild to come reloads Redis anyway.
 */
export function rebuildOnMasterChange(redis: RedisClient, log: Logger, deps: {
  useRedis: () => boolean;
  rebuildNow: () => Promise<unknown>;
}): void {
  watchMasterChanges(redis, (from, to) => {
    log.warn('redis master changed; reconciling redis from sql', { from, to });
    if (deps.useRedis()) void deps.rebuildNow().catch((err) => log.error('rebuild after failover failed', { err }));
  });
}
