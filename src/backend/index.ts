import { unrecordedUpTo } from '../modules/queue/place-recovery.ts';
import type { ModeController } from '../resilience/mode.ts';
import { Backends } from './backends.ts';
import { redisBackend, type RedisDeps } from './redis.ts';
import { sqlBackend, sqlStores, type SqlDeps } from './sql.ts';

export { Backends } from './backends.ts';
export type { Backend } from './types.ts';

/** Both backends, each with its links to the other (see redisBackend, sqlBackend), served as the mode says. */
export function createBackends(mode: ModeController, deps: RedisDeps & SqlDeps): Backends {
  const sql = sqlStores({
    ...deps,
    redisUnrecordedUpTo: (concertId, now) => unrecordedUpTo(deps.redis, concertId, now, deps.config.queueGraceSeconds * 1000),
  });
  const redis = redisBackend(deps, sql);
  return new Backends(mode, redis, sqlBackend(sql, deps, redis.holds));
}
