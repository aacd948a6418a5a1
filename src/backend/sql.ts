import type { Config } from '../config.ts';
import { etaInputsInSql } from '../modules/console/eta-inputs.ts';
import { SqlSampleStore } from '../modules/console/samples.ts';
import { SqlCatalogStore } from '../modules/catalog/catalog.stores.ts';
import { SqlPrequeueStore } from '../modules/draw/prequeue.stores.ts';
import { SqlSpentChallenges } from '../modules/pow/spent-challenges.ts';
import { SqlQueueStore } from '../modules/queue/queue.sql.ts';
import { SqlHoldStore } from '../modules/reservations/holds.sql.ts';
import type { HoldStore } from '../modules/reservations/types.ts';
import { SqlTokenStore } from '../modules/tokens/token.stores.ts';
import type { Db } from '../store/connect.ts';
import type { Backend } from './types.ts';

export interface SqlDeps {
  db: Db;
  config: Config;
  /** When this instance last moved to SQL mode (0 when it never did): Redis-mode heartbeats are unknown to SQL. */
  sqlSince: () => number;
  /** Whether Redis answers now (this instance's breaker is closed), though the mode is not Redis. */
  redisAnswers: () => boolean;
  /** The highest entry number of a concert whose record Redis shows SQL may still lack (unrecordedUpTo). */
  redisUnrecordedUpTo?: (concertId: number, now: number) => Promise<number>;
}

/** SQL's stores: SQL mode's whole backend, and what the Redis backend falls back on. */
export function sqlStores(d: SqlDeps) {
  const queue = new SqlQueueStore(d.db, d.config, d.sqlSince, d.redisUnrecordedUpTo);
  const tokens = new SqlTokenStore(d.db);
  return {
    queue,
    holds: new SqlHoldStore(d.db, queue),
    catalog: new SqlCatalogStore(d.db),
    tokens,
    prequeue: new SqlPrequeueStore(d.db, d.sqlSince),
    spentChallenges: new SqlSpentChallenges(d.db),
    samples: new SqlSampleStore(d.db),
  };
}

export type SqlStores = ReturnType<typeof sqlStores>;
export type SqlBackend = Backend & SqlStores & { kind: 'sql' };

/**
 * SQL mode (and the rebuild): SQL serves everything. Redis is still written where that is
 * always safe and it must not miss anything: committed sales (`mirrorTo`, see Backend.saleMirror).
 */
export function sqlBackend(stores: SqlStores, d: SqlDeps, mirrorTo: HoldStore): SqlBackend {
  return {
    kind: 'sql',
    ...stores,
    leaveRevokesToken: true,
    joinsRecordedBehind: false,
    // Outside Redis mode Redis may be gone: the mirror is tried, and the rebuild's catch-up loads every sale.
    saleMirror: { store: mirrorTo, required: false },
    restoreLostPlace: (place, now) => stores.queue.adopt(place, now),
    // The streams are not written; the rebuild drains what Redis mode left before Redis returns.
    writeBehind: {
      full: () => false,
      lagSeconds: async () => new Map<number, number>(),
      measure: async () => {},
      flush: async () => {},
    },
    etaInputs: (concertId) => etaInputsInSql(d.db, concertId),
    redisReadable: d.redisAnswers,
  };
}
