import type { EtaInputs } from '../modules/console/eta-inputs.ts';
import type { SampleStore } from '../modules/console/samples.ts';
import type { CatalogStore } from '../modules/catalog/catalog.stores.ts';
import type { PrequeueStore } from '../modules/draw/prequeue.stores.ts';
import type { SpentChallenges } from '../modules/pow/spent-challenges.ts';
import type { QueueStore, UnrecordedPlace } from '../modules/queue/types.ts';
import type { HoldStore } from '../modules/reservations/types.ts';
import type { TokenStore } from '../modules/tokens/token.stores.ts';

export interface WriteBehindView {
  /** The concert's stream is at its bound: new places, holds and admissions wait. */
  full(concertId: number): boolean;
  /** Lag per concert, in seconds; empty when nothing is written behind (or it cannot be read). */
  lagSeconds(concertIds: number[]): Promise<Map<number, number>>;
  /** Updates the write-behind's gauges. */
  measure(): Promise<void>;
  /** Applies what waits in the streams (on shutdown). */
  flush(): Promise<void>;
}

/** A place a request named that the backend did not know (see Backend.restoreLostPlace), as its token names it. */
export type PlaceRef = UnrecordedPlace;


/**
 * Everything that is done one way in Redis mode and another in SQL mode: one implementation
 * per mode (src/backend/redis.ts, src/backend/sql.ts), picked once per request by Backends.
 * Services hold the mode-independent logic and call the backend they were given.
 */
export interface Backend {
  readonly kind: 'redis' | 'sql';
  readonly queue: QueueStore;
  readonly holds: HoldStore;
  readonly catalog: CatalogStore;
  readonly tokens: TokenStore;
  readonly prequeue: PrequeueStore;
  readonly spentChallenges: SpentChallenges;
  /** Where the console sampler writes this mode's samples. */
  readonly samples: SampleStore;
  /**
   * Where a sale committed in SQL is mirrored: Redis in every mode (sold is final, so marking
   * it is always safe, and a Redis that another instance has just rebuilt must learn of sales
   * made by an instance still in SQL mode). `required`: whether the mirror must succeed.
   */
  /** Whether the queue store's leave revokes the token in the same step (SQL mode: one transaction). */
  readonly leaveRevokesToken: boolean;
  /**
   * Whether a join's queue token is recorded behind its answer (Redis mode: the place's stream
   * entry carries the record, see recordStreamedTokens) rather than before it (SQL mode).
   */
  readonly joinsRecordedBehind: boolean;
  readonly saleMirror: { store: HoldStore; required: boolean };
  /**
   * A queue token this backend did not know: true once the place is back. Redis mode: SQL may
   * have it live (Redis lost the place). SQL mode: a place Redis numbered whose record never
   * reached SQL (SqlQueueStore.adopt).
   */
  restoreLostPlace(place: PlaceRef, now: number): Promise<boolean>;
  /** Redis mode's record in SQL, written behind (SQL mode writes SQL at once: nothing is ever behind). */
  readonly writeBehind: WriteBehindView;
  /** The wait estimate's inputs as the store of this mode keeps them. */
  etaInputs(concertId: number): Promise<EtaInputs>;
  /** Whether reads of Redis (the console's Redis samples) are worth sending now. */
  redisReadable(): boolean;
}
