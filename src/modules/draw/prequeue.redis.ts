import { ScriptCode } from '../../redis/codes.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { prequeueRecord } from '../../redis/codecs.ts';
import { keys } from '../../redis/keys.ts';
import * as script from '../../redis/script-calls.ts';

/** The Redis half of the pre-queue: who is pre-queued under which token, and their last poll. */

export type PrequeuePoll = 'prequeued' | { placed: number } | 'unknown' | 'lapsed';

/** Records a pre-queued place (SQL already has it) with a fresh heartbeat. */
export async function putPrequeued(redis: RedisClient, concertId: number, userId: number, jti: string, now: number): Promise<void> {
  const key = keys.prequeue(concertId);
  const [[, untilMs]] = (await redis.multi().pexpiretime(keys.queueMeta(concertId)).hset(key, String(userId), prequeueRecord.encode(jti, now)).exec()) as [[null, number]];
  if (untilMs > 0) await redis.pexpireat(key, untilMs);
}

export async function pollPrequeued(redis: RedisClient, concertId: number, userId: number, jti: string, now: number,
  graceMs: number): Promise<PrequeuePoll> {
  const r = await script.pollPrequeue(redis, { concertId, userId, jti, now, graceMs });
  switch (r.code) {
    case ScriptCode.Prequeued: return 'prequeued';
    case ScriptCode.Ok: return { placed: r.seq };
    case ScriptCode.PlaceLost: return 'lapsed';
    default: return 'unknown';
  }
}

export async function dropPrequeued(redis: RedisClient, concertId: number, userId: number): Promise<void> {
  await redis.hdel(keys.prequeue(concertId), String(userId));
}

/** Users whose last pre-queue poll was at or after `since`, walked in bounded HSCAN steps. */
export async function seenSince(redis: RedisClient, concertId: number, since: number): Promise<number[]> {
  const out: number[] = [];
  let cursor = '0';
  do {
    const [next, flat] = await redis.hscan(keys.prequeue(concertId), cursor, 'COUNT', 250);
    cursor = next;
    for (let i = 0; i < flat.length; i += 2) {
      if (prequeueRecord.decode(flat[i + 1]!).seenMs >= since) out.push(Number(flat[i]));
    }
  } while (cursor !== '0');
  return out;
}

/** One batch of drawn places into the waiting line; null when the concert's queue is not in Redis. */
export async function applyDrawBatch(redis: RedisClient, concertId: number, now: number, lastSeq: number,
  places: { userId: number; jti: string; seq: number }[]): Promise<number | null> {
  const r = await script.applyDraw(redis, { concertId, now, lastSeq, places });
  return r.code === ScriptCode.NoQueue ? null : r.applied;
}

/** The whole draw is in the line: joins may come; the pre-queue is over (freed in the background). */
export async function markDrawApplied(redis: RedisClient, concertId: number): Promise<void> {
  await redis.multi().hset(keys.queueMeta(concertId), 'drawn', 1).unlink(keys.prequeue(concertId)).exec();
}

/** '1' once this concert's draw is all in Redis's line; null when the queue is not loaded. */
export async function drawAppliedFlag(redis: RedisClient, concertId: number): Promise<'applied' | 'pending' | 'unloaded'> {
  const [drawn, admit] = await redis.hmget(keys.queueMeta(concertId), 'drawn', 'admitPerSecond');
  if (admit === null) return 'unloaded';
  return drawn === '1' ? 'applied' : 'pending';
}
