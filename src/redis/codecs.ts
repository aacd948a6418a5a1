/**
 * Every value format a Redis key holds that TypeScript reads or writes, in one place, so that
 * a format change is one edit here and one in the Lua scripts that spell it too (named in each
 * codec's comment). The waiting line's packed slots have their own module, line.ts.
 */
export { MAX_LINE_USER_ID, packSlots, SLOT_BYTES, writeSlot } from '../modules/queue/line.ts';

/**
 * A queue token hash value (keys.queueTokens, user -> record): the user's current queue token id
 * and its entry number, packed as
 *
 *   <jti> <entry number, u32 big-endian>
 *
 * An id the service issues has 10 characters (newQueueTokenId), so a record is 14 bytes: the
 * largest value Redis keeps in its smallest hash entry (docs/performance.md, memory). Any other
 * id (a uuid issued before) is kept the same way, only longer. Scripts compare the jti with the
 * record's bytes but the last four and read the entry number with struct.unpack('>I4'). Spelled in
 * Lua by joinQueue and applyDraw; read by include/checkQueueToken.lua, pollPrequeue, markSold,
 * admitNext; restorePlace stores what encode builds.
 */
export const queueTokenRecord = {
  encode(jti: string, seq: number): Buffer {
    const id = Buffer.from(jti, 'utf8');
    const out = Buffer.allocUnsafe(id.length + 4);
    id.copy(out, 0);
    out.writeUInt32BE(seq, id.length);
    return out;
  },
  decode(value: Buffer): { jti: string; seq: number } {
    return { jti: value.subarray(0, value.length - 4).toString('utf8'), seq: value.readUInt32BE(value.length - 4) };
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
 * A write-behind stream entry (keys.stream) as XREADGROUP / XRANGE return it, field name to
 * value. The scripts write the fields with short names (memory): e event name; a queue event
 * carries u user, s entry number, t time (ms) and, for 'admit', x active-until (ms); 'join' and
 * 'token' may carry the new queue token's record (q, i, y, c, v, r: StreamTokenRecord); 'hold' and
 * 'release' carry r reservation id, u user, sc schedule, n seat, p price, x expires-at (ms), t time.
 */
export type StreamEvent = Record<string, string>;

/** An entry's flat field list as a StreamEvent. */
export function decodeStreamFields(fields: readonly string[]): StreamEvent {
  const ev: StreamEvent = {};
  for (let i = 0; i + 1 < fields.length; i += 2) ev[fields[i]!] = fields[i + 1]!;
  return ev;
}

/** 'token': a live place handed to a new queue token (no step of the place itself). */
export type QueueEventName = 'join' | 'token' | 'admit' | 'skip' | 'lapse' | 'expire' | 'leave' | 'done';
const QUEUE_EVENTS: ReadonlySet<string> = new Set<QueueEventName>(['join', 'token', 'admit', 'skip', 'lapse', 'expire', 'leave', 'done']);

/**
 * The queue token a 'join' or 'token' event gives the place to, as its record is to say (see
 * joinQueue): id, issue and expiry (ms), the token the join was made with (its claim's source)
 * and whether the join replaced it, and the queue token it replaced (null if none).
 */
export interface StreamTokenRecord {
  jti: string; issuedAt: number; expiresAt: number; srcJti: string; replacesSrc: boolean; replacedJti: string | null;
}

/**
 * A place's step in the waiting room. activeUntil: an 'admit' event's end of the active slot;
 * token: the record of the token a 'join' or 'token' event hands the place to, when it carries one.
 */
export interface QueueStreamEvent {
  event: QueueEventName; userId: number; seq: number; time: number; activeUntil: number | null; token?: StreamTokenRecord;
}

/** A hold granted ('hold') or given back ('release') in Redis. */
export interface HoldStreamEvent {
  event: 'hold' | 'release'; reservationId: string; userId: number; scheduleId: number; seatNumber: number;
  price: number; expiresAt: number; time: number;
}

/** A stream entry's meaning; null for an event name this version does not know. */
export function decodeStreamEvent(ev: StreamEvent): QueueStreamEvent | HoldStreamEvent | null {
  const name = ev.e ?? '';
  if (QUEUE_EVENTS.has(name)) {
    const e: QueueStreamEvent = {
      event: name as QueueEventName, userId: Number(ev.u), seq: Number(ev.s), time: Number(ev.t),
      activeUntil: ev.x === undefined ? null : Number(ev.x),
    };
    if (ev.q !== undefined) {
      e.token = {
        jti: ev.q, issuedAt: Number(ev.i), expiresAt: Number(ev.y), srcJti: ev.c ?? '', replacesSrc: ev.v === '1',
        replacedJti: ev.r ? ev.r : null,
      };
    }
    return e;
  }
  if (name === 'hold' || name === 'release') {
    return {
      event: name, reservationId: ev.r!, userId: Number(ev.u), scheduleId: Number(ev.sc), seatNumber: Number(ev.n),
      price: Number(ev.p), expiresAt: Number(ev.x), time: Number(ev.t),
    };
  }
  return null;
}

/** A queue event in the stream's format, for TypeScript that hands SQL what a script would have written. */
export function encodeQueueEvent(e: QueueStreamEvent): StreamEvent {
  const ev: StreamEvent = { e: e.event, u: String(e.userId), s: String(e.seq), t: String(e.time) };
  if (e.activeUntil !== null) ev.x = String(e.activeUntil);
  if (e.token) {
    const t = e.token;
    Object.assign(ev, { q: t.jti, i: String(t.issuedAt), y: String(t.expiresAt), c: t.srcJti, v: t.replacesSrc ? '1' : '0', r: t.replacedJti ?? '' });
  }
  return ev;
}
