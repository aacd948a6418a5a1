/**
 * The invariants of ARCHITECTURE.md "Promises", as pure functions over a history (history.ts)
 * and the SQL facts read once the service has settled. Nothing here does I/O, so every rule
 * is unit-tested on small hand-made histories (tests/chaos-checker.test.ts).
 *
 * An operation whose answer is a 503 or that got no answer (status 0) is indeterminate: it may
 * or may not have happened. A rule only excuses what the contract excuses, and treats an
 * indeterminate operation in the way that excuses more (a leave that got no answer may have
 * left; a payment that got no answer may have spent the queue token).
 */
import {
  formatOp, indeterminate, type CrashRecord, type FaultRecord, type History, type HistoryOp, type ReadySample, type TokenFacts,
} from './history.ts';

export const INVARIANTS = {
  'sold-once': '1. no seat sold twice (SQL and history)',
  'payments-durable': '1. every payment answered 201 is in SQL',
  'ledger': '1. balance = sum of the ledger, never negative',
  'paid-stays-paid': '2. a paid reservation reads paid, its seat sold, forever',
  'places-kept': '3. an acknowledged place keeps its entry number until left, lapsed, spent or timed out',
  'admission-order': '4. admissions follow entry order (history)',
  'admission-order-sql': '4b. admissions follow entry order (SQL admitted_at, secondary)',
  'active-bound': '5. never more than maxActive certainly-active users per concert',
  'holds-kept': '6. a hold stays its holder\'s until paid, released or expired',
  'no-5xx': '7. no 5xx other than 503 UNAVAILABLE with Retry-After',
  'readiness': '8. /readyz answers 200 or 503 within 2 s',
  'no-lockout': '9. a join retried with the token it was made with is answered, never 401, within the replay window, nor refused for the challenge it already showed',
  'ticket-cap': '10. never more than MAX_TICKETS_PER_USER seats of a concert sold to one user (SQL)',
  'opening-draw': '11. a scheduled sale\'s drawn order is the published one, recomputes from its seed, and places every pre-queued fan who kept the heartbeat ahead of later joiners',
  'one-number': '12. an entry number of a concert is acknowledged to one user, never to two',
} as const;
export type InvariantName = keyof typeof INVARIANTS;

export interface CheckConfig {
  /** QUEUE_GRACE_SECONDS in ms. */
  graceMs: number;
  /** Taken off the grace before a silent place counts as possibly lapsed. */
  graceMarginMs: number;
  /** Slack around times the service sent (expiresAt, activeUntil). */
  clockMarginMs: number;
  /** DEFAULT_ACTIVE_TTL_SECONDS in ms. */
  activeTtlMs: number;
  /** maxActive of each concert. */
  maxActive: Record<number, number>;
  /** Longest a /readyz may take. */
  readyzMaxMs: number;
  /** JOIN_REPLAY_SECONDS in ms: how long a join may be retried with the user token it replaced. */
  replayMs: number;
  /** MAX_TICKETS_PER_USER, and the concert of each schedule, for the ticket cap. */
  maxTickets: number;
  concertOfSchedule: Record<number, number>;
}

export interface SqlFacts {
  payments: { id: string; reservationId: string; userId: number; scheduleId: number; seatNumber: number }[];
  users: { id: number; balance: number; ledgerSum: number }[];
  /** admittedAt on the run's axis (ms), null when never admitted. */
  queueEntries: { concertId: number; seq: number; userId: number; status: string; admittedAtMs: number | null }[];
}

export interface Violation {
  invariant: InvariantName;
  message: string;
  fans: number[];
  /** The operations that show it, in time order. */
  opIds: number[];
  /** Violations with the same group are one finding seen several times (merged by check()). */
  group?: string;
}

/** Keeps the first of each group, noting how often and until when it was seen, with its last op. */
export function mergeGroups(violations: Violation[], history: History): Violation[] {
  const byId = new Map(history.ops.map((o) => [o.id, o]));
  const out: Violation[] = [];
  const firstOf = new Map<string, { v: Violation; n: number; lastOp?: number }>();
  for (const v of violations) {
    if (!v.group) { out.push(v); continue; }
    const seen = firstOf.get(v.group);
    if (!seen) {
      const copy = { ...v, opIds: [...v.opIds] };
      firstOf.set(v.group, { v: copy, n: 1 });
      out.push(copy);
      continue;
    }
    seen.n++;
    seen.lastOp = v.opIds[v.opIds.length - 1];
  }
  for (const { v, n, lastOp } of firstOf.values()) {
    if (n === 1) continue;
    const last = lastOp === undefined ? undefined : byId.get(lastOp);
    v.message += ` (seen ${n} times${last ? `, last at ${(last.invokeMs / 1000).toFixed(3)}s by #${last.id}` : ''})`;
    if (lastOp !== undefined && !v.opIds.includes(lastOp)) v.opIds.push(lastOp);
  }
  return out;
}

export interface CheckResult {
  violations: Violation[];
  counts: Record<InvariantName, number>;
  stats: { places: number; holds: number; payments: number; polls: number };
}

const INF = Number.POSITIVE_INFINITY;
const uniq = <T>(xs: T[]) => [...new Set(xs)];
const ok2xx = (o: HistoryOp) => o.status >= 200 && o.status < 300;

// ---------------------------------------------------------------------------------------------
// Places (invariants 3, 4, 5)

export interface Place {
  key: string;
  cid: number;
  userId: number;
  fan: number;
  seq: number;
  /** The first join answered 200/201 that handed it out. */
  ackOp: HistoryOp;
  /** Every op carrying one of its tokens (polls, leaves, holds, pays, ...) and every join that returned it, by invoke time. */
  ops: HistoryOp[];
  /** When the contract stops promising it (left, spent, lapsed, timed out), on the run's axis. */
  endMs: number;
  endWhy: string;
}

const placeKey = (cid: number, userId: number, seq: number) => `${cid}:${userId}:${seq}`;
const tokenPlaceKey = (t: TokenFacts | undefined) =>
  t && t.typ === 'queue' && t.cid !== undefined && t.seq !== undefined ? placeKey(t.cid, t.sub, t.seq) : undefined;

/** Is this op a heartbeat of its place (it certainly reached the service and found the place)? */
const isHeartbeat = (o: HistoryOp) => (o.op === 'poll' && o.status === 200) || (o.op === 'join' && (o.status === 200 || o.status === 201));
const answeredStatus = (o: HistoryOp) => o.res?.status;
/** A poll with one of the place's tokens, or a join that answered with the place. */
const aboutPlace = (o: HistoryOp, key: string) =>
  (o.op === 'poll' && tokenPlaceKey(o.auth) === key) || (o.op === 'join' && ok2xx(o) && tokenPlaceKey(o.res?.token) === key);

export function buildPlaces(history: History, cfg: CheckConfig): Map<string, Place> {
  const places = new Map<string, Place>();
  const sorted = [...history.ops].sort((a, b) => a.invokeMs - b.invokeMs || a.id - b.id);
  for (const o of sorted) {
    if (o.op !== 'join' || (o.status !== 200 && o.status !== 201)) continue;
    const key = tokenPlaceKey(o.res?.token);
    if (!key || places.has(key)) continue;
    const t = o.res!.token!;
    places.set(key, { key, cid: t.cid!, userId: t.sub, fan: o.fan, seq: t.seq!, ackOp: o, ops: [], endMs: INF, endWhy: '' });
  }
  for (const o of sorted) {
    const key = o.op === 'join' && ok2xx(o) ? tokenPlaceKey(o.res?.token) : tokenPlaceKey(o.auth);
    const place = key ? places.get(key) : undefined;
    if (place) place.ops.push(o);
    // A join with a queue token of another concert gives that place up: it belongs to both lists.
    if (o.op === 'join') {
      const given = tokenPlaceKey(o.auth);
      if (given && given !== key) places.get(given)?.ops.push(o);
    }
  }
  for (const p of places.values()) {
    const end = (ms: number, why: string) => {
      if (ms < p.endMs) { p.endMs = ms; p.endWhy = why; }
    };
    const mine = (o: HistoryOp) => tokenPlaceKey(o.auth) === p.key;
    for (const o of p.ops) {
      if (o.op === 'leave' && mine(o) && (ok2xx(o) || indeterminate(o))) end(o.invokeMs, `left (#${o.id})`);
      // A payment spends the queue token: answered 201, or perhaps (no answer, 503).
      if (o.op === 'pay' && mine(o) && (o.status === 201 || indeterminate(o))) end(o.invokeMs, `spent by a payment (#${o.id})`);
      if (o.op === 'join' && mine(o) && o.req?.concertId !== undefined && o.req.concertId !== p.cid) {
        end(o.invokeMs, `given up by joining concert ${o.req.concertId} (#${o.id})`);
      }
    }
    // Lapse: the place was silent (no heartbeat) longer than the grace allows.
    const allowance = cfg.graceMs - cfg.graceMarginMs;
    let lastBeat = p.ackOp.completeMs;
    let lapsed = false;
    for (const o of p.ops) {
      if (!aboutPlace(o, p.key)) continue;
      if (o.invokeMs - lastBeat > allowance) {
        end(lastBeat + allowance, `possibly lapsed: no heartbeat from ${(lastBeat / 1000).toFixed(3)}s for more than the grace`);
        lapsed = true;
        break;
      }
      if (isHeartbeat(o)) lastBeat = Math.max(lastBeat, o.completeMs);
    }
    if (!lapsed) end(lastBeat + allowance, 'possibly lapsed after its last heartbeat');
    // Active time: the activeUntil the service gave, or the earliest it could be if the
    // admission went unseen (admitted no earlier than the last poll that still saw it waiting).
    const activeUntil = Math.min(INF, ...p.ops.map((o) => o.res?.activeUntilMs ?? INF));
    if (activeUntil < INF) end(activeUntil - cfg.clockMarginMs, 'active time ran out');
    else {
      const lastWaiting = Math.max(p.ackOp.invokeMs, ...p.ops.filter((o) => answeredStatus(o) === 'waiting').map((o) => o.invokeMs));
      end(lastWaiting + cfg.activeTtlMs - cfg.clockMarginMs, 'active time may have run out (admission unseen)');
    }
    const tokenExp = p.ackOp.res?.token?.expMs ?? INF;
    end(tokenExp - cfg.clockMarginMs, 'queue token expired');
  }
  return places;
}

/**
 * When the token an op carried may have been replaced: any later join by its user (a join
 * rotates the queue token and revokes the token it was made with), a poll that handed out a
 * fresh token, or its expiry.
 */
function tokenRevocations(history: History): (o: HistoryOp) => number {
  const joinsByUser = new Map<number, HistoryOp[]>();
  const issuedBy = new Map<string, HistoryOp>();
  const refreshedAt = new Map<string, number>();
  for (const o of history.ops) {
    if (o.op === 'join') (joinsByUser.get(o.userId) ?? joinsByUser.set(o.userId, []).get(o.userId)!).push(o);
    if (o.res?.token && (o.op === 'join' || o.op === 'token' || o.op === 'poll')) {
      if (!issuedBy.has(o.res.token.jti)) issuedBy.set(o.res.token.jti, o);
      if (o.op === 'poll' && o.auth && o.res.token.jti !== o.auth.jti) {
        refreshedAt.set(o.auth.jti, Math.min(refreshedAt.get(o.auth.jti) ?? INF, o.invokeMs));
      }
    }
  }
  return (o: HistoryOp) => {
    const t = o.auth;
    if (!t) return INF;
    const issued = issuedBy.get(t.jti);
    const from = issued ? issued.invokeMs : -INF;
    let at = Math.min(refreshedAt.get(t.jti) ?? INF, t.expMs);
    for (const j of joinsByUser.get(t.sub) ?? []) {
      if (j !== issued && j.invokeMs > from && j.invokeMs < at) at = j.invokeMs;
    }
    return at;
  };
}

export function checkPlaces(history: History, places: Map<string, Place>, cfg: CheckConfig): Violation[] {
  const out: Violation[] = [];
  const revokedAt = tokenRevocations(history);
  // Joins of a user in a concert, to find a join that handed out another entry number while a place was live.
  const joinsOf = new Map<string, HistoryOp[]>();
  for (const o of history.ops) {
    if (o.op !== 'join' || !ok2xx(o) || o.res?.token?.seq === undefined) continue;
    const k = `${o.res.token.cid}:${o.userId}`;
    (joinsOf.get(k) ?? joinsOf.set(k, []).get(k)!).push(o);
  }
  for (const p of places.values()) {
    let firstActive: HistoryOp | undefined;
    const problems: { op: HistoryOp; problem: string; activeRef?: HistoryOp }[] = [];
    for (const o of p.ops) {
      if (!aboutPlace(o, p.key)) continue;
      const excused = o.completeMs > p.endMs || (o.op === 'poll' && o.completeMs > revokedAt(o));
      if (o.op === 'join') {
        if (answeredStatus(o) === 'active' && !firstActive) firstActive = o;
        continue;
      }
      if (excused || indeterminate(o)) continue;
      let problem: string | undefined;
      let activeRef: HistoryOp | undefined;
      if (o.status === 200) {
        const s = answeredStatus(o);
        if (s !== 'waiting' && s !== 'active') problem = `poll answered status ${JSON.stringify(s)}`;
        else if (o.res?.concertId !== undefined && o.res.concertId !== p.cid) problem = `poll answered concert ${o.res.concertId}`;
        else if (s === 'waiting' && firstActive && firstActive.completeMs < o.invokeMs) {
          problem = `place went back from active (#${firstActive.id}) to waiting`;
          activeRef = firstActive;
        }
        if (s === 'active' && !firstActive) firstActive = o;
      } else if (o.status === 401) {
        problem = 'poll answered 401 on a live place';
      } else {
        problem = `poll answered ${o.status} ${o.code}`;
      }
      if (problem) problems.push({ op: o, problem, ...(activeRef ? { activeRef } : {}) });
    }
    // A join by the same user in the same concert that answered another entry number while
    // this place was live: the place was dropped (201, a new entry) or another one came back (200).
    for (const j of joinsOf.get(`${p.cid}:${p.userId}`) ?? []) {
      const seq = j.res!.token!.seq!;
      if (seq === p.seq || p.ackOp.completeMs >= j.invokeMs || p.endMs <= j.completeMs) continue;
      problems.push({
        op: j,
        problem: `a join by the same user answered ${j.status} with entry ${seq}${seq < p.seq ? ' (an older place came back)' : ' (a new place)'} while this place was live`,
      });
    }
    if (problems.length === 0) continue;
    problems.sort((a, b) => a.op.invokeMs - b.op.invokeMs);
    const first = problems[0]!;
    const last = problems[problems.length - 1]!;
    const lastBeat = [...p.ops].reverse().find((b) => aboutPlace(b, p.key) && isHeartbeat(b) && b.completeMs < first.op.invokeMs);
    const more = problems.length > 1
      ? ` (${problems.length} contradicting answers up to ${(last.op.invokeMs / 1000).toFixed(3)}s; last: ${last.problem})` : '';
    out.push({
      invariant: 'places-kept',
      message: `place c${p.cid} seq ${p.seq} of user ${p.userId} (acknowledged by #${p.ackOp.id}, promised until ${p.endMs === INF ? 'the end' : `${(p.endMs / 1000).toFixed(3)}s: ${p.endWhy}`}): ${first.problem}${more}`,
      fans: [p.fan],
      opIds: uniq([p.ackOp.id, ...(lastBeat ? [lastBeat.id] : []), ...(first.activeRef ? [first.activeRef.id] : []), first.op.id,
        ...(problems.length > 1 ? [last.op.id] : [])]),
    });
  }
  return out;
}

/**
 * Invariant 12: entry numbers are never given twice, whichever store numbered them (Redis gives
 * out only numbers SQL reserved for it, SQL mode numbers above them) and whether or not the first
 * holder still holds it. Pre-queue tokens carry 0 until the draw: not a number yet.
 */
export function checkOneNumber(places: Map<string, Place>): Violation[] {
  const holders = new Map<string, Place[]>();
  for (const p of places.values()) {
    if (p.seq <= 0) continue;
    const k = `${p.cid}:${p.seq}`;
    (holders.get(k) ?? holders.set(k, []).get(k)!).push(p);
  }
  const out: Violation[] = [];
  for (const ps of holders.values()) {
    const users = uniq(ps.map((p) => p.userId));
    if (users.length < 2) continue;
    const byTime = [...ps].sort((a, b) => a.ackOp.invokeMs - b.ackOp.invokeMs);
    out.push({
      invariant: 'one-number',
      message: `entry ${byTime[0]!.seq} of concert ${byTime[0]!.cid} acknowledged to users ${users.join(', ')} (${byTime.map((p) => `#${p.ackOp.id}`).join(', ')})`,
      fans: uniq(byTime.map((p) => p.fan)),
      opIds: byTime.map((p) => p.ackOp.id),
    });
  }
  return out;
}

/** Invariant 4 over the history: a live place with a lower entry number seen waiting after a higher one was seen active. */
export function checkAdmissionOrder(places: Map<string, Place>): Violation[] {
  const out: Violation[] = [];
  const byConcert = new Map<number, Place[]>();
  for (const p of places.values()) (byConcert.get(p.cid) ?? byConcert.set(p.cid, []).get(p.cid)!).push(p);
  for (const list of byConcert.values()) {
    // First observation of each place as active, in time order, with the running max of seq.
    const actives: { at: number; seq: number; op: HistoryOp; place: Place }[] = [];
    for (const p of list) {
      const first = p.ops.filter((o) => ok2xx(o) && aboutPlace(o, p.key) && answeredStatus(o) === 'active').sort((a, b) => a.completeMs - b.completeMs)[0];
      if (first) actives.push({ at: first.completeMs, seq: p.seq, op: first, place: p });
    }
    actives.sort((a, b) => a.at - b.at);
    const prefixBest: typeof actives = [];
    for (const a of actives) {
      const prev = prefixBest[prefixBest.length - 1];
      prefixBest.push(prev && prev.seq >= a.seq ? prev : a);
    }
    const bestBefore = (t: number) => {
      let lo = 0, hi = actives.length; // first index with at >= t
      while (lo < hi) { const mid = (lo + hi) >> 1; if (actives[mid]!.at < t) lo = mid + 1; else hi = mid; }
      return lo === 0 ? undefined : prefixBest[lo - 1];
    };
    for (const b of list) {
      for (const o of b.ops) {
        if (o.op !== 'poll' || o.status !== 200 || answeredStatus(o) !== 'waiting' || tokenPlaceKey(o.auth) !== b.key) continue;
        if (o.completeMs > b.endMs) continue;
        const a = bestBefore(o.invokeMs);
        if (!a || a.seq <= b.seq) continue;
        out.push({
          invariant: 'admission-order',
          message: `concert ${b.cid}: entry ${a.seq} (user ${a.place.userId}) was seen active at ${(a.at / 1000).toFixed(3)}s, then live entry ${b.seq} (user ${b.userId}) was still waiting`,
          fans: uniq([a.place.fan, b.fan]),
          opIds: uniq([b.ackOp.id, a.place.ackOp.id, a.op.id, o.id]).sort((x, y) => x - y),
        });
        break;
      }
    }
  }
  return out;
}

export function checkAdmissionOrderSql(sql: SqlFacts, clockMarginMs = 0): Violation[] {
  const out: Violation[] = [];
  const byConcert = new Map<number, SqlFacts['queueEntries']>();
  for (const e of sql.queueEntries) {
    if (e.admittedAtMs === null) continue;
    (byConcert.get(e.concertId) ?? byConcert.set(e.concertId, []).get(e.concertId)!).push(e);
  }
  for (const [cid, entries] of byConcert) {
    entries.sort((a, b) => a.seq - b.seq);
    let latest: SqlFacts['queueEntries'][number] | undefined;
    for (const e of entries) {
      if (latest && e.admittedAtMs! + clockMarginMs < latest.admittedAtMs!) {
        out.push({
          invariant: 'admission-order-sql',
          message: `concert ${cid}: SQL says entry ${e.seq} (user ${e.userId}) was admitted at ${(e.admittedAtMs! / 1000).toFixed(3)}s, before entry ${latest.seq} (user ${latest.userId}) at ${(latest.admittedAtMs! / 1000).toFixed(3)}s`,
          fans: [], opIds: [],
        });
      }
      if (!latest || e.admittedAtMs! > latest.admittedAtMs!) latest = e;
    }
  }
  return out;
}

/** Invariant 5: intervals in which a place was certainly active, swept per concert. */
export function checkActiveBound(places: Map<string, Place>, cfg: CheckConfig): Violation[] {
  const out: Violation[] = [];
  const byConcert = new Map<number, { start: number; end: number; place: Place; first: HistoryOp; last: HistoryOp }[]>();
  for (const p of places.values()) {
    let run: { first: HistoryOp; last: HistoryOp } | undefined;
    const close = () => {
      if (run && run.first.completeMs < run.last.invokeMs) {
        const list = byConcert.get(p.cid) ?? byConcert.set(p.cid, []).get(p.cid)!;
        list.push({ start: run.first.completeMs, end: run.last.invokeMs, place: p, first: run.first, last: run.last });
      }
      run = undefined;
    };
    for (const o of p.ops) {
      if (!aboutPlace(o, p.key) || indeterminate(o)) continue;
      if (ok2xx(o) && answeredStatus(o) === 'active') {
        if (run) run.last = o; else run = { first: o, last: o };
      } else close();
    }
    close();
  }
  for (const [cid, intervals] of byConcert) {
    const max = cfg.maxActive[cid];
    if (max === undefined) continue;
    const events = intervals.flatMap((iv, i) => [{ t: iv.start, d: 1, i }, { t: iv.end, d: -1, i }]);
    events.sort((a, b) => a.t - b.t || a.d - b.d);
    const open = new Set<number>();
    let inExcess = false;
    for (const e of events) {
      if (e.d < 0) { open.delete(e.i); if (open.size <= max) inExcess = false; continue; }
      open.add(e.i);
      if (open.size > max && !inExcess) {
        inExcess = true;
        const set = [...open].map((i) => intervals[i]!);
        out.push({
          invariant: 'active-bound',
          message: `concert ${cid}: ${open.size} places certainly active at ${(e.t / 1000).toFixed(3)}s, maxActive ${max}: ` +
            set.map((iv) => `seq ${iv.place.seq} [${(iv.start / 1000).toFixed(3)}s, ${(iv.end / 1000).toFixed(3)}s]`).join(', '),
          fans: uniq(set.map((iv) => iv.place.fan)),
          opIds: set.flatMap((iv) => [iv.first.id, iv.last.id]).sort((a, b) => a - b),
        });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Holds and payments (invariants 1, 2, 6)

interface Hold {
  op: HistoryOp;
  reservationId: string;
  userId: number;
  scheduleId: number;
  seatNumber: number;
  expiresAtMs: number;
  /** First release of it that may have happened (204, 503, no answer): its invocation. */
  releaseInvokeMs: number;
  /** Completion of its payment answered 201. */
  paidMs: number;
}

function buildHolds(history: History): Hold[] {
  const holds = new Map<string, Hold>();
  for (const o of history.ops) {
    // A 200 is the acknowledgement of a hold whose first answer (201) was lost: it counts too.
    if (o.op !== 'hold' || (o.status !== 201 && o.status !== 200) || !o.res?.reservationId || holds.has(o.res.reservationId)) continue;
    holds.set(o.res.reservationId, {
      op: o, reservationId: o.res.reservationId, userId: o.userId,
      scheduleId: o.req?.scheduleId ?? o.res.scheduleId ?? -1, seatNumber: o.req?.seatNumber ?? o.res.seatNumber ?? -1,
      expiresAtMs: o.res.expiresAtMs ?? INF, releaseInvokeMs: INF, paidMs: INF,
    });
  }
  for (const o of history.ops) {
    const h = o.req?.reservationId ? holds.get(o.req.reservationId) : undefined;
    if (!h) continue;
    if (o.op === 'release' && (ok2xx(o) || indeterminate(o))) h.releaseInvokeMs = Math.min(h.releaseInvokeMs, o.invokeMs);
    if (o.op === 'pay' && o.status === 201) h.paidMs = Math.min(h.paidMs, o.completeMs);
  }
  return [...holds.values()];
}

export function checkHolds(history: History, cfg: CheckConfig): Violation[] {
  const out: Violation[] = [];
  const holds = buildHolds(history);
  const byId = new Map(holds.map((h) => [h.reservationId, h]));
  // End of the promise, for another hold of the seat: paid = never; else release or expiry.
  const endOf = (h: Hold) => (h.paidMs < INF ? INF : Math.min(h.expiresAtMs - cfg.clockMarginMs, h.releaseInvokeMs));
  const bySeat = new Map<string, Hold[]>();
  for (const h of holds) {
    const k = `${h.scheduleId}:${h.seatNumber}`;
    (bySeat.get(k) ?? bySeat.set(k, []).get(k)!).push(h);
  }
  for (const [seat, list] of bySeat) {
    list.sort((a, b) => a.op.invokeMs - b.op.invokeMs);
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i]!, b = list[j]!;
        // No order of the two holds fits: each was acknowledged before the other's promise ended.
        if (b.op.completeMs < endOf(a) && a.op.completeMs < endOf(b)) {
          out.push({
            invariant: 'holds-kept',
            message: `seat ${seat} (schedule:seat) held twice: ${a.reservationId} (user ${a.userId}, until ${(a.expiresAtMs / 1000).toFixed(3)}s) and ${b.reservationId} (user ${b.userId}) both answered 201`,
            fans: uniq([a.op.fan, b.op.fan]), opIds: [a.op.id, b.op.id],
          });
        }
      }
    }
  }
  for (const o of history.ops) {
    const h = o.req?.reservationId ? byId.get(o.req.reservationId) : undefined;
    if (h && o.invokeMs > h.op.completeMs && o.invokeMs < h.expiresAtMs - cfg.clockMarginMs && o.completeMs < h.releaseInvokeMs) {
      if (o.op === 'pay' && o.userId === h.userId && ['HOLD_EXPIRED', 'SEAT_UNAVAILABLE', 'NOT_FOUND'].includes(o.code ?? '')) {
        out.push({
          invariant: 'holds-kept',
          message: `payment of live hold ${h.reservationId} (until ${(h.expiresAtMs / 1000).toFixed(3)}s, not released) answered ${o.status} ${o.code}`,
          fans: [o.fan], opIds: [h.op.id, o.id], group: `hold-pay:${h.reservationId}`,
        });
      }
      if (o.op === 'readRes' && o.userId === h.userId) {
        const bad = (o.status === 200 && o.res?.status !== 'held' && o.res?.status !== 'paid') || o.status === 404 || o.status === 403;
        if (bad) {
          out.push({
            invariant: 'holds-kept',
            message: `read of live hold ${h.reservationId} (until ${(h.expiresAtMs / 1000).toFixed(3)}s, not released) answered ${o.status === 200 ? `status ${o.res?.status}` : `${o.status} ${o.code}`}`,
            fans: [o.fan], opIds: [h.op.id, o.id], group: `hold-read:${h.reservationId}`,
          });
        }
      }
    }
  }
  // A seat map read wholly inside a hold's promise must not show the seat available.
  for (const o of history.ops) {
    if (o.op !== 'seats' || o.status !== 200 || !o.res?.seatMap || o.req?.scheduleId === undefined) continue;
    for (const h of holds) {
      if (h.scheduleId !== o.req.scheduleId || o.res.seatMap[h.seatNumber - 1] !== 'a') continue;
      if (o.invokeMs > h.op.completeMs && o.completeMs < endOf(h) && h.paidMs === INF) {
        out.push({
          invariant: 'holds-kept',
          message: `seat map read shows seat ${h.seatNumber} of schedule ${h.scheduleId} available while hold ${h.reservationId} is live`,
          fans: uniq([h.op.fan, o.fan]), opIds: [h.op.id, o.id], group: `hold-map:${h.reservationId}`,
        });
      }
    }
  }
  return out;
}

export function checkPaidStaysPaid(history: History): Violation[] {
  const out: Violation[] = [];
  const paid = new Map<string, HistoryOp>();
  for (const o of history.ops) {
    if (o.op === 'pay' && o.status === 201 && o.req?.reservationId && !paid.has(o.req.reservationId)) paid.set(o.req.reservationId, o);
  }
  const seatOf = new Map<string, { scheduleId: number; seatNumber: number }>();
  for (const o of history.ops) {
    if (o.op === 'hold' && o.status === 201 && o.res?.reservationId && o.req?.scheduleId !== undefined && o.req.seatNumber !== undefined) {
      seatOf.set(o.res.reservationId, { scheduleId: o.req.scheduleId, seatNumber: o.req.seatNumber });
    }
  }
  const finalOk = new Set<string>();
  const finalSeen = new Map<string, HistoryOp>();
  for (const o of history.ops) {
    if (o.op !== 'readRes' || !o.req?.reservationId) continue;
    const p = paid.get(o.req.reservationId);
    if (!p) continue;
    if (o.phase === 'final') {
      finalSeen.set(p.req!.reservationId!, o);
      if (o.status === 200 && o.res?.status === 'paid') finalOk.add(p.req!.reservationId!);
    }
    if (o.invokeMs <= p.completeMs || indeterminate(o)) continue;
    if (o.status === 200 && o.res?.status === 'paid') continue;
    // 401 says nothing about the reservation: the token the fan used may have been replaced.
    if (o.status === 401) continue;
    out.push({
      invariant: 'paid-stays-paid',
      message: `reservation ${p.req!.reservationId} paid (#${p.id}, 201) then read ${o.status === 200 ? `status ${o.res?.status}` : `${o.status} ${o.code}`}`,
      fans: uniq([p.fan, o.fan]), opIds: [p.id, o.id], group: `paid-read:${p.req!.reservationId}`,
    });
  }
  for (const [rid, p] of paid) {
    if (finalOk.has(rid)) continue;
    const last = finalSeen.get(rid);
    out.push({
      invariant: 'paid-stays-paid',
      message: `reservation ${rid} paid (#${p.id}, 201): the final read after healing ${last ? `answered ${last.status === 200 ? `status ${last.res?.status}` : `${last.status} ${last.code}`}` : 'never answered'}`,
      fans: [p.fan], opIds: last ? [p.id, last.id] : [p.id],
    });
  }
  for (const o of history.ops) {
    if (o.op !== 'seats' || o.status !== 200 || !o.res?.seatMap || o.req?.scheduleId === undefined) continue;
    for (const [rid, p] of paid) {
      const seat = seatOf.get(rid);
      if (!seat || seat.scheduleId !== o.req.scheduleId || o.invokeMs <= p.completeMs) continue;
      const letter = o.res.seatMap[seat.seatNumber - 1];
      if (letter !== 's') {
        out.push({
          invariant: 'paid-stays-paid',
          message: `seat ${seat.seatNumber} of schedule ${seat.scheduleId} sold by ${rid} (#${p.id}) then read ${letter === 'a' ? 'available' : letter === 'h' ? 'held' : `"${letter}"`} in a seat map`,
          fans: uniq([p.fan, o.fan]), opIds: [p.id, o.id], group: `paid-map:${rid}`,
        });
      }
    }
  }
  return out;
}

export function checkMoney(history: History, sql: SqlFacts): Violation[] {
  const out: Violation[] = [];
  const bySeat = new Map<string, SqlFacts['payments']>();
  for (const p of sql.payments) {
    const k = `${p.scheduleId}:${p.seatNumber}`;
    (bySeat.get(k) ?? bySeat.set(k, []).get(k)!).push(p);
  }
  for (const [seat, list] of bySeat) {
    if (list.length > 1) {
      out.push({
        invariant: 'sold-once', fans: [], opIds: [],
        message: `SQL has ${list.length} payments for seat ${seat} (schedule:seat): ${list.map((p) => `${p.id} (reservation ${p.reservationId}, user ${p.userId})`).join(', ')}`,
      });
    }
  }
  const seatOfHold = new Map<string, string>();
  for (const o of history.ops) {
    if (o.op === 'hold' && o.status === 201 && o.res?.reservationId) seatOfHold.set(o.res.reservationId, `${o.req?.scheduleId}:${o.req?.seatNumber}`);
  }
  const paysBySeat = new Map<string, HistoryOp[]>();
  for (const o of history.ops) {
    if (o.op !== 'pay' || o.status !== 201 || !o.req?.reservationId) continue;
    const seat = o.req.scheduleId !== undefined ? `${o.req.scheduleId}:${o.req.seatNumber}` : seatOfHold.get(o.req.reservationId);
    if (!seat) continue;
    (paysBySeat.get(seat) ?? paysBySeat.set(seat, []).get(seat)!).push(o);
  }
  for (const [seat, pays] of paysBySeat) {
    const reservations = uniq(pays.map((p) => p.req!.reservationId!));
    if (reservations.length > 1) {
      out.push({
        invariant: 'sold-once', fans: uniq(pays.map((p) => p.fan)), opIds: pays.map((p) => p.id),
        message: `seat ${seat} (schedule:seat) answered 201 to payments of ${reservations.length} reservations: ${reservations.join(', ')}`,
      });
    }
  }
  const inSql = new Set(sql.payments.map((p) => p.id));
  for (const o of history.ops) {
    if (o.op === 'pay' && o.status === 201 && o.res?.paymentId && !inSql.has(o.res.paymentId)) {
      out.push({
        invariant: 'payments-durable', fans: [o.fan], opIds: [o.id],
        message: `payment ${o.res.paymentId} of reservation ${o.req?.reservationId} answered 201 but is not in SQL`,
      });
    }
  }
  for (const u of sql.users) {
    if (u.balance !== u.ledgerSum || u.balance < 0) {
      out.push({
        invariant: 'ledger', fans: [], opIds: [],
        message: `user ${u.id}: balance ${u.balance}, ledger sums to ${u.ledgerSum}`,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Answers (invariants 7, 8)

export function checkErrors(history: History): Violation[] {
  const out: Violation[] = [];
  for (const o of history.ops) {
    if (o.status < 500) continue;
    if (o.status === 503 && o.code === 'UNAVAILABLE' && o.retryAfter) continue;
    out.push({
      invariant: 'no-5xx', fans: [o.fan], opIds: [o.id],
      message: `${o.op} answered ${o.status} ${o.code}${o.retryAfter ? '' : ' without Retry-After'}${o.error ? `: ${o.error}` : ''}`,
    });
  }
  return out;
}

export function checkReadiness(samples: ReadySample[], maxMs: number, crashes: CrashRecord[] = []): Violation[] {
  const out: Violation[] = [];
  for (const c of crashes) {
    const lines = c.logTail.split('\n');
    // Bun prints an uncaught error as "error: <message>"; else the last line that names an error.
    const cause = (lines.filter((l) => /^\s*(error|panic|uncaught)\b/i.test(l)).slice(-1)[0] ??
      lines.filter((l) => /error|panic|exception/i.test(l)).slice(-1)[0])?.trim().slice(0, 200);
    out.push({
      invariant: 'readiness', fans: [], opIds: [],
      message: `app${c.instance} exited unexpectedly at ${(c.atMs / 1000).toFixed(3)}s (${c.how})${cause ? `: ${cause}` : ''}; restarted ${c.restartedMs === null ? 'never' : `at ${(c.restartedMs / 1000).toFixed(3)}s`}`,
    });
  }
  const open = new Map<number, Violation>();
  for (const s of [...samples].sort((a, b) => a.invokeMs - b.invokeMs)) {
    const slow = s.completeMs - s.invokeMs > maxMs;
    let problem: string | undefined;
    if (s.status >= 500 && s.status !== 503) problem = `answered ${s.status}`;
    else if (!s.expectedDown && (s.status === 0 || slow)) {
      problem = s.status === 0 ? 'no answer' : `answered ${s.status} after ${Math.round(s.completeMs - s.invokeMs)} ms`;
    }
    if (!problem) { open.delete(s.instance); continue; }
    const current = open.get(s.instance);
    if (current) { current.message += `; ${(s.invokeMs / 1000).toFixed(3)}s ${problem}`; continue; }
    const v: Violation = {
      invariant: 'readiness', fans: [], opIds: [],
      message: `app${s.instance} /readyz at ${(s.invokeMs / 1000).toFixed(3)}s ${problem}`,
    };
    open.set(s.instance, v);
    out.push(v);
  }
  return out;
}

/** Seats sold per user and concert, from SQL's payments: at most MAX_TICKETS_PER_USER, across rejoins. */
export function checkTicketCap(sql: SqlFacts, cfg: CheckConfig): Violation[] {
  const sold = new Map<string, number>();
  for (const p of sql.payments) {
    const cid = cfg.concertOfSchedule[p.scheduleId];
    if (cid === undefined) continue;
    const k = `${p.userId}:${cid}`;
    sold.set(k, (sold.get(k) ?? 0) + 1);
  }
  const out: Violation[] = [];
  for (const [k, n] of sold) {
    if (n <= cfg.maxTickets) continue;
    const [userId, cid] = k.split(':');
    out.push({ invariant: 'ticket-cap', fans: [], opIds: [], message: `user ${userId} bought ${n} seats of concert ${cid} (cap ${cfg.maxTickets})` });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Retries (invariant 9)

/**
 * A client whose join answer was lost (or that submitted twice) retries with the token it
 * sent; the contract answers it with the same place for JOIN_REPLAY_SECONDS. A 401 to such a
 * retry locks the fan out of the place the first join may have made. Excused: a retry after
 * the window, after the token's own expiry, or late enough that the place the first join made
 * may have lapsed or timed out (the replay then has nothing to give back).
 */
export function checkNoLockout(history: History, cfg: CheckConfig): Violation[] {
  const out: Violation[] = [];
  const joinsByToken = new Map<string, HistoryOp[]>();
  for (const o of history.ops) {
    if (o.op !== 'join' || !o.auth) continue;
    (joinsByToken.get(o.auth.jti) ?? joinsByToken.set(o.auth.jti, []).get(o.auth.jti)!).push(o);
  }
  const placeLife = Math.min(cfg.graceMs, cfg.activeTtlMs) - cfg.graceMarginMs;
  for (const joins of joinsByToken.values()) {
    joins.sort((a, b) => a.invokeMs - b.invokeMs);
    for (const j of joins) {
      if (j.status !== 401 || j.auth!.typ !== 'user') continue;
      const first = joins.find((o) => o.invokeMs < j.invokeMs && o.status !== 401 && (indeterminate(o) || ok2xx(o)));
      if (!first) continue;
      const since = j.invokeMs - first.invokeMs;
      if (since > cfg.replayMs - cfg.clockMarginMs || since > placeLife) continue;
      if (j.invokeMs > j.auth!.expMs - cfg.clockMarginMs) continue;
      out.push({
        invariant: 'no-lockout', fans: [j.fan], opIds: [first.id, j.id], group: `lockout:${j.fan}`,
        message: `join retried ${(since / 1000).toFixed(1)} s after #${first.id} (${first.status || first.code}) with the same user token answered 401`,
      });
    }
    // JOIN_POW_BITS: a challenge is spent by the join that showed it, and that join's retry (same
    // token, same challenge) may show it again while it lives. Refusing it would lock the fan out.
    for (const j of joins) {
      if (j.status !== 400 || j.code !== 'CHALLENGE_FAILED' || !j.req?.challenge) continue;
      if (j.req.challengeExpiresMs !== undefined && j.invokeMs > j.req.challengeExpiresMs - cfg.clockMarginMs) continue;
      const first = joins.find((o) => o.invokeMs < j.invokeMs && o.req?.challenge === j.req!.challenge && o.code !== 'CHALLENGE_FAILED');
      if (!first) continue;
      out.push({
        invariant: 'no-lockout', fans: [j.fan], opIds: [first.id, j.id], group: `lockout:${j.fan}`,
        message: `join retried after #${first.id} (${first.status || first.code}) with the same token and challenge answered CHALLENGE_FAILED`,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

export function check(history: History, sql: SqlFacts, cfg: CheckConfig): CheckResult {
  const places = buildPlaces(history, cfg);
  const violations = mergeGroups([
    ...checkMoney(history, sql),
    ...checkPaidStaysPaid(history),
    ...checkPlaces(history, places, cfg),
    ...checkAdmissionOrder(places),
    ...checkOneNumber(places),
    ...checkAdmissionOrderSql(sql),
    ...checkActiveBound(places, cfg),
    ...checkHolds(history, cfg),
    ...checkErrors(history),
    ...checkReadiness(history.ready, cfg.readyzMaxMs, history.crashes),
    ...checkNoLockout(history, cfg),
    ...checkTicketCap(sql, cfg),
  ], history);
  const counts = Object.fromEntries(Object.keys(INVARIANTS).map((k) => [k, 0])) as Record<InvariantName, number>;
  for (const v of violations) counts[v.invariant]++;
  return {
    violations, counts,
    stats: {
      places: places.size,
      holds: history.ops.filter((o) => o.op === 'hold' && o.status === 201).length,
      payments: history.ops.filter((o) => o.op === 'pay' && o.status === 201).length,
      polls: history.ops.filter((o) => o.op === 'poll').length,
    },
  };
}

/** The shortest slice that shows a violation: its ops, and the faults overlapping them. */
export function sliceOf(v: Violation, history: History, padMs = 1_000): { ops: HistoryOp[]; faults: FaultRecord[]; lines: string[] } {
  const ids = new Set(v.opIds);
  const ops = history.ops.filter((o) => ids.has(o.id)).sort((a, b) => a.invokeMs - b.invokeMs);
  if (ops.length === 0) return { ops, faults: [], lines: [] };
  const from = Math.min(...ops.map((o) => o.invokeMs)) - padMs;
  const to = Math.max(...ops.map((o) => o.completeMs)) + padMs;
  const faults = history.faults.filter((f) => f.startMs <= to && f.healMs >= from);
  return { ops, faults, lines: ops.map(formatOp) };
}
