import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';

/**
 * The waiting line in Redis (keys.line): one string, a 10-byte slot per entry number at byte
 * offset seq * 10: the user id (u32) and the last poll time in ms (u48), big-endian; a slot of
 * zeros is empty (left, lapsed, or passed by admission). Position needs no index: the entry
 * number is the order. The queue scripts read and write slots with BITFIELD (bit offset
 * seq * 80), admitNext reads them in GETRANGE chunks from the meta hash's `lineHead`.
 */
export const SLOT_BYTES = 10;

/**
 * The poll time of an empty slot that may hold a place after all (user id 0, time 1): a number a
 * lost Redis may have given out whose record never reached SQL, marked by a reload. For one
 * heartbeat grace from the reload admission stops there (its fan may come back: adoptPlace, then
 * restorePlace fills the slot); afterwards it is an empty slot like any other.
 */
export const UNKNOWN_SLOT_SEEN = 1;

/** User ids must fit the slot's 32 bits. */
export const MAX_LINE_USER_ID = 0xffff_ffff;

export function writeSlot(buf: Buffer, at: number, userId: number, seenMs: number): void {
  buf.writeUInt32BE(userId, at);
  buf.writeUIntBE(seenMs, at + 4, 6);
}

/** The slots from entry number `from` to `to` as one buffer, ready for a single SETRANGE at from * SLOT_BYTES. */
export function packSlots(from: number, to: number, places: Iterable<{ seq: number; userId: number; seenMs: number }>): Buffer {
  const buf = Buffer.alloc((to - from + 1) * SLOT_BYTES);
  for (const p of places) writeSlot(buf, (p.seq - from) * SLOT_BYTES, p.userId, p.seenMs);
  return buf;
}

export interface LinePlace { seq: number; userId: number; seenMs: number }

/** Who waits, in entry order, read from the head in bounded steps (tests, tools; not a hot path). */
export async function readLine(redis: RedisClient, concertId: number): Promise<LinePlace[]> {
  const [head, last] = (await redis.hmget(keys.queueMeta(concertId), 'lineHead', 'lastSeq')).map((v) => Number(v ?? 0));
  const out: LinePlace[] = [];
  const step = 4096;
  for (let from = head! + 1; from <= last!; from += step) {
    const to = Math.min(last!, from + step - 1);
    const raw = await redis.getrangeBuffer(keys.line(concertId), from * SLOT_BYTES, to * SLOT_BYTES + SLOT_BYTES - 1);
    for (let o = 0; o + SLOT_BYTES <= raw.length; o += SLOT_BYTES) {
      const userId = raw.readUInt32BE(o);
      if (userId !== 0) out.push({ seq: from + o / SLOT_BYTES, userId, seenMs: raw.readUIntBE(o + 4, 6) });
    }
  }
  return out;
}
