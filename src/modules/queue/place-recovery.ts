import type { Transaction } from 'kysely';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import { restorePlace } from '../../redis/script-calls.ts';
import type { Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';
import { recordLateQueueToken } from '../tokens/queue-token-records.ts';
import { insertWaitingEntries } from './entries.repo.ts';
import { lockQueueState } from './queue-state.repo.ts';
import type { UnrecordedPlace } from './types.ts';

export interface LostPlace { concertId: number; userId: number; jti: string; seq: number; now: number }

/**
 * Puts back into Redis a place that SQL says is live but Redis does not know: Redis lost it
 * (a failover that promoted a replica without the master's last writes, a master that took
 * writes for a moment after its replacement was elected). Every place is in SQL before it is
 * acknowledged (token and claimed entry, one transaction), so SQL can tell. The caller first
 * drains the concert's write-behind stream, so that SQL also knows every place Redis ended
 * (a lapse, an expiry) and such a place is not brought back. Redis keeps the upper hand: a user
 * it knows with another token (a newer place) is left alone. True when the place is back.
 */
export async function restoreLostPlace(db: Db, redis: RedisClient, p: LostPlace): Promise<boolean> {
  if (!(await liveInSql(db, p))) return false;
  const entry = await db.selectFrom('queue_entries').select(['status', 'active_until'])
    .where('concert_id', '=', p.concertId).where('seq', '=', p.seq).where('user_id', '=', p.userId)
    .executeTakeFirstOrThrow();
  const active = entry.status === 'active' && (entry.active_until ?? 0) > p.now;
  // A master that refuses writes (NOREPLICAS right after a failover) answers 503, not 401.
  const { restored } = await restorePlace(redis, {
    concertId: p.concertId, userId: p.userId, jti: p.jti, seq: p.seq, now: p.now, activeUntil: active ? entry.active_until! : 0,
  });
  return restored;
}

/**
 * SQL's view of the place: its token live and its entry waiting or admitted. Cheap (two primary
 * key reads), so callers ask it first and drain the stream only for places it calls live.
 */
export async function liveInSql(db: Db, p: LostPlace): Promise<boolean> {
  const token = await db.selectFrom('tokens').select('jti')
    .where('jti', '=', p.jti).where('typ', '=', 'queue').where('concert_id', '=', p.concertId).where('user_id', '=', p.userId)
    .where('seq', '=', p.seq).where('revoked_at', 'is', null).where('expires_at', '>', p.now)
    .executeTakeFirst();
  if (!token) return false;
  const entry = await db.selectFrom('queue_entries').select(['status', 'active_until'])
    .where('concert_id', '=', p.concertId).where('seq', '=', p.seq).where('user_id', '=', p.userId)
    .executeTakeFirst();
  const active = entry?.status === 'active' && (entry.active_until ?? 0) > p.now;
  return !!entry && (active || entry.status === 'waiting');
}

/** Whether SQL has any row for the token (live, revoked or expired). */
export async function tokenKnownInSql(db: Db | Transaction<Database>, jti: string): Promise<boolean> {
  return (await db.selectFrom('tokens').select('jti').where('jti', '=', jti).executeTakeFirst()) !== undefined;
}

/**
 * Takes back a place whose correctly signed queue token SQL has no row for: a place Redis mode
 * numbered and acknowledged whose record had not reached SQL when Redis was lost. Under the
 * concert's row lock, and only while the mode row says what `fence` asks, when nothing
 * contradicts it:
 * - its number lies within the ceiling SQL reserved for Redis (SQL mode numbers above it and
 *   records each of its own places at once, so an unknown token above it is no place), and
 *   nobody else's entry holds it;
 * - admission has not passed the number (a place that came back behind the front would be
 *   admitted out of entry order), unless SQL has its entry still in line;
 * - the heartbeat grace has not run out since the later of its issue and `since` (when the
 *   heartbeats the lost Redis saw stopped being known);
 * - its user holds no later place in the concert (recordLateQueueToken: one place per user per
 *   concert, and a join at a higher number replaced it). Then the token is recorded revoked, so
 *   that it stays refused whatever becomes of the later place. An earlier place of the user in
 *   the concert ends: the adopted join was the one that replaced it.
 * True when SQL has the place (token and entry) afterwards.
 */
export async function adoptPlace(db: Db, p: UnrecordedPlace, now: number,
  opts: { since: number; graceMs: number; fence: (trx: Transaction<Database>) => Promise<void> }): Promise<boolean> {
  if (p.seq <= 0 || p.expiresAt <= now) return false;
  if (now - Math.max(p.issuedAt, opts.since) > opts.graceMs) return false;
  return db.transaction().execute(async (trx) => {
    await opts.fence(trx);
    const state = await lockQueueState(trx, p.concertId);
    if (p.seq > state.seq_ceiling || (await tokenKnownInSql(trx, p.jti))) return false;
    const entry = await trx.selectFrom('queue_entries').select(['user_id', 'status'])
      .where('concert_id', '=', p.concertId).where('seq', '=', p.seq).executeTakeFirst();
    if (entry ? entry.user_id !== p.userId || (entry.status !== 'waiting' && entry.status !== 'active')
      : p.seq <= state.last_admitted_seq) return false;
    if (!(await recordLateQueueToken(trx, p, now))) return false;
    if (!entry) await insertWaitingEntries(trx, p.concertId, [{ seq: p.seq, userId: p.userId, joinedAt: p.issuedAt }], now);
    return true;
  });
}

/** How long SQL-mode admission waits for Redis to show what it gave out before it holds anyway. */
const REDIS_SAYS_WITHIN_MS = 500;

/**
 * The highest entry number of a concert whose record SQL may still lack, as the serving Redis
 * shows it, for SQL mode's admission to hold before (SqlQueueStore.admitTick):
 * - 0 when its queue is there, no earlier loss's places may still come back (none marked,
 *   `unknownUpTo`, or `loadedAt` plus the grace is past) and its stream is empty: every entry
 *   applied and deleted, so SQL has every record;
 * - its `lastSeq` while the stream still holds entries (a failover to a replica whose master had
 *   not drained, and whose stream waits for the switch back since the write-behind runs in Redis
 *   mode only): a number above it was never given out, so the unused rest of the reserved block
 *   holds nobody up;
 * - Infinity when Redis cannot say within half a second (unreachable, a queue it lost, a loss
 *   still pending).
 */
export async function unrecordedUpTo(redis: RedisClient, concertId: number, now: number, graceMs: number): Promise<number> {
  const asked = redis.pipeline().hmget(keys.queueMeta(concertId), 'admitPerSecond', 'loadedAt', 'unknownUpTo', 'lastSeq')
    .xlen(keys.stream(concertId)).exec()
    .then((res) => {
      if (!res || res.some(([err]) => err)) return Infinity;
      const [admitPerSecond, loadedAt, unknownUpTo, lastSeq] = res[0]![1] as (string | null)[];
      const lossPending = (Number(unknownUpTo) || 0) > 0 && now < (Number(loadedAt) || 0) + graceMs;
      if (admitPerSecond === null || lossPending) return Infinity;
      return Number(res[1]![1]) === 0 ? 0 : Number(lastSeq) || Infinity;
    }, () => Infinity);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<number>((resolve) => { timer = setTimeout(resolve, REDIS_SAYS_WITHIN_MS, Infinity); });
  try {
    return await Promise.race([asked, late]);
  } finally {
    clearTimeout(timer);
  }
}
