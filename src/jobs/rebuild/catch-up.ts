import { restorePlacesSince, syncSoldSeats } from '../../modules/catalog/load-concert.ts';
import type { RedisClient } from '../../redis/connection.ts';
import type { Db } from '../../store/connect.ts';

/**
 * How far before the rebuild's start the catch-up looks for places. A queue token's
 * `created_at` is the time its join started, on the clock of the instance that served it: a
 * SQL-mode join that started before the rebuild may commit while the rebuild reads its concert
 * (a statement or a wait for a pooled connection may take up to SQL_TIMEOUT_MS, 5 s by
 * default), and another instance's clock may run a little behind this one's. Restoring a
 * place Redis already has is skipped, so looking further back costs only a few reads.
 */
export const CATCH_UP_MARGIN_MS = 5000;

/**
 * After the switch back to Redis: re-applies, for each concert, what SQL-mode requests still
 * in flight during the rebuild may have written. Sold seats are re-added (a sale is final, so
 * this is always safe while Redis serves) and places their written-through tokens prove are
 * restored unless Redis already knows the user.
 */
export async function catchUpConcerts(db: Db, redis: RedisClient, concerts: number[], since: number, now: () => number): Promise<void> {
  for (const id of concerts) {
    await syncSoldSeats(db, redis, id);
    await restorePlacesSince(db, redis, id, since - CATCH_UP_MARGIN_MS, now());
  }
}
