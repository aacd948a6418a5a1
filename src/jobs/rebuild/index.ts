import type { Logger } from '../../logger.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { withLease } from '../../redis/lease.ts';
import { sleep } from '../../runtime/index.ts';
import type { Db } from '../../store/connect.ts';
import { catchUpConcerts } from './catch-up.ts';
import { reloadConcerts, type RebuildReport } from './reload.ts';

export type { RebuildReport } from './reload.ts';
export { CATCH_UP_MARGIN_MS } from './catch-up.ts';
export { rebuildOnMasterChange } from './master-change.ts';

/** The rebuild lease is renewed while the rebuild runs: a rebuilder that dies frees it within this time. */
const LEASE_MS = 10_000;
/**
 * A rebuild taken over from an owner that went silent (ModeCoordinator.sync) may still be
 * running there, renewing the lease: wait for it to end, up to this many tries this far apart
 * (about 30 s, three lease lifetimes, so an owner that died has freed it well before), then
 * fail, which sends the fleet back to SQL until the coordinator's next try.
 */
const LEASE_TRIES = 100;
const LEASE_RETRY_MS = 300;

export interface RebuilderDeps {
  db: Db;
  redis: RedisClient;
  log: Logger;
  clock: () => number;
  /** The concerts the rebuild reloads and the catch-up revisits. */
  liveConcerts: (now: number) => Promise<number[]>;
  /** Moves what a concert's write-behind stream still holds into SQL; run under its load lock just before its reload. */
  drainConcert?: (concertId: number) => Promise<unknown>;
}

/**
 * Reloads Redis from SQL and catches up after the switch back to Redis.
 *
 * Which instance rebuilds is decided by the mode row (ModeCoordinator: its conditional update
 * lets exactly one instance rebuild, and one recovery at a time runs per instance). The Redis
 * lease here guards what the row cannot: an owner whose rebuild was taken over because it went
 * silent may still be writing to Redis, and the new owner's reload must not overlap it.
 */
export class Rebuilder {
  constructor(private readonly deps: RebuilderDeps) {}

  /** Reloads every live concert, waiting (bounded) for a rebuild still running elsewhere. */
  async rebuild(): Promise<RebuildReport> {
    const { clock, liveConcerts } = this.deps;
    for (let attempt = 0; attempt < LEASE_TRIES; attempt++) {
      const report = await this.tryRebuild(await liveConcerts(clock()), clock());
      if (report) return report;
      await sleep(LEASE_RETRY_MS);
    }
    throw new Error('the rebuild lock stayed busy');
  }

  /** One try at reloading these concerts: null, without reloading anything, while another holds the lease. */
  tryRebuild(concerts: number[], now: number): Promise<RebuildReport | null> {
    const { db, redis, log, drainConcert } = this.deps;
    return withLease(redis, keys.rebuildLock, LEASE_MS, () => reloadConcerts(db, redis, log, concerts, now, drainConcert));
  }

  /**
   * After the switch back to Redis: re-applies what SQL-mode requests still in flight during
   * the rebuild may have written (sold seats, places). `since`: when the rebuild started.
   */
  async catchUp(since: number): Promise<void> {
    const { db, redis, clock, liveConcerts } = this.deps;
    await catchUpConcerts(db, redis, await liveConcerts(clock()), since, clock);
  }
}
