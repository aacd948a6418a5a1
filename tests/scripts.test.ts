/**
 * Each Lua script against a real redis-server, called the way the service calls it
 * (the typed wrappers of script-calls.ts, whose `raw` form returns the reply tuple). Every test owns a
 * concert id, so its keys are its own.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { keys } from '../src/redis/keys.ts';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SCRIPT_KEY_COUNTS, scriptFileMismatches, scripts, spliceIncludes } from '../src/redis/scripts.ts';
import * as call from '../src/redis/script-calls.ts';
import { ScriptCode } from '../src/redis/codes.ts';
import { queueTokenRecord } from '../src/redis/codecs.ts';
import { readLine } from '../src/modules/queue/line.ts';
import { useScratchRedis } from './helpers/redis.ts';
import { ETA_AGE_BUCKETS, ETA_GAP_TICKS, ETA_WINDOW_MS, meanHoldSeconds, type EtaState } from '../src/modules/queue/eta.ts';

const scratch = useScratchRedis();

let nextConcert = 1;
const GRACE = 10_000;
const T0 = 1_800_000_000_000;

interface Meta { maxActive?: number; admitPerSecond?: number; activeTtl?: number; paused?: 0 | 1;
  /** A scheduled sale: its opening (ms), whether its draw is all in the line, and the line as the load left it. */
  saleAt?: number; drawn?: 0 | 1; lineHead?: number; waiting?: number; lastSeq?: number; seqCeiling?: number }

/** A concert whose queue is loaded, as loadConcert leaves it, with entry numbers 1–1000 reserved. */
async function concert(meta: Meta = {}): Promise<number> {
  const c = nextConcert++;
  await scratch.redis.hset(keys.queueMeta(c), {
    lastSeq: 0, lastAdmitted: 0, admittedTotal: 0, lastTick: 0, rate: 0, credit: 0,
    maxActive: 1000, admitPerSecond: 100, activeTtl: 600, paused: 0, seqCeiling: 1000, ...meta,
  });
  return c;
}

const joinQueue = (c: number, user: number, jti: string, now: number, grace = GRACE) =>
  call.joinQueue.raw(scratch.redis, { concertId: c, userId: user, jti, now, graceMs: grace });
/** pollQueue's reply as a tuple: the packed string of a place split into its fields (numbers, then the two estimate strings). */
const pollQueue = async (c: number, user: number, jti: string, now: number, grace = GRACE) => {
  const r = await call.pollQueue.raw(scratch.redis, { concertId: c, userId: user, jti, now, graceMs: grace });
  return typeof r === 'string' ? r.split(' ').map((f, i) => (i < 11 ? Number(f) : f)) : r;
};
const leaveQueue = (c: number, user: number, jti: string, now: number, event: 'leave' | 'done' = 'leave') =>
  call.leaveQueue.raw(scratch.redis, { concertId: c, userId: user, jti, now, event });
const checkToken = (c: number, user: number, jti: string, now: number) =>
  call.checkQueueToken.raw(scratch.redis, { concertId: c, userId: user, jti, now });
const admitNext = (c: number, now: number, tick: number, o: { grace?: number; tickMs?: number; maxScan?: number; maxExpire?: number } = {}) =>
  call.admitNext.raw(scratch.redis, {
    concertId: c, now, tickId: tick, graceMs: o.grace ?? GRACE, tickMs: o.tickMs ?? 1000, maxScan: o.maxScan ?? 5000,
    maxExpire: o.maxExpire ?? 1000, eta: { windowMs: ETA_WINDOW_MS, gapTicks: ETA_GAP_TICKS, ageBuckets: ETA_AGE_BUCKETS },
  });

async function events(c: number): Promise<Record<string, string>[]> {
  const entries = await scratch.redis.xrange(keys.stream(c), '-', '+');
  return entries.map(([, f]) => {
    const ev: Record<string, string> = {};
    for (let i = 0; i < f.length; i += 2) ev[f[i]!] = f[i + 1]!;
    return ev;
  });
}
const eventNames = async (c: number) => (await events(c)).map((e) => `${e.e}:${e.u}:${e.s}`);
const activeUsers = async (c: number) => (await scratch.redis.zrange(keys.active(c), '0', '-1')).map(Number);
const waitingUsers = async (c: number) => (await readLine(scratch.redis, c)).map((p) => p.userId);
/** The last poll the line holds for the user, as a string (null when the user has no slot). */
const seenOf = async (c: number, user: number) => {
  const p = (await readLine(scratch.redis, c)).find((x) => x.userId === user);
  return p ? String(p.seenMs) : null;
};
const waitingCount = async (c: number) => Number(await scratch.redis.hget(keys.queueMeta(c), 'waiting'));
/** The queue token hash, decoded by the codec, as user -> "jti:seq". */
const tokenRecords = async (c: number) => Object.fromEntries(Object.entries(await scratch.redis.hgetallBuffer(keys.queueTokens(c)))
  .map(([u, v]) => { const r = queueTokenRecord.decode(v); return [u, `${r.jti}:${r.seq}`]; }));
const tokenRecord = async (c: number, user: number) => (await tokenRecords(c))[user] ?? null;

/** Users 1..n join at T0 + i ms; user u's jti is `j<u>`. */
async function joinAll(c: number, n: number, at = T0) {
  for (let u = 1; u <= n; u++) expect((await joinQueue(c, u, `j${u}`, at + u))[0]).toBe(ScriptCode.Ok);
}

describe('joinQueue', () => {
  test('a new user gets the next entry number, a heartbeat, a token record and a join event', async () => {
    const c = await concert({ admitPerSecond: 7 });
    expect((await joinQueue(c, 42, 'a', T0)).slice(0, 9)).toEqual([0, 1, 0, 0, 0, '', 0, 7, 1]);
    expect((await joinQueue(c, 43, 'b', T0 + 1)).slice(0, 9)).toEqual([0, 2, 0, 0, 0, '', 0, 7, 1]);
    expect(await readLine(scratch.redis, c)).toEqual([{ seq: 1, userId: 42, seenMs: T0 }, { seq: 2, userId: 43, seenMs: T0 + 1 }]);
    expect(await waitingCount(c)).toBe(2);
    expect(await tokenRecords(c)).toEqual({ 42: 'a:1', 43: 'b:2' });
    expect(await scratch.redis.hget(keys.queueMeta(c), 'lastSeq')).toBe('2');
    expect(await events(c)).toEqual([
      { e: 'join', u: '42', s: '1', t: String(T0) },
      { e: 'join', u: '43', s: '2', t: String(T0 + 1) },
    ]);
  });

  test('rejoining keeps the place, returns the replaced jti and refreshes the heartbeat', async () => {
    const c = await concert();
    await joinAll(c, 2);
    const again = await joinQueue(c, 1, 'j1b', T0 + 500);
    expect(again.slice(0, 9)).toEqual([0, 1, 0, 0, 0, 'j1', 0, 100, 0]);
    expect(await tokenRecord(c, 1)).toBe('j1b:1');
    expect(await seenOf(c, 1)).toBe(String(T0 + 500));
    expect(await scratch.redis.hget(keys.queueMeta(c), 'lastSeq')).toBe('2');
    expect(await eventNames(c)).toEqual(['join:1:1', 'join:2:2']);
  });

  test('rejoining while active keeps the active slot', async () => {
    const c = await concert({ activeTtl: 60 });
    await joinAll(c, 1);
    await admitNext(c, T0 + 10, 1);
    const r = await joinQueue(c, 1, 'j1b', T0 + 20);
    expect(r.slice(0, 6)).toEqual([0, 1, 1, 1, T0 + 10 + 60_000, 'j1']);
    expect(r[8]).toBe(0);
  });

  test('a paused queue refuses newcomers (code 4) but hands existing users their place', async () => {
    const c = await concert();
    await joinAll(c, 1);
    await scratch.redis.hset(keys.queueMeta(c), 'paused', 1);
    expect(await joinQueue(c, 2, 'j2', T0 + 10)).toEqual([ScriptCode.QueueClosed]);
    expect((await joinQueue(c, 1, 'j1b', T0 + 10)).slice(0, 3)).toEqual([0, 1, 0]);
    expect(await waitingUsers(c)).toEqual([1]);
  });

  test('no entry number past the reserved ceiling: code 18 with the last number, nothing written; existing places still answered', async () => {
    const c = await concert({ seqCeiling: 2 });
    await joinAll(c, 2);
    expect((await joinQueue(c, 1, 'j1', T0 + 5)).at(-1)).toBe(2);
    const before = await scratch.redis.xlen(keys.stream(c));
    expect(await joinQueue(c, 3, 'j3', T0 + 10)).toEqual([ScriptCode.SeqCeiling, 2]);
    expect(await scratch.redis.hget(keys.queueMeta(c), 'lastSeq')).toBe('2');
    expect(await waitingUsers(c)).toEqual([1, 2]);
    expect(await tokenRecord(c, 3)).toBeNull();
    expect(await scratch.redis.xlen(keys.stream(c))).toBe(before);
    // A place already held needs no new number.
    expect((await joinQueue(c, 2, 'j2b', T0 + 11)).slice(0, 3)).toEqual([0, 2, 0]);
    // A queue loaded without a ceiling (0) gives out nothing until one is raised.
    const bare = await concert({ seqCeiling: 0 });
    expect(await joinQueue(bare, 1, 'x', T0)).toEqual([ScriptCode.SeqCeiling, 0]);
    expect(await call.raiseSeqCeiling.raw(scratch.redis, { concertId: c, ceiling: 3 })).toEqual([0, 3]);
    expect((await joinQueue(c, 3, 'j3', T0 + 12)).slice(0, 2)).toEqual([0, 3]);
    expect(await joinQueue(c, 4, 'j4', T0 + 13)).toEqual([ScriptCode.SeqCeiling, 3]);
  });

  test('raiseSeqCeiling raises, never lowers, and leaves a queue that is not loaded alone', async () => {
    const c = await concert({ seqCeiling: 50 });
    expect(await call.raiseSeqCeiling(scratch.redis, { concertId: c, ceiling: 40 })).toEqual({ code: ScriptCode.Ok, seqCeiling: 50 });
    expect(await call.raiseSeqCeiling(scratch.redis, { concertId: c, ceiling: 150 })).toEqual({ code: ScriptCode.Ok, seqCeiling: 150 });
    expect(await scratch.redis.hget(keys.queueMeta(c), 'seqCeiling')).toBe('150');
    const missing = nextConcert++;
    expect(await call.raiseSeqCeiling(scratch.redis, { concertId: missing, ceiling: 10 })).toEqual({ code: ScriptCode.NoQueue });
    expect(await scratch.redis.exists(keys.queueMeta(missing))).toBe(0);
  });

  test('a queue that is not loaded answers code 11 and writes nothing', async () => {
    const c = nextConcert++;
    expect(await joinQueue(c, 1, 'x', T0)).toEqual([ScriptCode.NoQueue]);
    expect(await scratch.redis.exists(keys.line(c), keys.queueTokens(c), keys.stream(c))).toBe(0);
  });

  test('while the rebuild reloads the concert (loadingUntil ahead) joins and admissions answer code 14 and write nothing', async () => {
    const c = await concert();
    await joinAll(c, 2);
    await scratch.redis.hset(keys.queueMeta(c), 'loadingUntil', T0 + 1000);
    const before = await scratch.redis.xlen(keys.stream(c));
    expect(await joinQueue(c, 3, 'j3', T0 + 10)).toEqual([ScriptCode.Reloading]);
    expect(await admitNext(c, T0 + 20, 1)).toEqual([ScriptCode.Reloading]);
    expect(await waitingUsers(c)).toEqual([1, 2]);
    expect(await scratch.redis.xlen(keys.stream(c))).toBe(before);
    // The deadline passes (a loader that died holds nothing off for longer).
    expect((await joinQueue(c, 3, 'j3', T0 + 1000))[0]).toBe(ScriptCode.Ok);
    expect((await admitNext(c, T0 + 1000, 2))[1]).toBe(3);
  });

  test('after the active time is up, joining again takes a new place that admission does not mistake for the old one', async () => {
    const c = await concert({ activeTtl: 1 });
    await joinAll(c, 1);
    await admitNext(c, T0 + 10, 1);
    const later = T0 + 5000;
    const r = await joinQueue(c, 1, 'j1b', later);
    expect(r.slice(0, 9)).toEqual([0, 2, 0, 1, 0, 'j1', expect.any(Number), 100, 1]);
    expect(await tokenRecord(c, 1)).toBe('j1b:2');
    // The next tick must admit the new place, not expire it as the old active slot.
    const tick = await admitNext(c, later + 10, 2);
    expect(tick[1]).toBe(1);
    expect(await checkToken(c, 1, 'j1b', later + 20)).toEqual([0, 2, later + 10 + 1000]);
    expect(await eventNames(c)).toEqual(['join:1:1', 'admit:1:1', 'expire:1:1', 'join:1:2', 'admit:1:2']);
  });

  test('a waiting user whose heartbeat lapsed gets a new place at the back, not the old one', async () => {
    const c = await concert();
    await joinAll(c, 2);
    await pollQueue(c, 2, 'j2', T0 + GRACE / 2);
    const late = T0 + GRACE + 100;
    const r = await joinQueue(c, 1, 'j1b', late);
    expect(r.slice(0, 3)).toEqual([0, 3, 0]);
    expect(r[8]).toBe(1);
    expect(await waitingUsers(c)).toEqual([2, 1]);
    expect((await readLine(scratch.redis, c)).map((p) => [p.userId, p.seq])).toEqual([[2, 2], [1, 3]]);
    expect(await waitingCount(c)).toBe(2);
    expect(await eventNames(c)).toEqual(['join:1:1', 'join:2:2', 'lapse:1:1', 'join:1:3']);
  });
});

describe('pollQueue', () => {
  test('an unknown or replaced jti answers code 1 and changes nothing', async () => {
    const c = await concert();
    await joinAll(c, 1);
    expect(await pollQueue(c, 9, 'j9', T0 + 10)).toEqual([ScriptCode.UnknownToken]);
    await joinQueue(c, 1, 'j1b', T0 + 10);
    expect(await pollQueue(c, 1, 'j1', T0 + 20)).toEqual([ScriptCode.UnknownToken]);
    expect(await seenOf(c, 1)).toBe(String(T0 + 10));
    expect(await waitingUsers(c)).toEqual([1]);
  });

  test('a waiting user inside the grace period is told the place and the heartbeat moves', async () => {
    const c = await concert({ admitPerSecond: 3 });
    await joinAll(c, 3);
    expect((await pollQueue(c, 3, 'j3', T0 + 5000)).slice(0, 7)).toEqual([0, 0, 3, 0, 0, 0, 3]);
    expect(await seenOf(c, 3)).toBe(String(T0 + 5000));
    // The refreshed heartbeat carries the user past the first grace period.
    expect((await pollQueue(c, 3, 'j3', T0 + 5000 + GRACE))[0]).toBe(0);
  });

  test('a lapsed heartbeat loses the place: code 3, removed, token gone, lapse event', async () => {
    const c = await concert();
    await joinAll(c, 2);
    expect(await pollQueue(c, 1, 'j1', T0 + 1 + GRACE + 1)).toEqual([ScriptCode.PlaceLost]);
    expect(await waitingUsers(c)).toEqual([2]);
    expect(await seenOf(c, 1)).toBeNull();
    expect(await waitingCount(c)).toBe(1);
    expect(await scratch.redis.hexists(keys.queueTokens(c), '1')).toBe(0);
    expect(await eventNames(c)).toEqual(['join:1:1', 'join:2:2', 'lapse:1:1']);
    expect(await pollQueue(c, 1, 'j1', T0 + GRACE + 5)).toEqual([ScriptCode.UnknownToken]);
  });

  test('the packed reply decodes field by field; before the first tick there is no mean hold', async () => {
    const c = await concert({ admitPerSecond: 3, maxActive: 7, activeTtl: 90 });
    await joinAll(c, 3);
    const raw = await call.pollQueue.raw(scratch.redis, { concertId: c, userId: 3, jti: 'j3', now: T0 + 5000, graceMs: GRACE });
    expect(raw).toBe('0 0 3 0 0 0 3 0 7 0 90  1');
    expect(call.decodePollQueue(raw)).toEqual({
      code: ScriptCode.Ok, status: 'waiting', seq: 3, lastAdmitted: 0, activeUntil: 0, observedRate: 0, admitPerSecond: 3,
      paused: false, maxActive: 7, activeCount: 0, activeTtlSeconds: 90, meanHoldSeconds: null, spread: 1,
    });
    expect(call.decodePollQueue(`0 1 4 9 ${T0 + 60_000} 2500 3 1 7 2 60 42.5 1.25`)).toEqual({
      code: ScriptCode.Ok, status: 'active', seq: 4, lastAdmitted: 9, activeUntil: T0 + 60_000, observedRate: 2.5, admitPerSecond: 3,
      paused: true, maxActive: 7, activeCount: 2, activeTtlSeconds: 60, meanHoldSeconds: 42.5, spread: 1.25,
    });
    expect(call.decodePollQueue([ScriptCode.PlaceLost])).toEqual({ code: ScriptCode.PlaceLost });
  });

  test('an admitted user is told active and until when', async () => {
    const c = await concert({ activeTtl: 30 });
    await joinAll(c, 2);
    await admitNext(c, T0 + 100, 1);
    expect((await pollQueue(c, 1, 'j1', T0 + 200)).slice(0, 7)).toEqual([0, 1, 1, 2, T0 + 100 + 30_000, expect.any(Number), 100]);
  });

  test('an admitted user whose time is up loses the slot with an expire event for the right entry', async () => {
    const c = await concert({ activeTtl: 1 });
    await joinAll(c, 1);
    await admitNext(c, T0 + 100, 1);
    expect(await pollQueue(c, 1, 'j1', T0 + 1200)).toEqual([ScriptCode.PlaceLost]);
    expect(await activeUsers(c)).toEqual([]);
    expect(await scratch.redis.hexists(keys.queueTokens(c), '1')).toBe(0);
    expect(await eventNames(c)).toEqual(['join:1:1', 'admit:1:1', 'expire:1:1']);
  });
});

describe('admitNext', () => {
  test('admits in entry order, records the last admitted entry and writes admit events', async () => {
    const c = await concert({ admitPerSecond: 3, activeTtl: 60 });
    await joinAll(c, 5);
    const now = T0 + 100;
    expect(await admitNext(c, now, 1)).toEqual([0, 3, 0, 0, 3, 2]);
    expect(await activeUsers(c)).toEqual([1, 2, 3]);
    expect(await waitingUsers(c)).toEqual([4, 5]);
    expect(await scratch.redis.zscore(keys.active(c), '2')).toBe(String(now + 60_000));
    expect(await scratch.redis.hmget(keys.queueMeta(c), 'lastAdmitted', 'admittedTotal', 'lastTick')).toEqual(['3', '3', '1']);
    const admits = (await events(c)).filter((e) => e.e === 'admit');
    expect(admits).toEqual([1, 2, 3].map((u) => ({ e: 'admit', u: String(u), s: String(u), t: String(now), x: String(now + 60_000) })));
    expect(await admitNext(c, now + 1000, 2)).toEqual([0, 2, 0, 0, 5, 0]);
    expect(await activeUsers(c)).toEqual([1, 2, 3, 4, 5]);
  });

  test('the budget of a tick is admitPerSecond × tick length', async () => {
    const c = await concert({ admitPerSecond: 8 });
    await joinAll(c, 10);
    expect((await admitNext(c, T0 + 100, 1, { tickMs: 250 }))[1]).toBe(2);
    expect((await admitNext(c, T0 + 350, 2, { tickMs: 250 }))[1]).toBe(2);
    expect(await activeUsers(c)).toEqual([1, 2, 3, 4]);
  });

  test('never more than maxActive are active', async () => {
    const c = await concert({ maxActive: 3, admitPerSecond: 100 });
    await joinAll(c, 6);
    expect(await admitNext(c, T0 + 100, 1)).toEqual([0, 3, 0, 0, 3, 3]);
    expect(await admitNext(c, T0 + 1100, 2)).toEqual([0, 0, 0, 0, 3, 3]);
    // Lowering maxActive below the active count admits nothing and evicts nobody.
    await scratch.redis.hset(keys.queueMeta(c), 'maxActive', 1);
    expect(await admitNext(c, T0 + 2100, 3)).toEqual([0, 0, 0, 0, 3, 3]);
  });

  test('lapsed users are skipped, lose their token and do not use the budget', async () => {
    const c = await concert({ admitPerSecond: 2 });
    await joinAll(c, 4);
    // Users 1, 2 and 4 keep polling; 3 does not.
    for (const u of [1, 2, 4]) await pollQueue(c, u, `j${u}`, T0 + GRACE / 2);
    const now = T0 + GRACE + 10;
    expect(await admitNext(c, now, 1)).toEqual([0, 2, 0, 0, 2, 2]);
    expect(await admitNext(c, now + 1000, 2)).toEqual([0, 1, 1, 0, 3, 0]);
    expect(await activeUsers(c)).toEqual([1, 2, 4]);
    expect(await scratch.redis.hexists(keys.queueTokens(c), '3')).toBe(0);
    expect(await checkToken(c, 3, 'j3', now + 1000)).toEqual([ScriptCode.UnknownToken]);
    const skipped = (await events(c)).filter((e) => e.u === '3').map((e) => e.e);
    expect(skipped).toEqual(['join', 'skip']);
    expect(await scratch.redis.hget(keys.queueMeta(c), 'lastAdmitted')).toBe('4');
  });

  test('a tick examines at most maxScan waiting users', async () => {
    const c = await concert({ admitPerSecond: 10 });
    await joinAll(c, 5);
    const r = await admitNext(c, T0 + GRACE + 100, 1, { maxScan: 2 });
    expect(r).toEqual([0, 0, 2, 0, 0, 3]);
    expect(await waitingUsers(c)).toEqual([3, 4, 5]);
  });

  test('empty slots of the line (leavers, lapses) are passed over: they count against maxScan, not the budget', async () => {
    const c = await concert({ admitPerSecond: 2 });
    await joinAll(c, 300);
    for (let u = 1; u <= 200; u++) await leaveQueue(c, u, `j${u}`, T0 + 400);
    expect(await waitingCount(c)).toBe(100);
    // Slots 1..200 are empty: a scan of 150 reaches none of the waiting users.
    expect(await admitNext(c, T0 + 500, 1, { maxScan: 150 })).toEqual([0, 0, 0, 0, 0, 100]);
    expect(await scratch.redis.hget(keys.queueMeta(c), 'lineHead')).toBe('150');
    expect(await scratch.redis.hget(keys.queueMeta(c), 'lastAdmitted')).toBe('0');
    // The next tick crosses the last empty slots (in more than one chunk) and admits 201 and 202.
    expect(await admitNext(c, T0 + 600, 2)).toEqual([0, 2, 0, 0, 2, 98]);
    expect(await activeUsers(c)).toEqual([201, 202]);
    expect(await scratch.redis.hmget(keys.queueMeta(c), 'lineHead', 'lastAdmitted', 'waiting')).toEqual(['202', '202', '98']);
    expect((await waitingUsers(c))[0]).toBe(203);
    // Passed slots are zeros: the string's prefix holds nobody.
    expect((await scratch.redis.getrangeBuffer(keys.line(c), 0, 202 * 10 + 9)).every((b) => b === 0)).toBe(true);
  });

  test('a line nobody waits in is not scanned: the head jumps to the last entry number', async () => {
    const c = await concert();
    await joinAll(c, 3);
    for (let u = 1; u <= 3; u++) await leaveQueue(c, u, `j${u}`, T0 + 10);
    expect(await admitNext(c, T0 + 20, 1, { maxScan: 1 })).toEqual([0, 0, 0, 0, 0, 0]);
    expect(await scratch.redis.hget(keys.queueMeta(c), 'lineHead')).toBe('3');
  });

  test('active users whose time is up are freed, their token record deleted, and an expire event written', async () => {
    const c = await concert({ maxActive: 1, activeTtl: 1 });
    await joinAll(c, 2);
    await admitNext(c, T0 + 100, 1);
    expect(await admitNext(c, T0 + 600, 2)).toEqual([0, 0, 0, 0, 1, 1]);
    expect(await admitNext(c, T0 + 1100, 3)).toEqual([0, 1, 0, 1, 1, 0]);
    expect(await activeUsers(c)).toEqual([2]);
    expect(await scratch.redis.hexists(keys.queueTokens(c), '1')).toBe(0);
    expect(await eventNames(c)).toEqual(['join:1:1', 'join:2:2', 'admit:1:1', 'expire:1:1', 'admit:2:2']);
  });

  test('a tick frees at most maxExpire lapsed slots, the ticks after it the rest; the lapsed ones never count as taken', async () => {
    const c = await concert({ maxActive: 5, activeTtl: 1 });
    await joinAll(c, 5);
    expect((await admitNext(c, T0 + 100, 1))[1]).toBe(5);
    // All five slots lapse at T0 + 1100; two more users wait.
    await joinQueue(c, 6, 'j6', T0 + 1150);
    await joinQueue(c, 7, 'j7', T0 + 1150);
    const expires = async () => (await eventNames(c)).filter((e) => e.startsWith('expire:'));
    expect(await admitNext(c, T0 + 1200, 2, { maxExpire: 2 })).toEqual([0, 2, 0, 2, 2, 0]);
    expect(await expires()).toEqual(['expire:1:1', 'expire:2:2']);
    expect(await scratch.redis.zcard(keys.active(c))).toBe(5);
    expect(await admitNext(c, T0 + 1300, 3, { maxExpire: 2 })).toEqual([0, 0, 0, 2, 2, 0]);
    expect(await admitNext(c, T0 + 1400, 4, { maxExpire: 2 })).toEqual([0, 0, 0, 1, 2, 0]);
    expect(await admitNext(c, T0 + 1500, 5, { maxExpire: 2 })).toEqual([0, 0, 0, 0, 2, 0]);
    expect(await expires()).toEqual(['expire:1:1', 'expire:2:2', 'expire:3:3', 'expire:4:4', 'expire:5:5']);
    expect(await activeUsers(c)).toEqual([6, 7]);
    expect(Object.keys(await scratch.redis.hgetall(keys.queueTokens(c)))).toEqual(['6', '7']);
  });

  test('one caller per tick id: the same or an older tick answers code 12 and does nothing', async () => {
    const c = await concert({ admitPerSecond: 1 });
    await joinAll(c, 3);
    expect((await admitNext(c, T0 + 100, 5))[1]).toBe(1);
    expect(await admitNext(c, T0 + 100, 5)).toEqual([ScriptCode.TickTaken]);
    expect(await admitNext(c, T0 + 200, 4)).toEqual([ScriptCode.TickTaken]);
    expect(await activeUsers(c)).toEqual([1]);
  });

  test('a paused queue admits nothing but still frees expired slots', async () => {
    const c = await concert({ activeTtl: 1 });
    await joinAll(c, 1);
    await admitNext(c, T0 + 100, 1);
    await joinQueue(c, 2, 'j2', T0 + 200);
    await scratch.redis.hset(keys.queueMeta(c), 'paused', 1);
    expect(await admitNext(c, T0 + 1200, 2)).toEqual([0, 0, 0, 1, 0, 1]);
    expect(await waitingUsers(c)).toEqual([2]);
  });

  test('a queue that is not loaded answers code 11', async () => {
    expect(await admitNext(nextConcert++, T0, 1)).toEqual([ScriptCode.NoQueue]);
  });

  test('the wait estimate: releases per age of the slot, mean hold, positions per admission; join and poll carry them', async () => {
    const c = await concert({ maxActive: 2, admitPerSecond: 100, activeTtl: 60 });
    await joinAll(c, 5);
    await leaveQueue(c, 4, 'j4', T0 + 10);
    const meta = async () => {
      const [state, hold, spread] = await scratch.redis.hmget(keys.queueMeta(c), 'etaState', 'etaMeanHold', 'etaSpread');
      return { state: JSON.parse(state!) as EtaState, hold: Number(hold), spread: Number(spread) };
    };
    // The first tick has no earlier one to measure from: it only records the slots by age.
    expect((await admitNext(c, T0 + 100, T0))[1]).toBe(2);
    let m = await meta();
    expect(m.state).toMatchObject({ at: T0 + 100, prev: [2, 0, 0, 0, 0, 0], pos: 0, adm: 0 });
    expect(m.hold).toBe(60); // nothing seen: every slot held to activeTtl
    await leaveQueue(c, 1, 'j1', T0 + 500, 'done');
    expect((await admitNext(c, T0 + 1100, T0 + 1000))[1]).toBe(1);
    // One slot of age < 10 s freed out of 2 slots × 1 s; user 3 admitted for one position.
    m = await meta();
    expect(m.state).toMatchObject({ at: T0 + 1100, prev: [2, 0, 0, 0, 0, 0], rel: [1, 0, 0, 0, 0, 0], exp: [2, 0, 0, 0, 0, 0], pos: 1, adm: 1 });
    expect(m.hold).toBeCloseTo(meanHoldSeconds([1, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0], 60), 9);
    expect(m.spread).toBe(1);
    await leaveQueue(c, 2, 'j2', T0 + 1500, 'done');
    // The next tick passes the gap user 4 left and admits user 5: two positions, one admission.
    expect((await admitNext(c, T0 + 2100, T0 + 2000))[1]).toBe(1);
    const w = Math.exp(-1000 / ETA_WINDOW_MS);
    m = await meta();
    expect(m.state.rel[0]).toBeCloseTo(w + 1, 9);
    expect(m.state.exp[0]).toBeCloseTo(2 * w + 2, 9);
    expect(m.spread).toBeCloseTo((w + 2) / (w + 1), 9);
    expect(m.hold).toBeCloseTo(meanHoldSeconds([w + 1, 0, 0, 0, 0, 0], [2 * w + 2, 0, 0, 0, 0, 0], 60), 9);
    await joinQueue(c, 6, 'j6', T0 + 2200);
    const poll = await pollQueue(c, 6, 'j6', T0 + 2300);
    expect(poll.slice(7, 11)).toEqual([0, 2, 2, 60]);
    expect(poll.slice(11).map(Number)).toEqual([m.hold, m.spread]);
    await scratch.redis.hset(keys.queueMeta(c), 'paused', 1);
    const join = await joinQueue(c, 6, 'j6b', T0 + 2400);
    expect(join.slice(9, 13)).toEqual([1, 2, 2, 60]);
    expect(join.slice(13, 15).map(Number)).toEqual([m.hold, m.spread]);
  });

  test('ticks too far apart teach the wait estimate nothing; before any tick join and poll say so', async () => {
    const c = await concert({ maxActive: 1, admitPerSecond: 100, activeTtl: 60 });
    await joinAll(c, 2);
    expect((await pollQueue(c, 2, 'j2', T0 + 50)).slice(11)).toEqual(['', '1']);
    await admitNext(c, T0 + 100, T0);
    await leaveQueue(c, 1, 'j1', T0 + 200, 'done');
    await pollQueue(c, 2, 'j2', T0 + 200);
    const later = T0 + 100 + (ETA_GAP_TICKS + 1) * 1000;
    expect((await admitNext(c, later, later))[1]).toBe(1);
    const state = JSON.parse((await scratch.redis.hget(keys.queueMeta(c), 'etaState'))!) as EtaState;
    expect(state).toMatchObject({ at: later, prev: [1, 0, 0, 0, 0, 0], rel: [0, 0, 0, 0, 0, 0], adm: 0 });
  });

  test('fractional budgets accumulate credit: 0.25 a tick admits one every fourth tick', async () => {
    const c = await concert({ admitPerSecond: 1 });
    await joinAll(c, 5);
    const admitted: number[] = [];
    for (let tick = 1; tick <= 12; tick++) admitted.push(Number((await admitNext(c, T0 + tick * 250, tick, { tickMs: 250 }))[1]));
    expect(admitted).toEqual([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
  });

  test('fractional budgets above one keep the fraction: 2.5 a tick admits 5 every two ticks', async () => {
    const c = await concert({ admitPerSecond: 5 });
    await joinAll(c, 20);
    const admitted: number[] = [];
    for (let tick = 1; tick <= 6; tick++) admitted.push(Number((await admitNext(c, T0 + tick * 500, tick, { tickMs: 500 }))[1]));
    expect(admitted.reduce((a, b) => a + b, 0)).toBe(15);
    expect(Math.max(...admitted)).toBeLessThanOrEqual(3);
  });

  test('credit does not pile up while nobody waits', async () => {
    const c = await concert({ admitPerSecond: 2 });
    for (let tick = 1; tick <= 10; tick++) await admitNext(c, T0 + tick * 1000, tick);
    await joinAll(c, 10, T0 + 10_500);
    expect((await admitNext(c, T0 + 11_000, 11))[1]).toBe(2);
  });
});

describe('leaveQueue', () => {
  test('an active user leaving frees the slot at once for the next tick', async () => {
    const c = await concert({ maxActive: 1 });
    await joinAll(c, 2);
    await admitNext(c, T0 + 100, 1);
    expect(await leaveQueue(c, 1, 'j1', T0 + 200)).toEqual([0, 1]);
    expect(await activeUsers(c)).toEqual([]);
    expect(await scratch.redis.hexists(keys.queueTokens(c), '1')).toBe(0);
    expect((await admitNext(c, T0 + 300, 2))[1]).toBe(1);
    expect(await activeUsers(c)).toEqual([2]);
  });

  test('a waiting user leaving is removed from the line with the event the caller names', async () => {
    const c = await concert();
    await joinAll(c, 2);
    expect(await leaveQueue(c, 2, 'j2', T0 + 200, 'done')).toEqual([0, 2]);
    expect(await waitingUsers(c)).toEqual([1]);
    expect(await waitingCount(c)).toBe(1);
    expect(await eventNames(c)).toEqual(['join:1:1', 'join:2:2', 'done:2:2']);
  });

  test('an unknown or replaced jti answers code 1 and leaves the place alone', async () => {
    const c = await concert();
    await joinAll(c, 1);
    await joinQueue(c, 1, 'j1b', T0 + 10);
    expect(await leaveQueue(c, 1, 'j1', T0 + 20)).toEqual([ScriptCode.UnknownToken]);
    expect(await leaveQueue(c, 2, 'j2', T0 + 20)).toEqual([ScriptCode.UnknownToken]);
    expect(await waitingUsers(c)).toEqual([1]);
  });
});

describe('restorePlace', () => {
  const restore = (c: number, user: number, record: string, seq: number, now: number, activeUntil = 0) =>
    call.restorePlace.raw(scratch.redis, { concertId: c, userId: user, jti: record.slice(0, record.indexOf(':')), seq, now, activeUntil });

  test('a waiting place behind the head is put back and the head moves back to reach it', async () => {
    const c = await concert({ admitPerSecond: 1 });
    await joinAll(c, 3);
    await admitNext(c, T0 + 10, 1);
    expect(await scratch.redis.hget(keys.queueMeta(c), 'lineHead')).toBe('1');
    // Entry 1's user is unknown to Redis again (its record lost) but SQL proves the place.
    await scratch.redis.multi().hdel(keys.queueTokens(c), '1').zrem(keys.active(c), '1').exec();
    expect(await restore(c, 1, 'j1:1', 1, T0 + 20)).toEqual([0, 1]);
    expect(await scratch.redis.hmget(keys.queueMeta(c), 'lineHead', 'waiting')).toEqual(['0', '3']);
    expect(await waitingUsers(c)).toEqual([1, 2, 3]);
    expect((await admitNext(c, T0 + 1010, 2))[1]).toBe(1);
    expect(await activeUsers(c)).toEqual([1]);
    // Twice is once; a user Redis knows under another token is left alone.
    expect(await restore(c, 2, 'j2:2', 2, T0 + 30)).toEqual([0, 1]);
    expect(await restore(c, 3, 'old:9', 9, T0 + 30)).toEqual([0, 0]);
    expect(await scratch.redis.hmget(keys.queueMeta(c), 'waiting', 'lastSeq')).toEqual(['2', '3']);
  });

  test('an active place goes back to the active set with its time', async () => {
    const c = await concert();
    expect(await restore(c, 7, 'j7:4', 4, T0, T0 + 60_000)).toEqual([0, 1]);
    expect(await scratch.redis.zscore(keys.active(c), '7')).toBe(String(T0 + 60_000));
    expect(await waitingCount(c)).toBe(0);
  });
});

describe('applyDraw', () => {
  const apply = (c: number, now: number, lastSeq: number, places: [number, string, number][]) =>
    call.applyDraw.raw(scratch.redis, { concertId: c, now, lastSeq, places: places.map(([userId, jti, seq]) => ({ userId, jti, seq })) });

  test('drawn places take their slots in the line; joins wait (code 16) until the draw is marked applied', async () => {
    const c = await concert({ saleAt: T0, drawn: 0, lineHead: 0, waiting: 0 });
    await scratch.redis.hset(keys.prequeue(c), { 7: `p7|${T0 - 5}`, 8: `p8|${T0 - 5}`, 9: `p9|${T0 - 5}` });
    expect(await joinQueue(c, 50, 'j50', T0)).toEqual([ScriptCode.DrawPending]);
    expect(await apply(c, T0 + 1, 3, [[8, 'p8', 1], [7, 'p7', 2]])).toEqual([0, 2]);
    expect(await apply(c, T0 + 2, 3, [[9, 'p9', 3]])).toEqual([0, 1]);
    expect(await readLine(scratch.redis, c)).toEqual([
      { seq: 1, userId: 8, seenMs: T0 + 1 }, { seq: 2, userId: 7, seenMs: T0 + 1 }, { seq: 3, userId: 9, seenMs: T0 + 2 },
    ]);
    expect(await tokenRecords(c)).toEqual({ 7: 'p7:2', 8: 'p8:1', 9: 'p9:3' });
    expect(await scratch.redis.hmget(keys.queueMeta(c), 'lastSeq', 'lineHead', 'waiting')).toEqual(['3', '0', '3']);
    expect(await scratch.redis.exists(keys.prequeue(c))).toBe(0);
    expect(await joinQueue(c, 50, 'j50', T0 + 3)).toEqual([ScriptCode.DrawPending]);
    await scratch.redis.hset(keys.queueMeta(c), 'drawn', 1);
    expect((await joinQueue(c, 50, 'j50', T0 + 3)).slice(0, 2)).toEqual([0, 4]);
    expect(await waitingUsers(c)).toEqual([8, 7, 9, 50]);
  });

  test('applied again it changes nothing; a lost place comes back and moves the head back to reach it', async () => {
    const c = await concert({ admitPerSecond: 2, saleAt: T0, drawn: 0, lineHead: 0, waiting: 0 });
    const places: [number, string, number][] = [[3, 'p3', 1], [1, 'p1', 2], [2, 'p2', 3]];
    expect(await apply(c, T0, 3, places)).toEqual([0, 3]);
    expect(await apply(c, T0 + 5, 3, places)).toEqual([0, 0]);
    expect(await scratch.redis.hmget(keys.queueMeta(c), 'waiting', 'lineHead')).toEqual(['3', '0']);
    expect(await seenOf(c, 3)).toBe(String(T0));
    await scratch.redis.hset(keys.queueMeta(c), 'drawn', 1);
    await admitNext(c, T0 + 10, 1, { grace: 60_000 });
    expect(await activeUsers(c)).toEqual([1, 3]);
    expect(await scratch.redis.hget(keys.queueMeta(c), 'lineHead')).toBe('2');
    // As a failover that lost the last writes might leave it: entry 1's record and slot are gone.
    await scratch.redis.multi().hdel(keys.queueTokens(c), '3').zrem(keys.active(c), '3').exec();
    expect(await apply(c, T0 + 20, 3, places)).toEqual([0, 1]);
    expect(await scratch.redis.hmget(keys.queueMeta(c), 'lineHead', 'waiting', 'lastSeq')).toEqual(['0', '2', '3']);
    expect(await waitingUsers(c)).toEqual([3, 2]);
  });

  test('a queue that is not loaded answers code 11 and writes nothing', async () => {
    const c = nextConcert++;
    expect(await apply(c, T0, 1, [[1, 'p1', 1]])).toEqual([ScriptCode.NoQueue]);
    expect(await scratch.redis.exists(keys.line(c), keys.queueTokens(c))).toBe(0);
  });
});

describe('checkQueueToken', () => {
  test('unknown, replaced, waiting, active and expired tokens', async () => {
    const c = await concert({ maxActive: 1, activeTtl: 1 });
    await joinAll(c, 2);
    expect(await checkToken(c, 3, 'x', T0)).toEqual([ScriptCode.UnknownToken]);
    expect(await checkToken(c, 1, 'j2', T0)).toEqual([ScriptCode.UnknownToken]);
    expect(await checkToken(c, 2, 'j2', T0 + 10)).toEqual([ScriptCode.NotAdmitted, 2, 0]);
    await admitNext(c, T0 + 100, 1);
    expect(await checkToken(c, 1, 'j1', T0 + 200)).toEqual([0, 1, T0 + 1100]);
    expect(await checkToken(c, 1, 'j1', T0 + 1100)).toEqual([ScriptCode.NotAdmitted, 1, 0]);
    await joinQueue(c, 2, 'j2b', T0 + 300);
    expect(await checkToken(c, 2, 'j2', T0 + 300)).toEqual([ScriptCode.UnknownToken]);
  });
});

describe('issueToken', () => {
  const issue = (jti: string, now: number, ttl: number, limit: number) =>
    call.issueToken.raw(scratch.redis, { userId: 7, jti, now, ttlMs: ttl, limit });

  test('stores tokens up to the limit; past it the token is SQL only; expired tokens do not count', async () => {
    await scratch.redis.del(keys.liveUserTokens('00'));
    expect(await issue('00t1', T0, 60_000, 2)).toEqual([0, 1, 1]);
    expect(await issue('00t2', T0 + 10, 60_000, 2)).toEqual([0, 1, 2]);
    expect(await issue('00t3', T0 + 20, 60_000, 2)).toEqual([0, 0, 2]);
    expect(await scratch.redis.exists(keys.userToken('00t3'))).toBe(0);
    expect(await scratch.redis.get(keys.userToken('00t1'))).toBe('7');
    const pttl = await scratch.redis.pttl(keys.userToken('00t1'));
    expect(pttl).toBeGreaterThan(50_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    // t1 has expired by then: its place in the count is free again.
    expect(await issue('00t4', T0 + 60_001, 60_000, 2)).toEqual([0, 1, 2]);
    expect(await scratch.redis.zrange(keys.liveUserTokens('00'), '0', '-1')).toEqual(['00t2', '00t4']);
  });

  test('a limit of 0 keeps every token out of Redis', async () => {
    await scratch.redis.del(keys.liveUserTokens('00'));
    expect(await issue('00z1', T0, 1000, 0)).toEqual([0, 0, 0]);
    expect(await scratch.redis.exists(keys.userToken('00z1'))).toBe(0);
  });
});

describe('key lifetimes', () => {
  test('queue keys made after the concert was loaded expire with its meta hash', async () => {
    const c = await concert({ maxActive: 2 });
    const until = Date.now() + 3_600_000;
    await scratch.redis.pexpireat(keys.queueMeta(c), until);
    await joinAll(c, 3);
    await admitNext(c, T0 + 100, 1, { grace: Number.MAX_SAFE_INTEGER });
    for (const k of [keys.line(c), keys.active(c), keys.queueTokens(c), keys.stream(c)]) {
      expect([k, await scratch.redis.pexpiretime(k)]).toEqual([k, until]);
    }
  });

  test('a queue whose meta hash has no expiry gives none to the others', async () => {
    const c = await concert();
    await joinAll(c, 1);
    expect(await scratch.redis.pttl(keys.line(c))).toBe(-1);
  });
});

describe('script declarations', () => {
  test('every script file has a declared name and key count, and every declared name a file', () => {
    const files = readdirSync(fileURLToPath(new URL('../src/redis/scripts/', import.meta.url))).filter((f) => f.endsWith('.lua'));
    expect(scriptFileMismatches(files)).toEqual([]);
    expect(scriptFileMismatches([...files, 'dropSeat-2.lua'])).toEqual(['script file dropSeat-2.lua has no entry in SCRIPT_KEY_COUNTS']);
    expect(scriptFileMismatches(files.filter((f) => f !== 'markSold-11.lua'))).toEqual(['script markSold has no file']);
    expect(scriptFileMismatches(files.map((f) => f === 'markSold-11.lua' ? 'markSold-10.lua' : f)))
      .toEqual(['script file markSold-10.lua takes 10 keys, SCRIPT_KEY_COUNTS says 11']);
  });

  test('every script has a typed wrapper that calls it with as many keys as its file name says', () => {
    expect(Object.keys(call.scriptCalls).sort()).toEqual(Object.keys(SCRIPT_KEY_COUNTS).sort());
    const input = {
      concertId: 1, scheduleId: 2, seatNumber: 3, reservationId: '1-r', userId: 4, jti: '00ab', now: T0, seq: 5,
    } as never;
    for (const s of scripts) {
      const wrapper = call.scriptCalls[s.name];
      expect([s.name, wrapper.scriptName, wrapper.keys(input).length]).toEqual([s.name, s.name, s.numberOfKeys]);
    }
  });

  test('an include line is replaced by the fragment\'s code, without its header comment', () => {
    const fragment = '--[[\n  what it expects\n]]\nlocal x = 1\n';
    expect(spliceIncludes('a\n--- @include "x"\nb\n', () => fragment)).toBe('a\nlocal x = 1\nb\n');
    for (const s of scripts) expect(s.lua).not.toContain('@include');
  });
});

describe('script SHAs', () => {
  /** An edit to a script is a conscious change: update its pin here in the same commit. */
  const PINNED: Record<string, string> = {
    admitNext: '5a35e4cbad73e3fd546791b40d08be9259360e69',
    applyDraw: '944267d99d672e171bc739a9b087d58fc5d2e809',
    checkQueueToken: 'c611e97df3eb0b2c61819c95f855c44b96428e0e',
    holdSeat: 'd2ccae9aa58fd331a3e3064254c79bc48201455b',
    issueToken: 'f37aa7bf4ec419eebb4e040b3d42114d185d4ee5',
    joinQueue: '5139d2a004ab1b16ba4190e14199d34951f4f3f4',
    leaveQueue: '53cab4b68e59edfe15922ff30ccda93b5e90116c',
    markSold: '8482312773609881c4dae02f84919daa85aa66db',
    peekAdmissions: 'b95341d38e383ff37862f576d63a63d8e0c5e570',
    pollPrequeue: '65b916a9083f1a0bd07dd542af152a0fb7263542',
    pollQueue: 'ad09cd4ed3e40cc4bfa88bcaf488cf8151c586c2',
    raiseSeqCeiling: '07ad22fb18a41f3b6daa399ef2798f359068b78f',
    restorePlace: 'f577b5a4be37a1acb3f05dc750f491a5580febb9',
    releaseHold: '85fc721aff98e105c7b4651eb1b61f18477448a1',
  };

  test('every script is pinned and every pin has its script', () => {
    const actual = Object.fromEntries(scripts.map((s) => [s.name, s.sha1]));
    expect(actual).toEqual(PINNED);
  });

  test('Redis computes the same SHA for each script', async () => {
    for (const s of scripts) expect(String(await scratch.redis.script('LOAD', s.lua))).toBe(s.sha1);
  });
});
