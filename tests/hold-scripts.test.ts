/**
 * The hold and sale scripts against a real redis-server, called the way the service calls them
 * (the typed wrappers of script-calls.ts, whose `raw` form returns the reply tuple). Every test
 * owns a concert id, so its keys are its own.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { ScriptCode } from '../src/redis/codes.ts';
import { queueTokenRecord } from '../src/redis/codecs.ts';
import { keys } from '../src/redis/keys.ts';
import * as call from '../src/redis/script-calls.ts';
import { useScratchRedis } from './helpers/redis.ts';

const scratch = useScratchRedis();

const T0 = Date.now() + 3_600_000;
const TTL = 60_000;
const RETAIN = 86_400_000;
const S = 7; // schedule id
const CATALOG_UNTIL = T0 + 10 * 86_400_000;
let nextConcert = 500;

/** A concert as loadConcert leaves it: one schedule of `seats` seats at `price`, user 1 admitted with jti `j1`. */
async function concert(opts: { seats?: number; price?: number; date?: number } = {}) {
  const c = nextConcert++;
  const seats = opts.seats ?? 5;
  await scratch.redis.hset(keys.schedule(c, S), { id: S, date: opts.date ?? T0 + 86_400_000, capacity: seats, price: opts.price ?? 900 });
  await scratch.redis.hset(keys.seats(c, S), Object.fromEntries(Array.from({ length: seats }, (_, i) => [i + 1, opts.price ?? 900])));
  await admitUser(c, 1, 'j1', 3);
  return c;
}
async function admitUser(c: number, user: number, jti: string, seq: number, activeUntil = T0 + 600_000) {
  await scratch.redis.hset(keys.queueTokens(c), user, queueTokenRecord.encode(jti, seq));
  await scratch.redis.zadd(keys.active(c), activeUntil, user);
}

const holdSeat = (c: number, o: { user?: number; jti?: string; now?: number; seat?: number; rid?: string; max?: number; tickets?: number; schedule?: number } = {}) => {
  const user = o.user ?? 1;
  const s = o.schedule ?? S;
  const seat = o.seat ?? 1;
  const rid = o.rid ?? `${c}-r${Math.random().toString(36).slice(2)}`;
  return call.holdSeat.raw(scratch.redis, {
    concertId: c, scheduleId: s, seatNumber: seat, reservationId: rid, userId: user, jti: o.jti ?? 'j1', now: o.now ?? T0,
    ttlMs: TTL, maxHolds: o.max ?? 4, maxTickets: o.tickets ?? 100, catalogUntil: CATALOG_UNTIL, recordRetainMs: RETAIN,
  });
};
/** `user` is the caller; the script answers 9 for someone else's reservation before it reads that caller's keys. */
const releaseHold = (c: number, rid: string, o: { user?: number; seat?: number; now?: number } = {}) =>
  call.releaseHold.raw(scratch.redis, {
    concertId: c, scheduleId: S, seatNumber: o.seat ?? 1, reservationId: rid, userId: o.user ?? 1, now: o.now ?? T0,
  });
const markSold = (c: number, rid: string, o: { user?: number; seat?: number; seq?: number; now?: number; end?: boolean } = {}) =>
  call.markSold.raw(scratch.redis, {
    concertId: c, scheduleId: S, seatNumber: o.seat ?? 1, reservationId: rid, userId: o.user ?? 1, now: o.now ?? T0,
    seq: o.seq ?? 3, catalogUntil: CATALOG_UNTIL, placeMayEnd: o.end !== false,
  });

async function events(c: number): Promise<Record<string, string>[]> {
  return (await scratch.redis.xrange(keys.stream(c), '-', '+')).map(([, f]) => {
    const ev: Record<string, string> = {};
    for (let i = 0; i < f.length; i += 2) ev[f[i]!] = f[i + 1]!;
    return ev;
  });
}

describe('holdSeat', () => {
  test('takes the seat: hold key with its expiry, holds zsets, reservation record, one stream entry', async () => {
    const c = await concert({ price: 1234 });
    expect(await holdSeat(c, { seat: 2, rid: `${c}-a` })).toEqual([0, 1234, T0 + TTL, `${c}-a`, 1]);
    expect(await scratch.redis.get(keys.hold(c, S, 2))).toBe(`${c}-a|1`);
    expect(await scratch.redis.pexpiretime(keys.hold(c, S, 2))).toBe(T0 + TTL);
    expect(await scratch.redis.zscore(keys.holds(c, S), 2)).toBe(String(T0 + TTL));
    expect(await scratch.redis.pexpiretime(keys.holds(c, S))).toBe(CATALOG_UNTIL);
    expect(await scratch.redis.zscore(keys.userHolds(c, 1), `${c}-a`)).toBe(String(T0 + TTL));
    expect(await scratch.redis.hgetall(keys.reservation(c, `${c}-a`))).toEqual({ u: '1', sc: String(S), n: '2', p: '1234', x: String(T0 + TTL), st: 'held' });
    expect(await scratch.redis.pexpiretime(keys.reservation(c, `${c}-a`))).toBe(T0 + TTL + RETAIN);
    expect(await events(c)).toEqual([
      { e: 'hold', r: `${c}-a`, u: '1', sc: String(S), n: '2', p: '1234', x: String(T0 + TTL), t: String(T0) },
    ]);
  });

  test('the queue token must be current and admitted', async () => {
    const c = await concert();
    expect((await holdSeat(c, { user: 2 }))[0]).toBe(ScriptCode.UnknownToken);
    expect((await holdSeat(c, { jti: 'old' }))[0]).toBe(ScriptCode.UnknownToken);
    await admitUser(c, 2, 'j2', 4, T0);
    expect((await holdSeat(c, { user: 2, jti: 'j2' }))[0]).toBe(ScriptCode.NotAdmitted);
    await scratch.redis.hset(keys.queueTokens(c), 3, queueTokenRecord.encode('j3', 5));
    expect((await holdSeat(c, { user: 3, jti: 'j3' }))[0]).toBe(ScriptCode.NotAdmitted);
    expect(await scratch.redis.xlen(keys.stream(c))).toBe(0);
  });

  test('unknown schedule or seat is NotFound, saying which', async () => {
    const c = await concert({ seats: 3 });
    expect(await holdSeat(c, { schedule: 99 })).toEqual([ScriptCode.NotFound, 'schedule']);
    expect(await holdSeat(c, { seat: 4 })).toEqual([ScriptCode.NotFound, 'seat']);
  });

  test('sold, or held until after now, is SeatUnavailable; a lapsed hold or a vanished hold key is not', async () => {
    const c = await concert();
    await scratch.redis.sadd(keys.sold(c, S), 1);
    expect((await holdSeat(c, { seat: 1 }))[0]).toBe(ScriptCode.SeatUnavailable);
    expect((await holdSeat(c, { seat: 2, rid: 'first' }))[0]).toBe(ScriptCode.Ok);
    await admitUser(c, 2, 'j2', 4);
    expect((await holdSeat(c, { seat: 2, user: 2, jti: 'j2', now: T0 + TTL - 1 }))[0]).toBe(ScriptCode.SeatUnavailable);
    expect((await holdSeat(c, { seat: 2, user: 2, jti: 'j2', now: T0 + TTL, rid: 'second' }))[0]).toBe(ScriptCode.Ok);
    expect(await scratch.redis.get(keys.hold(c, S, 2))).toBe('second|2');
    // The hold key is the truth: without it the seat is free whatever the zset says.
    expect((await holdSeat(c, { seat: 3, rid: 'third' }))[0]).toBe(ScriptCode.Ok);
    await scratch.redis.del(keys.hold(c, S, 3));
    expect((await holdSeat(c, { seat: 3, user: 2, jti: 'j2' }))[0]).toBe(ScriptCode.Ok);
  });

  test('a user holds at most max live seats; lapsed ones are pruned', async () => {
    const c = await concert();
    expect((await holdSeat(c, { seat: 1, max: 2 }))[0]).toBe(ScriptCode.Ok);
    expect((await holdSeat(c, { seat: 2, max: 2, now: T0 + 10 }))[0]).toBe(ScriptCode.Ok);
    expect((await holdSeat(c, { seat: 3, max: 2, now: T0 + 20 }))[0]).toBe(ScriptCode.HoldLimit);
    expect((await holdSeat(c, { seat: 3, max: 2, now: T0 + TTL }))[0]).toBe(ScriptCode.Ok);
    expect(await scratch.redis.zcard(keys.userHolds(c, 1))).toBe(2);
  });

  test('a seat the user already holds live answers that hold unchanged (created 0); someone else\'s is SeatUnavailable', async () => {
    const c = await concert({ price: 700 });
    expect(await holdSeat(c, { seat: 2, rid: 'mine' })).toEqual([0, 700, T0 + TTL, 'mine', 1]);
    // Later, with a new reservation id: the first hold comes back, its expiry unchanged, and nothing is written.
    expect(await holdSeat(c, { seat: 2, rid: 'retry', now: T0 + 5_000 })).toEqual([0, 700, T0 + TTL, 'mine', 0]);
    expect(await scratch.redis.exists(keys.reservation(c, 'retry'))).toBe(0);
    expect(await scratch.redis.zcard(keys.userHolds(c, 1))).toBe(1);
    expect(await scratch.redis.xlen(keys.stream(c))).toBe(1);
    await admitUser(c, 2, 'j2', 4);
    expect((await holdSeat(c, { seat: 2, user: 2, jti: 'j2' }))[0]).toBe(ScriptCode.SeatUnavailable);
    // Once it has lapsed it is an ordinary new hold again.
    expect(await holdSeat(c, { seat: 2, rid: 'again', now: T0 + TTL })).toEqual([0, 700, T0 + 2 * TTL, 'again', 1]);
  });

  test('live holds plus paid seats of the concert stay within the ticket limit; the own-hold answer needs no room', async () => {
    const c = await concert();
    await scratch.redis.sadd(keys.userPaid(c, 1), 'paid-a', 'paid-b');
    expect((await holdSeat(c, { seat: 1, rid: 'h1', tickets: 3 }))[0]).toBe(ScriptCode.Ok);
    expect((await holdSeat(c, { seat: 2, tickets: 3 }))[0]).toBe(ScriptCode.TicketLimit);
    expect((await holdSeat(c, { seat: 1, tickets: 3 }))[4]).toBe(0);
    // The hold limit is judged first; a lapsed hold frees its ticket.
    expect((await holdSeat(c, { seat: 2, tickets: 3, max: 1 }))[0]).toBe(ScriptCode.HoldLimit);
    expect((await holdSeat(c, { seat: 2, tickets: 3, now: T0 + TTL }))[0]).toBe(ScriptCode.Ok);
    expect(await scratch.redis.xlen(keys.stream(c))).toBe(2);
  });

  test('a started show takes no holds; a sold-out schedule without seat keys refuses seats in range', async () => {
    const past = await concert({ date: T0 - 1 });
    expect((await holdSeat(past))[0]).toBe(ScriptCode.ShowStarted);
    const c = await concert({ seats: 2 });
    await scratch.redis.del(keys.seats(c, S));
    expect((await holdSeat(c, { seat: 2 }))[0]).toBe(ScriptCode.SeatUnavailable);
    expect(await holdSeat(c, { seat: 3 })).toEqual([ScriptCode.NotFound, 'seat']);
  });
});

describe('releaseHold', () => {
  test('frees a live hold at once and tells SQL', async () => {
    const c = await concert();
    await holdSeat(c, { rid: 'r1', seat: 1 });
    expect(await releaseHold(c, 'r1', { now: T0 + 5 })).toEqual([ScriptCode.Ok]);
    expect(await scratch.redis.exists(keys.hold(c, S, 1))).toBe(0);
    expect(await scratch.redis.zscore(keys.holds(c, S), 1)).toBeNull();
    expect(await scratch.redis.zscore(keys.userHolds(c, 1), 'r1')).toBeNull();
    expect(await scratch.redis.hget(keys.reservation(c, 'r1'), 'st')).toBe('released');
    expect((await events(c))[1]).toEqual({ e: 'release', r: 'r1', u: '1', sc: String(S), n: '1', p: '900', x: String(T0 + TTL), t: String(T0 + 5) });
    expect(await releaseHold(c, 'r1')).toEqual([ScriptCode.HoldExpired]);
  });

  test('unknown, someone else\'s, paid, lapsed, or a hold key that is not its own', async () => {
    const c = await concert();
    expect(await releaseHold(c, 'nope')).toEqual([ScriptCode.NotFound]);
    await holdSeat(c, { rid: 'r1' });
    expect(await releaseHold(c, 'r1', { user: 2 })).toEqual([ScriptCode.Forbidden]);
    expect(await releaseHold(c, 'r1', { now: T0 + TTL })).toEqual([ScriptCode.HoldExpired]);
    await scratch.redis.set(keys.hold(c, S, 1), 'other|2');
    expect(await releaseHold(c, 'r1')).toEqual([ScriptCode.HoldExpired]);
    expect(await scratch.redis.get(keys.hold(c, S, 1))).toBe('other|2');
    await scratch.redis.hset(keys.reservation(c, 'r1'), 'st', 'paid');
    expect(await releaseHold(c, 'r1')).toEqual([ScriptCode.AlreadyPaid]);
    expect(await scratch.redis.xlen(keys.stream(c))).toBe(1);
  });
});

describe('markSold', () => {
  test('sold for good: hold gone, record paid, the buyer\'s place ended and its slot free', async () => {
    const c = await concert();
    await holdSeat(c, { rid: 'r1', seat: 4 });
    expect(await markSold(c, 'r1', { seat: 4, seq: 3, now: T0 + 9 })).toEqual([ScriptCode.Ok, 0]);
    expect(await scratch.redis.smembers(keys.sold(c, S))).toEqual(['4']);
    expect(await scratch.redis.pexpiretime(keys.sold(c, S))).toBe(CATALOG_UNTIL);
    expect(await scratch.redis.exists(keys.hold(c, S, 4))).toBe(0);
    expect(await scratch.redis.zscore(keys.holds(c, S), 4)).toBeNull();
    expect(await scratch.redis.zcard(keys.userHolds(c, 1))).toBe(0);
    expect(await scratch.redis.hget(keys.reservation(c, 'r1'), 'st')).toBe('paid');
    expect(await scratch.redis.zscore(keys.active(c), 1)).toBeNull();
    expect(await scratch.redis.hexists(keys.queueTokens(c), '1')).toBe(0);
    expect((await events(c))[1]).toEqual({ e: 'done', u: '1', s: '3', t: String(T0 + 9) });
    expect(await scratch.redis.smembers(keys.userPaid(c, 1))).toEqual(['r1']);
    expect(await scratch.redis.pexpiretime(keys.userPaid(c, 1))).toBe(CATALOG_UNTIL);
    // Mirroring the same sale again changes nothing more.
    expect(await markSold(c, 'r1', { seat: 4, seq: 3 })).toEqual([ScriptCode.Ok, 0]);
    expect(await scratch.redis.xlen(keys.stream(c))).toBe(2);
    expect(await scratch.redis.scard(keys.userPaid(c, 1))).toBe(1);
  });

  test('the place stays while SQL says a live hold is left, or Redis has one; it ends with the last', async () => {
    const c = await concert();
    await holdSeat(c, { rid: 'r1', seat: 1 });
    await holdSeat(c, { rid: 'r2', seat: 2 });
    await holdSeat(c, { rid: 'r3', seat: 3 });
    await markSold(c, 'r1', { seat: 1, end: false });
    expect(queueTokenRecord.decode((await scratch.redis.hgetBuffer(keys.queueTokens(c), '1'))!)).toEqual({ jti: 'j1', seq: 3 });
    // SQL saw no hold left, but Redis still has r3 (taken after SQL counted): the place stays.
    await markSold(c, 'r2', { seat: 2, end: true });
    expect(await scratch.redis.zscore(keys.active(c), 1)).not.toBeNull();
    await markSold(c, 'r3', { seat: 3, end: true, now: T0 + 7 });
    expect(await scratch.redis.hexists(keys.queueTokens(c), '1')).toBe(0);
    expect(await scratch.redis.zscore(keys.active(c), 1)).toBeNull();
    expect((await events(c)).map((e) => e.e)).toEqual(['hold', 'hold', 'hold', 'done']);
    expect((await scratch.redis.smembers(keys.userPaid(c, 1))).sort()).toEqual(['r1', 'r2', 'r3']);
  });

  test('a newer place of the same user is left alone', async () => {
    const c = await concert();
    await holdSeat(c, { rid: 'r1' });
    await admitUser(c, 1, 'j9', 8);
    await markSold(c, 'r1', { seq: 3 });
    expect(queueTokenRecord.decode((await scratch.redis.hgetBuffer(keys.queueTokens(c), '1'))!)).toEqual({ jti: 'j9', seq: 8 });
    expect(await scratch.redis.zscore(keys.active(c), 1)).not.toBeNull();
    expect((await events(c)).map((e) => e.e)).toEqual(['hold']);
  });

  test('the last seat sold drops the schedule\'s seat keys and keeps its schedule and sold set', async () => {
    const c = await concert({ seats: 2 });
    await holdSeat(c, { rid: 'r1', seat: 1 });
    await holdSeat(c, { rid: 'r2', seat: 2 });
    expect(await markSold(c, 'r1', { seat: 1 })).toEqual([ScriptCode.Ok, 0]);
    expect(await markSold(c, 'r2', { seat: 2 })).toEqual([ScriptCode.Ok, 1]);
    expect(await scratch.redis.exists(keys.seats(c, S), keys.holds(c, S))).toBe(0);
    expect(await scratch.redis.scard(keys.sold(c, S))).toBe(2);
    expect(await scratch.redis.hget(keys.schedule(c, S), 'capacity')).toBe('2');
  });
});
