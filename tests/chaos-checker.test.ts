/**
 * The chaos checker on small hand-made histories: for each invariant one history that keeps
 * it and one that breaks it, so the checker is shown able to fail.
 */
import { createHash } from 'node:crypto';
import { drawOrder } from '../src/modules/draw/algorithm.ts';
import { checkOpening, type OpeningFacts, type OpeningFan } from '../chaos/opening.ts';
import { describe, expect, test } from 'bun:test';
import {
  check, checkActiveBound, checkAdmissionOrder, checkAdmissionOrderSql, checkErrors, checkHolds, checkMoney,
  checkNoLockout, checkOneNumber, checkTicketCap, checkPaidStaysPaid, checkPlaces, checkReadiness, buildPlaces, type CheckConfig, type SqlFacts,
} from '../chaos/checker.ts';
import { emptyHistory, type History, type HistoryOp, type TokenFacts } from '../chaos/history.ts';
import { planFaults } from '../chaos/nemesis.ts';
import { mulberry32, Rng } from '../chaos/prng.ts';

const cfg: CheckConfig = {
  graceMs: 20_000, graceMarginMs: 3_000, clockMarginMs: 1_000, activeTtlMs: 45_000, maxActive: { 1: 2 }, readyzMaxMs: 2_000,
  replayMs: 120_000, maxTickets: 2, concertOfSchedule: { 1: 1 },
};
const noSql: SqlFacts = { payments: [], users: [], queueEntries: [] };

let nextId = 1;
type OpInit = Partial<HistoryOp> & Pick<HistoryOp, 'op' | 'invokeMs'>;
function op(init: OpInit): HistoryOp {
  return { id: nextId++, fan: init.userId ?? 1, userId: 1, instance: 0, phase: 'run', completeMs: init.invokeMs + 10, status: 200, code: null, ...init };
}
const qtok = (user: number, seq: number, cid = 1): TokenFacts => ({ typ: 'queue', jti: `q-${user}-${seq}`, sub: user, cid, seq, expMs: 3_600_000 });
const utok = (user: number, n = 0): TokenFacts => ({ typ: 'user', jti: `u-${user}-${n}`, sub: user, expMs: 1_800_000 });
const join = (user: number, seq: number, t: number, status: 'waiting' | 'active' = 'waiting') =>
  op({ op: 'join', userId: user, invokeMs: t, status: 201, auth: utok(user, t), req: { concertId: 1 }, res: { token: qtok(user, seq), status, concertId: 1 } });
const poll = (user: number, seq: number, t: number, answer: 'waiting' | 'active' | number) =>
  typeof answer === 'number'
    ? op({ op: 'poll', userId: user, invokeMs: t, status: answer, code: answer === 401 ? 'UNAUTHENTICATED' : answer === 503 ? 'UNAVAILABLE' : `HTTP_${answer}`, auth: qtok(user, seq) })
    : op({ op: 'poll', userId: user, invokeMs: t, status: 200, auth: qtok(user, seq), res: { status: answer, concertId: 1 } });
const leave = (user: number, seq: number, t: number, status = 204) => op({ op: 'leave', userId: user, invokeMs: t, status, auth: qtok(user, seq) });
const hold = (user: number, seq: number, t: number, rid: string, seat = 7, expiresAtMs = t + 15_000) =>
  op({ op: 'hold', userId: user, invokeMs: t, status: 201, auth: qtok(user, seq), req: { scheduleId: 1, seatNumber: seat },
    res: { reservationId: rid, status: 'held', expiresAtMs } });
const pay = (user: number, seq: number, t: number, rid: string, status = 201, code: string | null = null, seat = 7) =>
  op({ op: 'pay', userId: user, invokeMs: t, status, code, auth: qtok(user, seq), req: { reservationId: rid, scheduleId: 1, seatNumber: seat },
    ...(status === 201 ? { res: { paymentId: `pay-${rid}`, status: 'paid', reservationId: rid } } : {}) });
const readRes = (user: number, t: number, rid: string, answer: string | number, phase: HistoryOp['phase'] = 'run') =>
  typeof answer === 'number'
    ? op({ op: 'readRes', userId: user, invokeMs: t, status: answer, code: answer === 404 ? 'NOT_FOUND' : 'X', auth: utok(user, 99), req: { reservationId: rid }, phase })
    : op({ op: 'readRes', userId: user, invokeMs: t, status: 200, auth: utok(user, 99), req: { reservationId: rid }, res: { status: answer, reservationId: rid }, phase });
const seats = (user: number, seq: number, t: number, seatMap: string) =>
  op({ op: 'seats', userId: user, invokeMs: t, status: 200, auth: qtok(user, seq), req: { scheduleId: 1 }, res: { seatMap } });

function historyOf(...ops: HistoryOp[]): History {
  const h = emptyHistory();
  h.ops.push(...ops);
  return h;
}
const placesCheck = (h: History) => checkPlaces(h, buildPlaces(h, cfg), cfg);

describe('1. money: sold once, payments durable, ledger', () => {
  const paidHistory = historyOf(hold(1, 1, 0, 'r1'), pay(1, 1, 1_000, 'r1'));
  const sqlOk: SqlFacts = {
    payments: [{ id: 'pay-r1', reservationId: 'r1', userId: 1, scheduleId: 1, seatNumber: 7 }],
    users: [{ id: 1, balance: 990_000, ledgerSum: 990_000 }], queueEntries: [],
  };
  test('holds', () => expect(checkMoney(paidHistory, sqlOk)).toEqual([]));
  test('breaks: two SQL payments for one seat', () => {
    const sql = { ...sqlOk, payments: [...sqlOk.payments, { id: 'pay-x', reservationId: 'rx', userId: 2, scheduleId: 1, seatNumber: 7 }] };
    expect(checkMoney(paidHistory, sql).map((v) => v.invariant)).toEqual(['sold-once']);
  });
  test('breaks: two 201 payments for one seat with different reservations', () => {
    const h = historyOf(hold(1, 1, 0, 'r1'), pay(1, 1, 1_000, 'r1'), hold(2, 2, 20_000, 'r2'), pay(2, 2, 21_000, 'r2'));
    const sql = { ...sqlOk, payments: [] };
    const found = checkMoney(h, sql).map((v) => v.invariant);
    expect(found).toContain('sold-once');
    expect(found.filter((v) => v === 'payments-durable')).toHaveLength(2);
  });
  test('breaks: a 201 payment missing in SQL, a balance off its ledger', () => {
    const sql: SqlFacts = { payments: [], users: [{ id: 1, balance: 5, ledgerSum: 10 }, { id: 2, balance: -1, ledgerSum: -1 }], queueEntries: [] };
    expect(checkMoney(paidHistory, sql).map((v) => v.invariant)).toEqual(['payments-durable', 'ledger', 'ledger']);
  });
});

describe('2. paid stays paid', () => {
  const base = () => [join(1, 1, 0, 'active'), hold(1, 1, 100, 'r1'), pay(1, 1, 1_000, 'r1')];
  test('holds: reads paid, seat sold, 503 and network errors allowed, final read paid', () => {
    const h = historyOf(...base(), readRes(1, 2_000, 'r1', 'paid'), readRes(1, 3_000, 'r1', 503), seats(2, 2, 4_000, '......s'),
      readRes(1, 60_000, 'r1', 'paid', 'final'));
    expect(checkPaidStaysPaid(h)).toEqual([]);
  });
  test('breaks: a paid reservation later read held', () => {
    const h = historyOf(...base(), readRes(1, 2_000, 'r1', 'held'), readRes(1, 60_000, 'r1', 'paid', 'final'));
    const v = checkPaidStaysPaid(h);
    expect(v).toHaveLength(1);
    expect(v[0]!.message).toContain('then read status held');
  });
  test('breaks: a 404 after payment, a seat map showing the seat available, no final read', () => {
    const h = historyOf(...base(), readRes(1, 2_000, 'r1', 404), seats(2, 2, 4_000, 'ssssssa'));
    const messages = checkPaidStaysPaid(h).map((v) => v.message);
    expect(messages).toHaveLength(3);
    expect(messages[0]).toContain('then read 404 NOT_FOUND');
    expect(messages[1]).toContain('final read after healing never answered');
    expect(messages[2]).toContain('read available in a seat map');
  });
});

describe('3. places are kept', () => {
  test('holds: polls answer waiting/active, 503s allowed, 401 only after a leave or a lapse', () => {
    const h = historyOf(
      join(1, 1, 0), poll(1, 1, 2_000, 'waiting'), poll(1, 1, 4_000, 503), poll(1, 1, 5_000, 'active'), leave(1, 1, 6_000, 0), poll(1, 1, 7_000, 401),
      join(2, 2, 0), poll(2, 2, 2_000, 'waiting'), poll(2, 2, 30_000, 401), // silent for longer than the grace: may have lapsed
    );
    expect(placesCheck(h)).toEqual([]);
  });
  test('breaks: a 401 poll on a live place', () => {
    const h = historyOf(join(1, 1, 0), poll(1, 1, 2_000, 'waiting'), poll(1, 1, 4_000, 401), poll(1, 1, 5_000, 'waiting'));
    const v = placesCheck(h);
    expect(v).toHaveLength(1);
    expect(v[0]!.invariant).toBe('places-kept');
    expect(v[0]!.message).toContain('401 on a live place');
  });
  test('breaks: an active place seen waiting again', () => {
    const h = historyOf(join(1, 1, 0), poll(1, 1, 2_000, 'active'), poll(1, 1, 4_000, 'waiting'));
    expect(placesCheck(h)[0]?.message).toContain('went back from active');
  });
  test('breaks: a join of the same user hands out another entry while the place is live', () => {
    const h = historyOf(join(1, 1, 0), poll(1, 1, 2_000, 'waiting'), join(1, 5, 4_000));
    expect(placesCheck(h)[0]?.message).toContain('entry 5');
  });
  test('a lapse counts from the last successful heartbeat, not from failed polls', () => {
    const h = historyOf(join(1, 1, 0), poll(1, 1, 2_000, 'waiting'), ...[5, 8, 11, 14, 17, 20].map((s) => poll(1, 1, s * 1000, 503)), poll(1, 1, 21_000, 401));
    expect(placesCheck(h)).toEqual([]);
  });
});

describe('4. admission order', () => {
  test('holds: lower entries admitted first', () => {
    const h = historyOf(join(1, 1, 0), join(2, 2, 10), poll(1, 1, 1_000, 'active'), poll(2, 2, 1_500, 'waiting'), poll(2, 2, 3_000, 'active'));
    expect(checkAdmissionOrder(buildPlaces(h, cfg))).toEqual([]);
  });
  test('breaks: a later entry seen active while an earlier live one still waits', () => {
    const h = historyOf(join(1, 1, 0), join(2, 2, 10), poll(2, 2, 1_000, 'active'), poll(1, 1, 1_500, 'waiting'));
    const v = checkAdmissionOrder(buildPlaces(h, cfg));
    expect(v).toHaveLength(1);
    expect(v[0]!.message).toContain('entry 2');
  });
  test('holds: the earlier entry had left', () => {
    const h = historyOf(join(1, 1, 0), join(2, 2, 10), leave(1, 1, 500, 0), poll(2, 2, 1_000, 'active'), poll(1, 1, 1_500, 'waiting'));
    expect(checkAdmissionOrder(buildPlaces(h, cfg))).toEqual([]);
  });
  test('SQL: admitted_at against entry order', () => {
    const entries = (times: number[]) => times.map((t, i) => ({ concertId: 1, seq: i + 1, userId: i + 1, status: 'done', admittedAtMs: t }));
    expect(checkAdmissionOrderSql({ ...noSql, queueEntries: entries([100, 100, 200, 300]) })).toEqual([]);
    expect(checkAdmissionOrderSql({ ...noSql, queueEntries: entries([100, 300, 200]) })).toHaveLength(1);
  });
});

describe('5. active bound', () => {
  const activeRun = (user: number, from: number, to: number) => [join(user, user, from - 500), poll(user, user, from, 'active'), poll(user, user, to, 'active')];
  test('holds: maxActive overlapping, or more in sequence', () => {
    const h = historyOf(...activeRun(1, 1_000, 5_000), ...activeRun(2, 1_000, 5_000), ...activeRun(3, 6_000, 9_000));
    expect(checkActiveBound(buildPlaces(h, cfg), cfg)).toEqual([]);
  });
  test('breaks: maxActive + 1 certainly active at once', () => {
    const h = historyOf(...activeRun(1, 1_000, 5_000), ...activeRun(2, 1_500, 5_000), ...activeRun(3, 2_000, 5_000));
    const v = checkActiveBound(buildPlaces(h, cfg), cfg);
    expect(v).toHaveLength(1);
    expect(v[0]!.fans.sort()).toEqual([1, 2, 3]);
  });
});

describe('6. holds', () => {
  test('holds: a second hold of the seat after the first expired or was released', () => {
    const h = historyOf(
      hold(1, 1, 0, 'r1', 7, 15_000), hold(2, 2, 16_500, 'r2', 7),
      hold(3, 3, 0, 'r3', 8), op({ op: 'release', userId: 3, invokeMs: 1_000, status: 204, req: { reservationId: 'r3' } }), hold(4, 4, 2_000, 'r4', 8),
      readRes(4, 3_000, 'r4', 'held'), pay(4, 4, 4_000, 'r4', 201, null, 8),
    );
    expect(checkHolds(h, cfg)).toEqual([]);
  });
  test('breaks: a second 201 hold on a held seat', () => {
    const h = historyOf(hold(1, 1, 0, 'r1', 7, 15_000), hold(2, 2, 5_000, 'r2', 7));
    const v = checkHolds(h, cfg);
    expect(v).toHaveLength(1);
    expect(v[0]!.message).toContain('held twice');
  });
  test('breaks: paying a live hold answers HOLD_EXPIRED; reading it answers 404', () => {
    const h = historyOf(hold(1, 1, 0, 'r1', 7, 15_000), readRes(1, 2_000, 'r1', 404), pay(1, 1, 3_000, 'r1', 409, 'HOLD_EXPIRED'));
    expect(checkHolds(h, cfg).map((v) => v.message.split(' answered ')[1])).toEqual(['404 NOT_FOUND', '409 HOLD_EXPIRED']);
  });
});

describe('7. no 5xx but 503 UNAVAILABLE with Retry-After', () => {
  test('holds and breaks', () => {
    const good = op({ op: 'hold', invokeMs: 0, status: 503, code: 'UNAVAILABLE', retryAfter: '1' });
    const noHeader = op({ op: 'hold', invokeMs: 0, status: 503, code: 'UNAVAILABLE', retryAfter: null });
    const internal = op({ op: 'pay', invokeMs: 0, status: 500, code: 'INTERNAL' });
    expect(checkErrors(historyOf(good))).toEqual([]);
    expect(checkErrors(historyOf(good, noHeader, internal))).toHaveLength(2);
  });
});

describe('8. readiness', () => {
  test('holds: 200s and 503s in time; no answer while the instance is down on purpose', () => {
    expect(checkReadiness([
      { instance: 0, invokeMs: 0, completeMs: 20, status: 200, expectedDown: false },
      { instance: 0, invokeMs: 1_000, completeMs: 1_020, status: 503, expectedDown: false },
      { instance: 1, invokeMs: 1_000, completeMs: 1_020, status: 0, expectedDown: true },
    ], 2_000)).toEqual([]);
  });
  test('breaks: a 500, a slow answer, a crash', () => {
    const v = checkReadiness([
      { instance: 0, invokeMs: 0, completeMs: 20, status: 500, expectedDown: false },
      { instance: 1, invokeMs: 0, completeMs: 2_500, status: 200, expectedDown: false },
    ], 2_000, [{ instance: 1, atMs: 3_000, how: 'exit code 1', logTail: 'error: Connection terminated unexpectedly', restartedMs: 5_000 }]);
    expect(v).toHaveLength(3);
    expect(v[0]!.message).toContain('Connection terminated');
  });
});

describe('9. no lockout', () => {
  const tok = utok(5, 1);
  const attempt = (t: number, status: number) => op({
    op: 'join', userId: 5, invokeMs: t, status, code: status === 0 ? 'TIMEOUT' : status === 401 ? 'UNAUTHENTICATED' : null,
    auth: tok, req: { concertId: 1 }, ...(status === 200 || status === 201 ? { res: { token: qtok(5, 3), status: 'waiting', concertId: 1 } } : {}),
  });
  test('holds: a lost join replayed with 200; a 401 with nothing before it; a retry after the place could have lapsed', () => {
    expect(checkNoLockout(historyOf(attempt(0, 0), attempt(1_000, 200)), cfg)).toEqual([]);
    expect(checkNoLockout(historyOf(attempt(0, 401)), cfg)).toEqual([]);
    expect(checkNoLockout(historyOf(attempt(0, 0), attempt(30_000, 401)), cfg)).toEqual([]);
  });
  test('breaks: a retry after a lost answer, and a double submit, answered 401', () => {
    expect(checkNoLockout(historyOf(attempt(0, 0), attempt(1_000, 401)), cfg)).toHaveLength(1);
    expect(checkNoLockout(historyOf(attempt(0, 503), attempt(500, 401)), cfg)).toHaveLength(1);
    const v = checkNoLockout(historyOf(attempt(0, 201), attempt(10, 401)), cfg);
    expect(v).toHaveLength(1);
    expect(v[0]!.message).toContain('answered 401');
  });
  const withPow = (t: number, status: number, challenge: string, expiresMs = 120_000) => op({
    op: 'join', userId: 5, invokeMs: t, status, code: status === 400 ? 'CHALLENGE_FAILED' : status === 503 ? 'UNAVAILABLE' : null,
    auth: tok, req: { concertId: 1, challenge, challengeExpiresMs: expiresMs },
  });
  test('JOIN_POW_BITS holds: a refused challenge shown first, another join\'s, or one past its life', () => {
    expect(checkNoLockout(historyOf(withPow(0, 400, 'c1')), cfg)).toEqual([]);
    expect(checkNoLockout(historyOf(withPow(0, 400, 'c1'), withPow(100, 400, 'c1')), cfg)).toEqual([]);
    expect(checkNoLockout(historyOf(withPow(0, 503, 'c1'), op({ ...withPow(10, 400, 'c1'), auth: utok(5, 9) })), cfg)).toEqual([]);
    expect(checkNoLockout(historyOf(withPow(0, 503, 'c1', 5_000), withPow(6_000, 400, 'c1', 5_000)), cfg)).toEqual([]);
  });
  test('JOIN_POW_BITS breaks: a retry refused for the challenge its own earlier attempt showed', () => {
    const v = checkNoLockout(historyOf(withPow(0, 503, 'c1'), withPow(1_000, 400, 'c1')), cfg);
    expect(v).toHaveLength(1);
    expect(v[0]!.message).toContain('CHALLENGE_FAILED');
    expect(checkNoLockout(historyOf(withPow(0, 0, 'c1'), withPow(1_000, 400, 'c1')), cfg)).toHaveLength(1);
  });
});

describe('10. ticket cap', () => {
  const sale = (n: number, userId: number) => ({ id: `p${n}`, reservationId: `r${n}`, userId, scheduleId: 1, seatNumber: n });
  test('holds: up to the cap per user', () => {
    expect(checkTicketCap({ ...noSql, payments: [sale(1, 1), sale(2, 1), sale(3, 2)] }, cfg)).toEqual([]);
  });
  test('breaks: one seat past it', () => {
    const v = checkTicketCap({ ...noSql, payments: [sale(1, 1), sale(2, 1), sale(3, 1)] }, cfg);
    expect(v).toHaveLength(1);
    expect(v[0]!.message).toContain('bought 3 seats');
  });
});

describe('12. one entry number, one user', () => {
  const numbersCheck = (h: History) => checkOneNumber(buildPlaces(h, cfg));
  test('holds: each user its own number; a user handed its number again; pre-queue tokens (0) and other concerts', () => {
    const otherConcert = op({ op: 'join', userId: 3, invokeMs: 30, status: 201, auth: utok(3), req: { concertId: 2 },
      res: { token: qtok(3, 1, 2), status: 'waiting', concertId: 2 } });
    const again = op({ op: 'join', userId: 1, invokeMs: 40, status: 200, auth: utok(1, 0), req: { concertId: 1 },
      res: { token: qtok(1, 1), status: 'waiting', concertId: 1 } });
    expect(numbersCheck(historyOf(join(1, 1, 0), join(2, 2, 10), join(4, 0, 20), join(5, 0, 25), otherConcert, again))).toEqual([]);
  });
  test('breaks: a number handed to a second user, even after the first left', () => {
    const first = join(1, 1, 0);
    const second = join(2, 1, 60_000);
    const v = numbersCheck(historyOf(first, leave(1, 1, 30_000), second));
    expect(v.map((x) => x.invariant)).toEqual(['one-number']);
    expect(v[0]!.message).toContain('entry 1 of concert 1 acknowledged to users 1, 2');
    expect(v[0]!.opIds).toEqual([first.id, second.id]);
  });
});

describe('6b. a hold acknowledged by a retry (200) is kept too', () => {
  test('breaks: another 201 hold of the seat while the 200-acknowledged hold lives', () => {
    const mine = op({ op: 'hold', userId: 1, invokeMs: 0, status: 200, auth: qtok(1, 1), req: { scheduleId: 1, seatNumber: 7 },
      res: { reservationId: 'r1', status: 'held', expiresAtMs: 15_000 } });
    expect(checkHolds(historyOf(mine, hold(2, 1, 1_000, 'r2')), cfg).length).toBeGreaterThan(0);
  });
});

describe('check() and the seed', () => {
  test('a clean history has no violation; counts list every invariant', () => {
    const h = historyOf(join(1, 1, 0), poll(1, 1, 1_000, 'active'), hold(1, 1, 1_100, 'r1'), pay(1, 1, 2_000, 'r1'),
      readRes(1, 60_000, 'r1', 'paid', 'final'));
    const sql: SqlFacts = { payments: [{ id: 'pay-r1', reservationId: 'r1', userId: 1, scheduleId: 1, seatNumber: 7 }], users: [], queueEntries: [] };
    const r = check(h, sql, cfg);
    expect(r.violations).toEqual([]);
    expect(Object.keys(r.counts)).toHaveLength(15);
  });
  test('repeated sightings of one finding are merged', () => {
    const h = historyOf(join(1, 1, 0), hold(1, 1, 100, 'r1'), pay(1, 1, 1_000, 'r1'),
      readRes(1, 2_000, 'r1', 'held'), readRes(1, 3_000, 'r1', 'held'), readRes(1, 60_000, 'r1', 'paid', 'final'));
    const sql: SqlFacts = { payments: [{ id: 'pay-r1', reservationId: 'r1', userId: 1, scheduleId: 1, seatNumber: 7 }], users: [], queueEntries: [] };
    const r = check(h, sql, cfg);
    expect(r.counts['paid-stays-paid']).toBe(1);
    expect(r.violations[0]!.message).toContain('seen 2 times');
  });
  test('the same seed gives the same fault plan and the same stream', () => {
    const a = planFaults(Rng.of(7, 'nemesis'), ['kill', 'freeze', 'pg-restart'], 60_000);
    const b = planFaults(Rng.of(7, 'nemesis'), ['kill', 'freeze', 'pg-restart'], 60_000);
    expect(a).toEqual(b);
    expect(a.length).toBeGreaterThanOrEqual(3);
    expect(new Set(a.slice(0, 3).map((f) => f.kind)).size).toBe(3);
    const r1 = mulberry32(1), r2 = mulberry32(1);
    expect([r1(), r1(), r1()]).toEqual([r2(), r2(), r2()]);
  });
});

test('different seeds give different streams and plans', () => {
  const first = [1, 2, 3, 4].map((s) => Rng.of(s, 'nemesis').next());
  expect(new Set(first).size).toBe(4);
  const plans = [1, 2, 3, 4].map((s) => JSON.stringify(planFaults(Rng.of(s, 'nemesis'), ['kill', 'freeze', 'failover', 'redis-down', 'pg-restart', 'app-kill'], 60_000)));
  expect(new Set(plans).size).toBe(4);
});

describe('opening-draw (a scheduled sale)', () => {
  const seed = 'seed-for-the-checker';
  const commitment = createHash('sha256').update(seed).digest('hex');
  const tickets = ['aa', 'bb', 'cc', 'dd'];
  const order = drawOrder(seed, tickets);
  const fan = (userId: number, ticket: string, beats: number[], extra: Partial<OpeningFan> = {}): OpeningFan =>
    ({ userId, nonce: 'n', ticket, token: 't', beats, late: false, ...extra });
  const fans = order.map((t, i) => fan(i + 1, t, [95_000]));
  const facts = (over: Partial<OpeningFacts> = {}): OpeningFacts => ({
    commitment, openingMs: 100_000, published: { seed, commitment, tickets: order },
    prequeue: fans.map((f) => ({ userId: f.userId, ticket: f.ticket!, drawnSeq: order.indexOf(f.ticket!) + 1, status: 'waiting' })),
    entries: fans.map((f) => ({ seq: order.indexOf(f.ticket!) + 1, userId: f.userId })),
    ...over,
  });
  const rule = { graceMs: 20_000, graceMarginMs: 3_000 };

  test('a clean opening has no violation', () => {
    expect(checkOpening(fans, facts(), rule)).toEqual([]);
  });
  test('a published order the seed does not give, or another SQL order, is caught', () => {
    const swapped = [order[1]!, order[0]!, ...order.slice(2)];
    expect(checkOpening(fans, facts({ published: { seed, commitment, tickets: swapped } }), rule).length).toBeGreaterThan(0);
    const f = facts();
    f.prequeue[0]!.drawnSeq = 9;
    expect(checkOpening(fans, f, rule).some((v) => v.invariant === 'opening-draw')).toBe(true);
  });
  test('a fan who kept the heartbeat but is not drawn is caught; one who went quiet is not', () => {
    const missing = [...fans, fan(99, 'ee', [90_000])];
    expect(checkOpening(missing, facts(), rule).map((v) => v.fans)).toEqual([[99]]);
    const quiet = [...fans, fan(98, 'ff', [60_000])];
    expect(checkOpening(quiet, facts(), rule)).toEqual([]);
  });
  test('a later joiner inside the draw, or a commitment that changed, is caught', () => {
    const late = fan(50, '', [], { late: true, ticket: undefined });
    const f = facts({ entries: [...facts().entries.slice(1), { seq: 1, userId: 50 }] });
    expect(checkOpening([...fans, late], f, rule).length).toBeGreaterThan(0);
    expect(checkOpening(fans, facts({ commitment: 'other' }), rule).length).toBe(1);
  });
});
