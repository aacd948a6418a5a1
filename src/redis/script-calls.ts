/**
 * One typed wrapper per Lua script (scripts/<name>-<numKeys>.lua): it takes named inputs, builds
 * the keys from keys.ts in the order the script's contract lists them, calls the script and
 * decodes the reply tuple into named fields, with the reply code as a union of ScriptCode
 * members. Each wrapper's `raw` makes the same call and returns the tuple undecoded (the script
 * tests assert the tuples themselves).
 */
import { ScriptCode } from './codes.ts';
import { queueTokenRecord } from './codecs.ts';
import type { RedisClient } from './connection.ts';
import { keys } from './keys.ts';
import { runScript, type ScriptName, type ScriptReply } from './scripts.ts';

type Args = readonly (string | number | Buffer)[];

export interface ScriptCall<I, R, Raw = ScriptReply> {
  (redis: RedisClient, input: I): Promise<R>;
  readonly scriptName: ScriptName;
  /** The keys the script is called with, in its contract's order. */
  keys(input: I): readonly string[];
  /** The same call, with the reply tuple (or packed string) as the script returns it. */
  raw(redis: RedisClient, input: I): Promise<Raw>;
}

function defineScript<I, R, Raw = ScriptReply>(scriptName: ScriptName, keysOf: (i: I) => readonly string[], argsOf: (i: I) => Args,
  decode: (r: Raw) => R): ScriptCall<I, R, Raw> {
  const raw = (redis: RedisClient, input: I) => runScript(redis, scriptName, keysOf(input), argsOf(input)) as Promise<unknown> as Promise<Raw>;
  // `then`, not an async wrapper: one Promise fewer on every call (the poll is one).
  const call = (redis: RedisClient, input: I) => raw(redis, input).then(decode);
  return Object.assign(call, { scriptName, keys: keysOf, raw });
}

/** The five keys of a concert's queue, built once per concert (every poll needs them). */
const queueKeysByConcert = new Map<number, readonly string[]>();
export function queueKeys(c: number): readonly string[] {
  let k = queueKeysByConcert.get(c);
  if (k === undefined) {
    if (queueKeysByConcert.size >= 10_000) queueKeysByConcert.clear();
    k = Object.freeze([keys.queueMeta(c), keys.line(c), keys.active(c), keys.queueTokens(c), keys.stream(c)]);
    queueKeysByConcert.set(c, k);
  }
  return k;
}

const code = (r: ScriptReply) => Number(r[0]);

// ---- waiting room ----------------------------------------------------------------------------

/** A queued user's call: whose token, on which concert, at what time (the app's clock, ms). */
export interface QueueUserInput { concertId: number; userId: number; jti: string; now: number }

/** The wait estimate's inputs that the joinQueue reply carries, from index `at` on (pollQueue's come packed: decodePollQueue). */
export function estimateFields(r: readonly unknown[], at: number) {
  return {
    paused: r[at] === 1, maxActive: Number(r[at + 1]), activeCount: Number(r[at + 2]), activeTtlSeconds: Number(r[at + 3]),
    meanHoldSeconds: r[at + 4] === '' || r[at + 4] == null ? null : Number(r[at + 4]),
    spread: Number(r[at + 5] ?? 1),
  };
}
export type EstimateFields = ReturnType<typeof estimateFields>;

export type JoinQueueReply =
  | ({ code: ScriptCode.Ok; seq: number; status: 'waiting' | 'active'; lastAdmitted: number; activeUntil: number;
      replacedJti: string | null; observedRate: number; admitPerSecond: number; fresh: boolean; seqCeiling: number } & EstimateFields)
  | { code: ScriptCode.QueueClosed | ScriptCode.NoQueue | ScriptCode.Reloading | ScriptCode.DrawPending }
  /** No entry number left under the ceiling: reserve in SQL past lastSeq, raiseSeqCeiling, join again. */
  | { code: ScriptCode.SeqCeiling; lastSeq: number };

/**
 * What a join's stream entry tells SQL of its queue token (joinQueue): the claim's issue time,
 * the expiry, the token the join was made with and whether the join replaces it.
 */
export interface JoinTokenRecord { issuedAt: number; expiresAt: number; srcJti: string; replacesSrc: boolean }

export const joinQueue = defineScript('joinQueue',
  (i: QueueUserInput & { graceMs: number; token?: JoinTokenRecord }) => queueKeys(i.concertId),
  (i) => [i.userId, i.jti, i.now, i.graceMs,
    ...(i.token ? [i.token.issuedAt, i.token.expiresAt, i.token.srcJti, i.token.replacesSrc ? 1 : 0] : [])],
  (r): JoinQueueReply => {
    if (code(r) === ScriptCode.SeqCeiling) return { code: ScriptCode.SeqCeiling, lastSeq: Number(r[1]) };
    if (code(r) !== ScriptCode.Ok) return { code: code(r) as ScriptCode.QueueClosed | ScriptCode.NoQueue | ScriptCode.Reloading | ScriptCode.DrawPending };
    return {
      code: ScriptCode.Ok, seq: Number(r[1]), status: r[2] === 1 ? 'active' : 'waiting', lastAdmitted: Number(r[3]),
      activeUntil: Number(r[4]), replacedJti: r[5] ? String(r[5]) : null, observedRate: Number(r[6]) / 1000,
      admitPerSecond: Number(r[7]), fresh: r[8] === 1, ...estimateFields(r, 9), seqCeiling: Number(r[15]),
    };
  });

export type RaiseSeqCeilingReply = { code: ScriptCode.Ok; seqCeiling: number } | { code: ScriptCode.NoQueue };

export const raiseSeqCeiling = defineScript('raiseSeqCeiling',
  (i: { concertId: number; ceiling: number }) => [keys.queueMeta(i.concertId)],
  (i) => [i.ceiling],
  (r): RaiseSeqCeilingReply => (code(r) === ScriptCode.Ok ? { code: ScriptCode.Ok, seqCeiling: Number(r[1]) } : { code: ScriptCode.NoQueue }));

export type PollQueueReply =
  | ({ code: ScriptCode.Ok; status: 'waiting' | 'active'; seq: number; lastAdmitted: number; activeUntil: number;
      observedRate: number; admitPerSecond: number } & EstimateFields)
  | { code: ScriptCode.UnknownToken | ScriptCode.PlaceLost };

/**
 * pollQueue's reply: its fields packed in one string when the place is there (see the script),
 * `{code}` when it is not.
 */
export type PollQueueRaw = string | ScriptReply;

/** A pollQueue reply, decoded. */
export function decodePollQueue(r: PollQueueRaw): PollQueueReply {
  if (typeof r !== 'string') return { code: code(r) as ScriptCode.UnknownToken | ScriptCode.PlaceLost };
  const f = r.split(' ');
  return {
    code: ScriptCode.Ok, status: f[1] === '1' ? 'active' : 'waiting', seq: Number(f[2]), lastAdmitted: Number(f[3]),
    activeUntil: Number(f[4]), observedRate: Number(f[5]) / 1000, admitPerSecond: Number(f[6]),
    paused: f[7] === '1', maxActive: Number(f[8]), activeCount: Number(f[9]), activeTtlSeconds: Number(f[10]),
    meanHoldSeconds: f[11] === '' ? null : Number(f[11]), spread: Number(f[12] || 1),
  };
}

export const pollQueue = defineScript('pollQueue',
  (i: QueueUserInput & { graceMs: number }) => queueKeys(i.concertId),
  (i) => [i.userId, i.jti, i.now, i.graceMs],
  decodePollQueue);

export type LeaveQueueReply = { code: ScriptCode.Ok; seq: number } | { code: ScriptCode.UnknownToken };

export const leaveQueue = defineScript('leaveQueue',
  (i: QueueUserInput & { event: 'leave' | 'done' }) => queueKeys(i.concertId),
  (i) => [i.userId, i.jti, i.now, i.event],
  (r): LeaveQueueReply => code(r) === ScriptCode.Ok ? { code: ScriptCode.Ok, seq: Number(r[1]) } : { code: ScriptCode.UnknownToken });

export type CheckQueueTokenReply =
  | { code: ScriptCode.Ok | ScriptCode.NotAdmitted; seq: number; activeUntil: number }
  | { code: ScriptCode.UnknownToken };

export const checkQueueToken = defineScript('checkQueueToken',
  (i: QueueUserInput) => [keys.queueTokens(i.concertId), keys.active(i.concertId)],
  (i) => [i.userId, i.jti, i.now],
  (r): CheckQueueTokenReply => code(r) === ScriptCode.UnknownToken
    ? { code: ScriptCode.UnknownToken }
    : { code: code(r) as ScriptCode.Ok | ScriptCode.NotAdmitted, seq: Number(r[1]), activeUntil: Number(r[2]) });

/** Why a tick did nothing: another caller took it, the queue is not loaded, or it is being reloaded. */
export type TickSkipped = { code: ScriptCode.TickTaken | ScriptCode.NoQueue | ScriptCode.Reloading };

export interface TickInput {
  concertId: number; now: number; tickId: number; graceMs: number; tickMs: number;
  /** Most slots of the line examined in one tick (empty ones too). */
  maxScan: number;
}

export type PeekAdmissionsReply =
  | { code: ScriptCode.Ok; activeUntil: number; admissions: { userId: number; seq: number }[] }
  | TickSkipped;

export const peekAdmissions = defineScript('peekAdmissions',
  (i: TickInput) => queueKeys(i.concertId).slice(0, 3),
  (i) => [i.now, i.tickId, i.graceMs, i.tickMs, i.maxScan],
  (r): PeekAdmissionsReply => {
    if (code(r) !== ScriptCode.Ok) return { code: code(r) as TickSkipped['code'] };
    const admissions: { userId: number; seq: number }[] = [];
    for (let i = 2; i + 1 < r.length; i += 2) admissions.push({ userId: Number(r[i]), seq: Number(r[i + 1]) });
    return { code: ScriptCode.Ok, activeUntil: Number(r[1]), admissions };
  });

export interface AdmitNextInput extends TickInput {
  /** Most lapsed active users freed in one tick; the rest are freed by the ticks after it. */
  maxExpire: number;
  /** The wait estimate's constants (src/modules/queue/eta.ts). */
  eta: { windowMs: number; gapTicks: number; ageBuckets: number };
  /**
   * The entry numbers SQL has recorded as admitted (peekAdmissions chose them): only those are
   * admitted. Absent: any live entry within the budget is.
   */
  approved?: readonly number[];
}

export type AdmitNextReply =
  | { code: ScriptCode.Ok; admitted: number; skipped: number; expired: number; active: number; waiting: number }
  | TickSkipped;

export const admitNext = defineScript('admitNext',
  (i: AdmitNextInput) => queueKeys(i.concertId),
  (i) => [i.now, i.tickId, i.graceMs, i.tickMs, i.maxScan, i.eta.windowMs, i.eta.gapTicks, i.eta.ageBuckets, i.maxExpire,
    ...(i.approved ? ['1', ...i.approved] : [])],
  (r): AdmitNextReply => code(r) !== ScriptCode.Ok
    ? { code: code(r) as TickSkipped['code'] }
    : { code: ScriptCode.Ok, admitted: Number(r[1]), skipped: Number(r[2]), expired: Number(r[3]), active: Number(r[4]), waiting: Number(r[5]) });

export interface RestorePlaceInput {
  concertId: number; userId: number; jti: string; seq: number; now: number;
  /** When the active slot ends (ms); 0 for a waiting place. */
  activeUntil: number;
}

export const restorePlace = defineScript('restorePlace',
  (i: RestorePlaceInput) => [keys.queueMeta(i.concertId), keys.line(i.concertId), keys.active(i.concertId), keys.queueTokens(i.concertId)],
  (i) => [i.userId, queueTokenRecord.encode(i.jti, i.seq), i.seq, i.now, i.activeUntil],
  (r) => ({ code: ScriptCode.Ok as const, restored: r[1] === 1 }));

// ---- scheduled sale (pre-queue and draw) -----------------------------------------------------

export type PollPrequeueReply =
  | { code: ScriptCode.Prequeued }
  | { code: ScriptCode.Ok; seq: number }
  | { code: ScriptCode.UnknownToken | ScriptCode.PlaceLost };

export const pollPrequeue = defineScript('pollPrequeue',
  (i: QueueUserInput & { graceMs: number }) => [keys.prequeue(i.concertId), keys.queueTokens(i.concertId), keys.queueMeta(i.concertId)],
  (i) => [i.userId, i.jti, i.now, i.graceMs],
  (r): PollPrequeueReply => code(r) === ScriptCode.Ok
    ? { code: ScriptCode.Ok, seq: Number(r[1]) }
    : { code: code(r) as ScriptCode.Prequeued | ScriptCode.UnknownToken | ScriptCode.PlaceLost });

export interface ApplyDrawInput {
  concertId: number; now: number;
  /** The draw's last entry number. */
  lastSeq: number;
  places: readonly { userId: number; jti: string; seq: number }[];
}

export type ApplyDrawReply = { code: ScriptCode.Ok; applied: number } | { code: ScriptCode.NoQueue };

export const applyDraw = defineScript('applyDraw',
  (i: ApplyDrawInput) => [keys.queueMeta(i.concertId), keys.line(i.concertId), keys.queueTokens(i.concertId), keys.prequeue(i.concertId)],
  (i) => {
    const args: (string | number)[] = [i.now, i.lastSeq];
    for (const p of i.places) args.push(p.userId, p.jti, p.seq);
    return args;
  },
  (r): ApplyDrawReply => code(r) === ScriptCode.NoQueue ? { code: ScriptCode.NoQueue } : { code: ScriptCode.Ok, applied: Number(r[1]) });

// ---- user tokens -----------------------------------------------------------------------------

export interface IssueTokenInput { userId: number; jti: string; now: number; ttlMs: number; limit: number }

export const issueToken = defineScript('issueToken',
  (i: IssueTokenInput) => [keys.userToken(i.jti), keys.liveUserTokens(i.jti)],
  (i) => [i.userId, i.jti, i.now, i.ttlMs, i.limit],
  (r) => ({ code: ScriptCode.Ok as const, stored: r[1] === 1, liveCount: Number(r[2]) }));

// ---- holds -----------------------------------------------------------------------------------

export interface HoldSeatInput {
  concertId: number; scheduleId: number; seatNumber: number; reservationId: string;
  userId: number; jti: string; now: number; ttlMs: number; maxHolds: number; maxTickets: number;
  /** Keep the catalog keys until (ms). */
  catalogUntil: number;
  /** Keep the reservation record this long after its hold's expiry (ms). */
  recordRetainMs: number;
}

export type HoldSeatFailure = ScriptCode.UnknownToken | ScriptCode.NotAdmitted | ScriptCode.NotFound | ScriptCode.SeatUnavailable
  | ScriptCode.HoldLimit | ScriptCode.ShowStarted | ScriptCode.TicketLimit;

export type HoldSeatReply =
  | { code: ScriptCode.Ok; price: number; expiresAt: number; reservationId: string; created: boolean }
  /** what: 'schedule' | 'seat' with NotFound. */
  | { code: HoldSeatFailure; what: string | null };

export const holdSeat = defineScript('holdSeat',
  (i: HoldSeatInput) => {
    const c = i.concertId;
    return [
      keys.queueTokens(c), keys.active(c), keys.schedule(c, i.scheduleId), keys.seats(c, i.scheduleId),
      keys.sold(c, i.scheduleId), keys.holds(c, i.scheduleId), keys.hold(c, i.scheduleId, i.seatNumber),
      keys.userHolds(c, i.userId), keys.reservation(c, i.reservationId), keys.stream(c), keys.userPaid(c, i.userId),
    ];
  },
  (i) => [i.userId, i.jti, i.now, i.scheduleId, i.seatNumber, i.reservationId, i.ttlMs, i.maxHolds, i.catalogUntil,
    i.recordRetainMs, i.maxTickets],
  (r): HoldSeatReply => code(r) !== ScriptCode.Ok
    ? { code: code(r) as HoldSeatFailure, what: r[1] == null ? null : String(r[1]) }
    : { code: ScriptCode.Ok, price: Number(r[1]), expiresAt: Number(r[2]), reservationId: String(r[3]), created: Number(r[4]) === 1 });

export interface ReleaseHoldInput { concertId: number; scheduleId: number; seatNumber: number; reservationId: string; userId: number; now: number }

export type ReleaseHoldReply = {
  code: ScriptCode.Ok | ScriptCode.NotFound | ScriptCode.Forbidden | ScriptCode.AlreadyPaid | ScriptCode.HoldExpired;
};

export const releaseHold = defineScript('releaseHold',
  (i: ReleaseHoldInput) => [
    keys.reservation(i.concertId, i.reservationId), keys.hold(i.concertId, i.scheduleId, i.seatNumber),
    keys.holds(i.concertId, i.scheduleId), keys.userHolds(i.concertId, i.userId), keys.stream(i.concertId),
  ],
  (i) => [i.userId, i.reservationId, i.now],
  (r): ReleaseHoldReply => ({ code: code(r) as ReleaseHoldReply['code'] }));

export interface MarkSoldInput {
  concertId: number; scheduleId: number; seatNumber: number; reservationId: string; userId: number; now: number;
  /** Entry number of the queue token that paid. */
  seq: number;
  /** Keep the catalog keys until (ms). */
  catalogUntil: number;
  /** SQL found no live hold of the buyer left in the concert: the place may end. */
  placeMayEnd: boolean;
}

export const markSold = defineScript('markSold',
  (i: MarkSoldInput) => {
    const c = i.concertId;
    return [
      keys.sold(c, i.scheduleId), keys.hold(c, i.scheduleId, i.seatNumber), keys.holds(c, i.scheduleId),
      keys.userHolds(c, i.userId), keys.reservation(c, i.reservationId), keys.seats(c, i.scheduleId),
      keys.schedule(c, i.scheduleId), keys.active(c), keys.queueTokens(c), keys.stream(c), keys.userPaid(c, i.userId),
    ];
  },
  (i) => [i.seatNumber, i.reservationId, i.userId, i.now, i.seq, i.catalogUntil, i.placeMayEnd ? 1 : 0],
  (r) => ({ code: ScriptCode.Ok as const, soldOut: r[1] === 1 }));

/** Every wrapper by script name: the type makes a missing or extra wrapper a compile error. */
export const scriptCalls: { readonly [N in ScriptName]: ScriptCall<never, unknown, unknown> } = {
  admitNext, applyDraw, checkQueueToken, holdSeat, issueToken, joinQueue, leaveQueue, markSold, peekAdmissions,
  pollPrequeue, pollQueue, raiseSeqCeiling, releaseHold, restorePlace,
};
