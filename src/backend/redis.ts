import type { Config } from '../config.ts';
import type { WriteBehindWorker } from '../jobs/write-behind.ts';
import { applyEvents } from '../jobs/write-behind.apply.ts';
import { RedisCatalogStore } from '../modules/catalog/catalog.stores.ts';
import type { Concerts } from '../modules/catalog/concerts.ts';
import { etaInputsInRedis, etaInputsInSql } from '../modules/console/eta-inputs.ts';
import { RedisSampleStore } from '../modules/console/samples.ts';
import { RedisPrequeueStore } from '../modules/draw/prequeue.stores.ts';
import { RedisSpentChallenges } from '../modules/pow/spent-challenges.ts';
import { adoptPlace, liveInSql, restoreLostPlace, tokenKnownInSql } from '../modules/queue/place-recovery.ts';
import { reserveEntryNumbers } from '../modules/queue/queue-state.repo.ts';
import { RedisQueueStore } from '../modules/queue/queue.redis.ts';
import { RedisHoldStore } from '../modules/reservations/holds.redis.ts';
import { recordGrantedHold } from '../modules/reservations/reservations.repo.ts';
import { RedisTokenStore } from '../modules/tokens/token.stores.ts';
import type { RedisClient } from '../redis/connection.ts';
import { encodeQueueEvent } from '../redis/codecs.ts';
import { keys } from '../redis/keys.ts';
import { assertRedisMode } from '../resilience/sql-fence.ts';
import type { Db } from '../store/connect.ts';
import type { SqlStores } from './sql.ts';
import type { Backend } from './types.ts';

export interface RedisDeps {
  db: Db;
  redis: RedisClient;
  config: Config;
  clock: () => number;
  concerts: Concerts;
  writeBehind: WriteBehindWorker;
}

export type RedisBackend = Backend & {
  kind: 'redis';
  queue: RedisQueueStore;
  holds: RedisHoldStore;
  catalog: RedisCatalogStore;
  tokens: RedisTokenStore;
  prequeue: RedisPrequeueStore;
  spentChallenges: RedisSpentChallenges;
  samples: RedisSampleStore;
};

/**
 * Redis mode: Redis serves the hot paths, SQL stays the record of truth. Every place where the
 * Redis backend reads or writes SQL's side is wired here, from `sql` (SQL mode's own stores):
 * - holds are written through to SQL, and SQL answers what Redis does not know (HoldRecords);
 * - a user token Redis does not keep (past TOKEN_REDIS_LIMIT, or lost) is checked in SQL;
 * - a queue token Redis does not know but SQL has live is put back (restoreLostPlace);
 * - a spent challenge new to Redis is recorded in SQL, whose answer decides;
 * - catalog reads that miss in Redis (a concert not fully loaded, a sold-out schedule) read SQL;
 * - the wait estimate's inputs come from SQL while Redis fails.
 * Admissions are committed to SQL before Redis makes them (see RedisQueueStore.admitTick).
 */
export function redisBackend(d: RedisDeps, sql: SqlStores): RedisBackend {
  const { db, redis, config, concerts, writeBehind } = d;
  const holds = new RedisHoldStore(redis, async (id) => (await concerts.concert(id)).endsAt, {
    find: (concertId, rid, now) => sql.holds.find(concertId, rid, now),
    listOwn: (userId, now, limit) => sql.holds.listOwn(userId, now, limit),
    ownLiveHold: (userId, concertId, scheduleId, seat, now) => sql.holds.ownLiveHoldOf(userId, concertId, scheduleId, seat, now),
    recordGranted: (hold, now) => recordGrantedHold(db, hold, now),
    release: (rid, userId, now, inRedis) => sql.holds.releaseWith(rid, userId, now, inRedis),
  }, { replicas: config.redisWaitReplicas, timeoutMs: config.redisWaitTimeoutMs });
  return {
    kind: 'redis',
    queue: new RedisQueueStore(redis, config, (id) => concerts.ensureLoaded(id, d.clock()),
      (concertId, upTo) => reserveEntryNumbers(db, concertId, upTo), (concertId, admissions, now) =>
      // Only while the fleet is in Redis mode: once another instance has moved it to SQL mode,
      // SQL mode admits, and a second admitter working from a Redis line would not follow its order.
      applyEvents(db, concertId, admissions.map((a) => encodeQueueEvent({
        event: 'admit', userId: a.userId, seq: a.seq, time: now, activeUntil: a.activeUntil,
      })), now, { fence: assertRedisMode })),
    holds,
    catalog: new RedisCatalogStore(db, redis, concerts, sql.catalog),
    tokens: new RedisTokenStore(db, redis, sql.tokens, config.joinReplaySeconds * 1000),
    prequeue: new RedisPrequeueStore(db, redis),
    spentChallenges: new RedisSpentChallenges(redis, sql.spentChallenges),
    samples: new RedisSampleStore(redis),
    leaveRevokesToken: false,
    joinsRecordedBehind: true,
    saleMirror: { store: holds, required: true },
    async restoreLostPlace(place, now) {
      const lost = { ...place, now };
      if (!(await liveInSql(db, lost))) {
        // Left and spent tokens are revoked in SQL at once, replaced ones with the join that
        // replaced them: most unknown tokens end here or after the drain below.
        if (await tokenKnownInSql(db, place.jti)) return false;
        // SQL has no row at all: the place's record was on its way. The stream may still carry
        // it (or the place's end); once drained, a token SQL still does not know went with the
        // Redis that lost the stream, and is taken back if nothing contradicts it.
        await writeBehind.drainConcertShared(place.concertId);
        if (!(await liveInSql(db, lost))) {
          const since = Number(await redis.hget(keys.queueMeta(place.concertId), 'loadedAt').catch(() => 0)) || 0;
          const adopted = await adoptPlace(db, place, now, { since, graceMs: config.queueGraceSeconds * 1000, fence: assertRedisMode });
          if (!adopted) return false;
        }
      } else {
        // SQL must also learn every place Redis ended on its own (lapses, expiries): drain, then look again.
        await writeBehind.drainConcertShared(place.concertId);
      }
      return restoreLostPlace(db, redis, lost);
    },
    writeBehind: {
      full: (concertId) => writeBehind.overloaded(concertId),
      lagSeconds: (ids) => writeBehind.lagSeconds(ids).catch(() => new Map<number, number>()),
      measure: async () => { await writeBehind.status(); },
      flush: async () => { await writeBehind.drainOnce(Date.now()); },
    },
    // Redis is failing: SQL's figures are older but still an estimate.
    etaInputs: (concertId) => etaInputsInRedis(redis, concertId).catch(() => etaInputsInSql(db, concertId)),
    redisReadable: () => true,
  };
}
