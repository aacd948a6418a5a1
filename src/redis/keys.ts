/**
 * Every Redis key the service uses. All keys of one concert share the hash tag `{c:<id>}` so
 * each script touches a single slot and the same code runs on Redis Cluster.
 * docs/redis-keys.md describes each key's type, lifetime and owner.
 */
const tag = (concertId: number) => `{c:${concertId}}`;

export const keys = {
  // catalog (cache of SQL)
  concertList: 'catalog:concerts',
  concert: (c: number) => `${tag(c)}:concert`,
  /** The public concert detail (GET /v1/concerts/:id), JSON, a few seconds. */
  concertDetail: (c: number) => `${tag(c)}:detail`,
  /** Held while one loader writes the concert from SQL; no second loader may wipe its work. */
  loadLock: (c: number) => `${tag(c)}:loading`,
  scheduleIds: (c: number) => `${tag(c)}:schedules`,
  schedule: (c: number, s: number) => `${tag(c)}:sched:${s}`,
  seats: (c: number, s: number) => `${tag(c)}:seats:${s}`,
  sold: (c: number, s: number) => `${tag(c)}:sold:${s}`,

  // holds
  holds: (c: number, s: number) => `${tag(c)}:holds:${s}`,
  hold: (c: number, s: number, seat: number) => `${tag(c)}:hold:${s}:${seat}`,
  userHolds: (c: number, u: number) => `${tag(c)}:uholds:${u}`,
  reservation: (c: number, rid: string) => `${tag(c)}:res:${rid}`,
  /** The user's paid reservations of the concert (a set, so a sale counts once): MAX_TICKETS_PER_USER. */
  userPaid: (c: number, u: number) => `${tag(c)}:upaid:${u}`,

  // waiting room
  queueMeta: (c: number) => `${tag(c)}:q:meta`,
  /**
   * The waiting line and its heartbeat: a string of 10-byte slots, one per entry number (user id
   * u32, last poll ms u48, big-endian; zeros when empty). See src/modules/queue/line.ts.
   */
  line: (c: number) => `${tag(c)}:q:line`,
  active: (c: number) => `${tag(c)}:q:active`,
  queueTokens: (c: number) => `${tag(c)}:q:qt`,
  /** Scheduled sale: fans pre-queued for the draw (user -> "jti|last poll ms"). */
  prequeue: (c: number) => `${tag(c)}:q:pre`,
  /** Held by the instance applying a recorded draw to Redis. */
  drawLock: (c: number) => `${tag(c)}:q:drawing`,
  /** A join's claim: the queue token id a join made with token `src` gives out (src/modules/tokens/token.stores.ts). */
  joinClaim: (c: number, src: string) => `${tag(c)}:q:jc:${src}`,

  // write-behind
  stream: (c: number) => `${tag(c)}:wb`,

  // operator console: the last hour's samples (a capped list, newest first) and who took a slot
  consoleSamples: (c: number) => `${tag(c)}:console:samples`,
  consoleSlot: (slot: number) => `console:slot:${slot}`,

  // user tokens: the token id's first two hex digits are its tag (src/modules/tokens/token-slots.ts),
  // so tokens spread over Cluster slots and each tag's count is written with its tokens
  userToken: (jti: string) => `{tok:${jti.slice(0, 2)}}:${jti}`,
  /** The live tokens of a tag: give a token id of the tag, or the tag's two hex digits. */
  liveUserTokens: (jti: string) => `{tok:${jti.slice(0, 2)}}:live`,

  /** A proof-of-work challenge used for a join; value: the join that spent it (src/modules/pow/). */
  spentChallenge: (id: string) => `pow:spent:${id}`,

  rebuildLock: 'lock:rebuild',
  /** Written by the mode probe: Redis is back only when it takes writes. */
  writeProbe: 'probe:write',
} as const;

export const WRITE_BEHIND_GROUP = 'sql';
