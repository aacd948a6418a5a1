/**
 * The codec module reads what the Lua scripts write and writes what they read: each format is
 * checked against a real redis-server, through the typed script wrappers.
 */
import { describe, expect, test } from 'bun:test';
import {
  decodeReservationHash, decodeStreamEvent, decodeStreamFields, encodeQueueEvent, encodeReservationHash, prequeueRecord,
  queueTokenRecord, seatHoldValue, type QueueStreamEvent,
} from '../src/redis/codecs.ts';
import { ScriptCode } from '../src/redis/codes.ts';
import { keys } from '../src/redis/keys.ts';
import * as call from '../src/redis/script-calls.ts';
import { useScratchRedis } from './helpers/redis.ts';
import { newQueueTokenId } from '../src/modules/tokens/token-slots.ts';

const scratch = useScratchRedis();

const T0 = Date.now() + 3_600_000;
const S = 3;
let nextConcert = 900;

async function streamEvents(c: number) {
  return (await scratch.redis.xrange(keys.stream(c), '-', '+')).map(([, f]) => decodeStreamEvent(decodeStreamFields(f)));
}

describe('codecs against the scripts', () => {
  test('queue token record and queue events: what joinQueue and admitNext write', async () => {
    const c = nextConcert++;
    await scratch.redis.hset(keys.queueMeta(c), { lastSeq: 0, seqCeiling: 100, maxActive: 10, admitPerSecond: 100, activeTtl: 60, paused: 0 });
    await call.joinQueue(scratch.redis, { concertId: c, userId: 42, jti: 'jA', now: T0, graceMs: 10_000 });
    expect(queueTokenRecord.decode((await scratch.redis.hgetBuffer(keys.queueTokens(c), '42'))!)).toEqual({ jti: 'jA', seq: 1 });
    // A record the codec writes is one the scripts accept.
    await scratch.redis.hset(keys.queueTokens(c), '42', queueTokenRecord.encode('jB', 1));
    expect((await call.checkQueueToken(scratch.redis, { concertId: c, userId: 42, jti: 'jB', now: T0 })).code).toBe(ScriptCode.NotAdmitted);
    await call.admitNext(scratch.redis, {
      concertId: c, now: T0 + 10, tickId: 1, graceMs: 10_000, tickMs: 1000, maxScan: 100, maxExpire: 100,
      eta: { windowMs: 60_000, gapTicks: 5, ageBuckets: 4 },
    });
    expect(await streamEvents(c)).toEqual([
      { event: 'join', userId: 42, seq: 1, time: T0, activeUntil: null },
      { event: 'admit', userId: 42, seq: 1, time: T0 + 10, activeUntil: T0 + 10 + 60_000 },
    ]);
    expect(decodeStreamEvent(encodeQueueEvent({ event: 'admit', userId: 42, seq: 1, time: T0 + 10, activeUntil: T0 + 60_010 })))
      .toEqual({ event: 'admit', userId: 42, seq: 1, time: T0 + 10, activeUntil: T0 + 60_010 });
  });

  test("a join's stream entry carries its queue token's record; a place kept under a new token says so ('token')", async () => {
    const c = nextConcert++;
    await scratch.redis.hset(keys.queueMeta(c), { lastSeq: 0, seqCeiling: 100, maxActive: 10, admitPerSecond: 100, activeTtl: 60, paused: 0 });
    const first = { issuedAt: T0 - 5, expiresAt: T0 + 600_000, srcJti: 'user-token-1', replacesSrc: true };
    await call.joinQueue(scratch.redis, { concertId: c, userId: 42, jti: 'qA', now: T0, graceMs: 10_000, token: first });
    // A copy of the same join (same id) writes nothing more.
    await call.joinQueue(scratch.redis, { concertId: c, userId: 42, jti: 'qA', now: T0 + 1, graceMs: 10_000, token: first });
    // A join made with another token while the place lives: the place goes to the new id.
    const second = { issuedAt: T0 + 2, expiresAt: T0 + 600_002, srcJti: 'user-token-2', replacesSrc: false };
    await call.joinQueue(scratch.redis, { concertId: c, userId: 42, jti: 'qB', now: T0 + 2, graceMs: 10_000, token: second });
    // A caller that records the token itself passes no record.
    await call.joinQueue(scratch.redis, { concertId: c, userId: 43, jti: 'qC', now: T0 + 3, graceMs: 10_000 });
    const events = await streamEvents(c);
    expect(events).toEqual([
      { event: 'join', userId: 42, seq: 1, time: T0, activeUntil: null,
        token: { jti: 'qA', issuedAt: T0 - 5, expiresAt: T0 + 600_000, srcJti: 'user-token-1', replacesSrc: true, replacedJti: null } },
      { event: 'token', userId: 42, seq: 1, time: T0 + 2, activeUntil: null,
        token: { jti: 'qB', issuedAt: T0 + 2, expiresAt: T0 + 600_002, srcJti: 'user-token-2', replacesSrc: false, replacedJti: 'qA' } },
      { event: 'join', userId: 43, seq: 2, time: T0 + 3, activeUntil: null },
    ]);
    for (const e of events) expect(decodeStreamEvent(encodeQueueEvent(e as QueueStreamEvent))).toEqual(e);
  });

  test('queue token record: 14 bytes for an id the service issues, a uuid of before kept as well; the scripts agree', async () => {
    const issued = newQueueTokenId();
    expect(issued).toMatch(/^[A-Za-z0-9_-]{10}$/);
    expect(queueTokenRecord.encode(issued, 4_000_000_000).length).toBe(14);
    for (const jti of [issued, '0df5a4ac-8444-4216-b6d3-ab059eb313da', 'j1', 'ü'.repeat(5)]) {
      expect(queueTokenRecord.decode(queueTokenRecord.encode(jti, 77))).toEqual({ jti, seq: 77 });
    }
    // joinQueue hands back the replaced id, whatever its length; polls compare the whole id.
    const c = nextConcert++;
    await scratch.redis.hset(keys.queueMeta(c), { lastSeq: 0, seqCeiling: 100, maxActive: 10, admitPerSecond: 100, activeTtl: 60, paused: 0 });
    const uuid = '0df5a4ac-8444-4216-b6d3-ab059eb313da';
    const second = newQueueTokenId();
    await call.joinQueue(scratch.redis, { concertId: c, userId: 7, jti: issued, now: T0, graceMs: 10_000 });
    const a = await call.joinQueue(scratch.redis, { concertId: c, userId: 7, jti: uuid, now: T0 + 1, graceMs: 10_000 });
    const b = await call.joinQueue(scratch.redis, { concertId: c, userId: 7, jti: second, now: T0 + 2, graceMs: 10_000 });
    expect(a.code === ScriptCode.Ok && a.replacedJti).toBe(issued);
    expect(b.code === ScriptCode.Ok && b.replacedJti).toBe(uuid);
    expect(queueTokenRecord.decode((await scratch.redis.hgetBuffer(keys.queueTokens(c), '7'))!)).toEqual({ jti: second, seq: 1 });
    const poll = (jti: string) => call.pollQueue(scratch.redis, { concertId: c, userId: 7, jti, now: T0 + 3, graceMs: 10_000 });
    expect((await poll(second)).code).toBe(ScriptCode.Ok);
    for (const other of [issued, uuid, second.slice(0, 9), `${second}x`]) expect((await poll(other)).code).toBe(ScriptCode.UnknownToken);
  });

  test('seat hold value, reservation hash and hold events: what holdSeat and releaseHold write', async () => {
    const c = nextConcert++;
    await scratch.redis.hset(keys.schedule(c, S), { id: S, date: T0 + 86_400_000, capacity: 2, price: 700 });
    await scratch.redis.hset(keys.seats(c, S), { 1: 700, 2: 700 });
    await scratch.redis.hset(keys.queueTokens(c), '5', queueTokenRecord.encode('j5', 9));
    await scratch.redis.zadd(keys.active(c), T0 + 600_000, '5');
    const held = await call.holdSeat(scratch.redis, {
      concertId: c, scheduleId: S, seatNumber: 2, reservationId: `${c}-r`, userId: 5, jti: 'j5', now: T0, ttlMs: 60_000,
      maxHolds: 4, maxTickets: 10, catalogUntil: T0 + 86_400_000, recordRetainMs: 1000,
    });
    expect(held).toEqual({ code: ScriptCode.Ok, price: 700, expiresAt: T0 + 60_000, reservationId: `${c}-r`, created: true });
    expect(seatHoldValue.decode((await scratch.redis.get(keys.hold(c, S, 2)))!)).toEqual({ reservationId: `${c}-r`, userId: 5 });
    const hash = await scratch.redis.hgetall(keys.reservation(c, `${c}-r`));
    const record = { userId: 5, scheduleId: S, seatNumber: 2, price: 700, expiresAt: T0 + 60_000, status: 'held' };
    expect(decodeReservationHash(hash)).toEqual(record);
    expect(Object.fromEntries(Object.entries(encodeReservationHash(record)).map(([k, v]) => [k, String(v)]))).toEqual(hash);
    expect(await call.releaseHold(scratch.redis, { concertId: c, scheduleId: S, seatNumber: 2, reservationId: `${c}-r`, userId: 5, now: T0 + 1 }))
      .toEqual({ code: ScriptCode.Ok });
    const hold = { reservationId: `${c}-r`, userId: 5, scheduleId: S, seatNumber: 2, price: 700, expiresAt: T0 + 60_000 };
    expect(await streamEvents(c)).toEqual([{ event: 'hold', ...hold, time: T0 }, { event: 'release', ...hold, time: T0 + 1 }]);
    expect(decodeReservationHash({})).toBeNull();
  });

  test('pre-queue record: what pollPrequeue reads and writes', async () => {
    const c = nextConcert++;
    await scratch.redis.hset(keys.prequeue(c), '8', prequeueRecord.encode('p8', T0));
    expect(await call.pollPrequeue(scratch.redis, { concertId: c, userId: 8, jti: 'p8', now: T0 + 5, graceMs: 10_000 })).toEqual({ code: ScriptCode.Prequeued });
    expect(prequeueRecord.decode((await scratch.redis.hget(keys.prequeue(c), '8'))!)).toEqual({ jti: 'p8', seenMs: T0 + 5 });
  });

  test('an event name this version does not know decodes to null', () => {
    expect(decodeStreamEvent({ e: 'future', u: '1' })).toBeNull();
  });
});
