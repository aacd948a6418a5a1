/**
 * Every value format a Redis key holds that TypeScript reads or writes, in one place, so that
 * a format change is one edit here and one in the Lua scripts that spell it too (named in each
 * codec's comment). The waiting line's packed slots have their own module, line.ts.
 */
export { MAX_LINE_USER_ID, packSlots, SLOT_BYTES, writeSlot } from '../modules/queue/line.ts';

/**
 * A queue token hash value (keys.queueTokens, user -> "jti:seq"): the user's current queue
 * token and its entry number. Spelled in Lua by joinQueue, applyDraw, restorePlace and read by
 * include/checkQueueToken.lua, pollPrequeue, markSold, admitNext.
 */
export const queueTokenRecord = {
  encode: (jti: string, seq: number): string => `${jti}:${seq}`,
  decode(value: string): { jti: string; seq: number } {
    const sep = value.indexOf(':');
    return { jti: value.slice(0, sep), seq: Number(value.slice(sep + 1)) };
  },
};

/** A seat's hold string (keys.hold): "reservationId|userId". Written by holdSeat. */
export const seatHoldValue = {
  encode: (reservationId: string, userId: number): string => `${reservationId}|${userId}`,
  decode(value: string): { reservationId: string; userId: number } {
    const bar = value.indexOf('|');
    return { reservationId: value.slice(0, bar), userId: Number(value.slice(bar + 1)) };
  },
};

/** A pre-queue hash value (keys.prequeue, user -> "jti|last poll ms"). Written by pollPrequeue too. */
export const prequeueRecord = {
  encode: (jti: string, seenMs: number): string => `${jti}|${seenMs}`,
  decode(value: string): { jti: string; seenMs: number } {
    const bar = value.indexOf('|');
    return { jti: value.slice(0, bar), seenMs: Number(value.slice(bar + 1)) };
  },
};

/** The reservation hash's fields (keys.reservation), as holdSeat, releaseHold and markSold write them. */
export const RESERVATION_FIELDS = { userId: 'u', scheduleId: 'sc', seatNumber: 'n', price: 'p', expiresAt: 'x', status: 'st' } as const;

export interface ReservationHash {
  userId: number; scheduleId: number; seatNumber: number; price: number; expiresAt: number;
  /** 'held' | 'released' | 'paid' as the scripts set it. */
  status: string;
}

/** The reservation hash's fields for HSET. */
export function encodeReservationHash(r: ReservationHash): Record<string, string | number> {
  const f = RESERVATION_FIELDS;
  return {
    [f.userId]: r.userId, [f.scheduleId]: r.scheduleId, [f.seatNumber]: r.seatNumber, [f.price]: r.price,
    [f.expiresAt]: r.expiresAt, [f.status]: r.status,
  };
}

/** The reservation hash as HGETALL returns it; null when Redis does not have it. */
export function decodeReservationHash(h: Record<string, string>): ReservationHash | null {
  const f = RESERVATION_FIELDS;
  if (!h[f.userId]) return null;
  return {
    userId: Number(h[f.userId]), scheduleId: Number(h[f.scheduleId]), seatNumber: Number(h[f.seatNumber]),
    price: Number(h[f.price]), expiresAt: Number(h[f.expiresAt]), status: h[f.status]!,
  };
}

/**
 * A write-behind stream entry (keys.stream), field name to value. The scripts write them:
 * e event name; queue events ('join' | 'admit' | 'skip' | 'lapse' | 'expire' | 'leave' | 'done')
 * carry u user, s entry number, t time (ms) and, for 'admit', x active-until (ms); 'hold' and
 * 'release' carry r reservation id, u user, sc schedule, n seat, p price, x expires-at (ms), t time.
 */
export type StreamEvent = Record<string, string>;

/** The stream's field names (see StreamEvent). */
export const STREAM_FIELDS = {
  event: 'e', user: 'u', seq: 's', time: 't', until: 'x', reservation: 'r', schedule: 'sc', seat: 'n', price: 'p',
} as const;

/** An entry's flat field list (XREADGROUP / XRANGE) as a StreamEvent. */
export function decodeStreamFields(fields: readonly string[]): StreamEvent {
  const ev: StreamEvent = {};
  for (let i = 0; i + 1 < fields.length; i += 2) ev[fields[i]!] = fields[i + 1]!;
  return ev;
}
