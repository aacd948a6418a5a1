import { errors } from '../../errors.ts';
import type { Transaction } from 'kysely';
import type { Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';
import { claimEntries } from '../queue/entries.repo.ts';
import { givenBack, holdJoinClaims, insertJoinClaims, isGivenBack, takeOverJoinClaim } from './join-replays.repo.ts';
import { insertToken, insertTokens, queueTokenRecords, revokeQueueToken, revokeTokens, type TokenRow } from './tokens.repo.ts';
import type { StreamTokenRecord } from '../../redis/codecs.ts';
import type { UnrecordedPlace } from '../queue/types.ts';

/**
 * What a queue token's record says, before it is recorded. `issuedAt` is the join claim's time
 * (ClaimedJoin), the same for every copy of the join: the record's created_at, the token's iat.
 */
export type QueueTokenFacts = { userId: number; jti: string; concertId: number; seq: number; issuedAt: number; expiresAt: number };

/** One join's record for the group commit: its token, the tokens it replaces, its claim. */
export interface TokenRecord { p: QueueTokenFacts; replaced: string[]; now: number; claim?: { srcJti: string } }

/** A recorded token's times, or the Error that refused its join. */
export type RecordAnswer = { createdAt: number; expiresAt: number } | Error;

/** A check run first in the transaction (SQL mode's fence). */
type Fence = (trx: Transaction<Database>) => Promise<void>;

/**
 * Records the queue tokens of many joins in one transaction, each with its own answer: a join
 * that must be refused writes nothing and gets its 503, the others are recorded. The checks
 * are those of a join alone, made before anything of the join is written: its claim still
 * names its token id (a refused copy did not give it back); the id is new or names this very
 * place, live; the entry number is free or this user's.
 */
export async function recordQueueTokens(db: Db, items: TokenRecord[], fence?: Fence): Promise<RecordAnswer[]> {
  try {
    return await recordOnce(db, items, fence);
  } catch (err) {
    // Another writer of the same entry rows (the write-behind applying these very joins) may
    // have locked them in another order: PostgreSQL breaks the tie by failing one side. The
    // batch wrote nothing: once more.
    if ((err as { code?: string }).code !== '40P01') throw err;
    return recordOnce(db, items, fence);
  }
}

async function recordOnce(db: Db, items: TokenRecord[], fence?: Fence): Promise<RecordAnswer[]> {
  return db.transaction().execute(async (trx) => {
    // SQL mode records a place only while the fleet is in SQL mode (see assertSqlMode).
    if (fence) await fence(trx);
    const out: ({ createdAt: number; expiresAt: number } | Error | undefined)[] = items.map(() => undefined);
    // A claim made in Redis has no row yet: it is written here, with its token (a claim made in
    // SQL has one already, and keeps it).
    const claimRows = items.flatMap((it) => (it.claim
      ? [{ srcJti: it.claim.srcJti, concertId: it.p.concertId, queueJti: it.p.jti, userId: it.p.userId, now: it.now }] : []));
    await insertJoinClaims(trx, claimRows);
    const claims = await holdJoinClaims(trx, claimRows.map((c) => c.srcJti));
    for (const [i, it] of items.entries()) {
      if (!it.claim) continue;
      const key = `${it.p.concertId}:${it.claim.srcJti}`;
      const claimed = claims.get(key);
      // Another attempt's claim that it gave back: this one takes the row over.
      if (claimed !== undefined && isGivenBack(claimed) && claimed !== givenBack(it.p.jti)
        && (await takeOverJoinClaim(trx, { srcJti: it.claim.srcJti, concertId: it.p.concertId, queueJti: it.p.jti, userId: it.p.userId, now: it.now }, claimed))) {
        claims.set(key, it.p.jti);
        continue;
      }
      // A refused copy of this join gave the claim back (and is ending the place), or the claim
      // names another id (the retry takes that one): refuse.
      if (claimed !== it.p.jti) out[i] = errors.unavailable('this join was refused while a copy of it was under way; join again', 1);
    }
    const recordOk = (r: TokenRow | undefined, it: TokenRecord) => !!r && r.user_id === it.p.userId
      && r.concert_id === it.p.concertId && r.seq === it.p.seq && r.revoked_at === null && r.expires_at > it.now;
    // The id names another (ended) place of this user: refuse, so that the retry claims a new id.
    const changed = () => errors.unavailable('your place in line changed while joining; join again', 1);
    const pending = () => items.flatMap((it, i) => (out[i] === undefined ? [i] : []));
    const before = await queueTokenRecords(trx, pending().map((i) => items[i]!.p.jti));
    for (const i of pending()) {
      const r = before.get(items[i]!.p.jti);
      if (r && !recordOk(r, items[i]!)) out[i] = changed();
    }
    // In entry order, as the write-behind mostly writes them, so that neither waits on the other crosswise.
    const entries = pending().map((i) => ({ ...items[i]!.p, now: items[i]!.now }))
      .sort((a, b) => a.concertId - b.concertId || a.seq - b.seq);
    const owners = await claimEntries(trx, entries);
    for (const i of pending()) {
      if (owners.get(`${items[i]!.p.concertId}:${items[i]!.p.seq}`) !== items[i]!.p.userId) {
        out[i] = errors.unavailable('that place in line was taken while the service switched stores; join again', 1);
      }
    }
    const toRecord = pending().map((i) => items[i]!).sort((a, b) => (a.p.jti < b.p.jti ? -1 : a.p.jti > b.p.jti ? 1 : 0));
    await insertTokens(trx, toRecord.map((it) => ({
      jti: it.p.jti, userId: it.p.userId, typ: 'queue' as const, concertId: it.p.concertId, seq: it.p.seq, expiresAt: it.p.expiresAt, now: it.p.issuedAt,
    })));
    const after = await queueTokenRecords(trx, toRecord.map((it) => it.p.jti));
    const revoked = new Set<string>();
    let at = 0;
    for (const i of pending()) {
      const it = items[i]!;
      const r = after.get(it.p.jti);
      if (!r || !recordOk(r, it)) {
        out[i] = changed();
        continue;
      }
      for (const j of it.replaced) if (j !== it.p.jti) revoked.add(j);
      at = Math.max(at, it.now);
      out[i] = { createdAt: r.created_at, expiresAt: r.expires_at };
    }
    await revokeTokens(trx, [...revoked], at);
    return out as ({ createdAt: number; expiresAt: number } | Error)[];
  });
}

/**
 * Records a queue token SQL has no row for yet (a join's record written behind, or a place taken
 * back by adoptPlace), keeping one place per user per concert: another live token of the user in
 * this concert at a higher entry number holds a later place, so this token is recorded revoked
 * (it stays refused whatever becomes of that place); one at a lower number held the earlier place
 * this join replaced, and is revoked; one at the same number shares the place. A pre-queued token
 * (number 0) is ordered by issue time, a tie counting against this token (iat has whole seconds).
 * The entry row is the caller's. True when the token is recorded live.
 */
export async function recordLateQueueToken(trx: Transaction<Database>, p: UnrecordedPlace, now: number): Promise<boolean> {
  const others = await trx.selectFrom('tokens').select(['jti', 'seq', 'created_at'])
    .where('typ', '=', 'queue').where('user_id', '=', p.userId).where('concert_id', '=', p.concertId)
    .where('revoked_at', 'is', null).where('expires_at', '>', now).where('jti', '!=', p.jti)
    .execute();
  const rivals = others.filter((o) => o.seq !== p.seq);
  if (rivals.some((o) => holdsLaterPlace(o, p))) {
    await revokeQueueToken(trx, p, now);
    return false;
  }
  if (rivals.length) await revokeTokens(trx, rivals.map((o) => o.jti), now);
  await insertToken(trx, {
    jti: p.jti, userId: p.userId, typ: 'queue', concertId: p.concertId, seq: p.seq, expiresAt: p.expiresAt, now: p.issuedAt,
  });
  return true;
}

/** Another live queue token of the user in the concert. */
type Rival = { jti: string; seq: number | null; created_at: number };

/** Whether `o` holds a later place than `p`: a higher entry number; a pre-queued token (0) by issue time, a tie against `p`. */
function holdsLaterPlace(o: Rival, p: UnrecordedPlace): boolean {
  return o.seq !== null && o.seq > 0 ? o.seq > p.seq : o.created_at >= p.issuedAt;
}

/** A join's queue token as a concert's write-behind stream carries it (see joinQueue). */
export interface StreamedToken { userId: number; seq: number; time: number; token: StreamTokenRecord }

/**
 * The first half of recording streamed tokens, inside the transaction that applies a batch of one
 * concert's stream (applyEvents), before its entry rows: the joins' claim rows (written if
 * missing) locked in one order, as the join's own record takes them (recordQueueTokens), so that
 * neither waits on the other crosswise. The claims as they stand.
 */
export async function holdStreamedClaims(trx: Transaction<Database>, concertId: number, ts: StreamedToken[]): Promise<Map<string, string>> {
  const rows = ts.filter((t) => t.token.srcJti !== '').map((t) => ({
    srcJti: t.token.srcJti, concertId, queueJti: t.token.jti, userId: t.userId, now: t.token.issuedAt,
  }));
  await insertJoinClaims(trx, rows);
  return holdJoinClaims(trx, rows.map((r) => r.srcJti));
}

/**
 * The second half, after the batch's entry rows: each token SQL has no row for is recorded under
 * the rules its join's own record keeps (recordQueueTokens), adapted to a join Redis has already
 * acknowledged: its claim names it (a claim given back by another attempt, or naming an id whose
 * token was never recorded, is taken over; one given back by a refused copy of this join refuses
 * it; one naming another recorded token, an attempt in SQL mode that was made too, stays), its
 * entry number is its user's, and no later place of the user (recordLateQueueToken). A refused
 * token is recorded revoked, so that no adoption brings its place back. A join that was made
 * revokes what it replaced (the spent user token, the queue token it replaced), even when SQL
 * already knows its token (taken back, or revoked by a leave that outran its record), which is
 * otherwise left as it is.
 */
export async function recordStreamedTokens(trx: Transaction<Database>, concertId: number, ts: StreamedToken[],
  claims: Map<string, string>, now: number): Promise<void> {
  if (ts.length === 0) return;
  // Known to SQL, or met earlier in the batch (a copy changes nothing).
  const seen = new Set((await queueTokenRecords(trx, ts.map((t) => t.token.jti))).keys());
  // Claims naming another id: made by an attempt in SQL mode (its claim is in SQL, this one's was
  // in Redis). Only a recorded token of that id means that attempt was made too.
  const elsewhere = ts.map((t) => [claims.get(`${concertId}:${t.token.srcJti}`), t.token.jti] as const)
    .flatMap(([c, own]) => (c !== undefined && c !== own && !isGivenBack(c) ? [c] : []));
  const recordedElsewhere = new Set((await queueTokenRecords(trx, elsewhere)).keys());
  const replaced: string[] = [];
  const refused: UnrecordedPlace[] = [];
  const claimed: UnrecordedPlace[] = [];
  let lastJoin = 0;
  for (const t of ts) {
    const r = t.token;
    const key = `${concertId}:${r.srcJti}`;
    // What the join replaced, once its claim names this token: the join was made, whatever
    // becomes of its token (a known one too: a leave or a payment that outran the record).
    const itReplaced = [r.replacedJti, r.replacesSrc ? r.srcJti : null].filter((j): j is string => !!j && j !== r.jti);
    if (seen.has(r.jti)) {
      const claim = claims.get(key);
      if (claim === r.jti || (claim !== undefined && recordedElsewhere.has(claim))) replaced.push(...itReplaced);
      continue;
    }
    seen.add(r.jti);
    const place: UnrecordedPlace = { concertId, userId: t.userId, jti: r.jti, seq: t.seq, issuedAt: r.issuedAt, expiresAt: r.expiresAt };
    let claim = r.srcJti === '' ? r.jti : claims.get(key);
    // A claim given back by another attempt, or naming an id whose token was never recorded (an
    // attempt that failed before it was acknowledged), is taken over.
    if (claim !== undefined && claim !== r.jti && claim !== givenBack(r.jti) && (isGivenBack(claim) || !recordedElsewhere.has(claim))
      && (await takeOverJoinClaim(trx, { srcJti: r.srcJti, concertId, queueJti: r.jti, userId: t.userId, now: r.issuedAt }, claim))) {
      claim = r.jti;
      claims.set(key, r.jti);
    }
    // Given back by a refused copy of this very join: refused. Naming another recorded token:
    // both joins were made, and one place per user per concert (below) orders them.
    if (claim === undefined || (claim !== r.jti && !recordedElsewhere.has(claim))) {
      refused.push(place);
      continue;
    }
    replaced.push(...itReplaced);
    lastJoin = Math.max(lastJoin, t.time);
    claimed.push(place);
  }
  // The entry numbers, in one statement: each must be its user's.
  const owners = await claimEntries(trx, claimed.map((p) => ({ concertId, seq: p.seq, userId: p.userId, now: p.issuedAt })));
  const owned: UnrecordedPlace[] = [];
  for (const p of claimed) (owners.get(`${concertId}:${p.seq}`) === p.userId ? owned : refused).push(p);
  // One place per user per concert (the rule of recordLateQueueToken), in stream order over the
  // users' live tokens in SQL and those this batch records.
  const live = new Map<number, Rival[]>();
  const users = [...new Set(owned.map((p) => p.userId))];
  for (let i = 0; i < users.length; i += CHUNK) {
    const rows = await trx.selectFrom('tokens').select(['jti', 'user_id', 'seq', 'created_at'])
      .where('typ', '=', 'queue').where('concert_id', '=', concertId).where('user_id', 'in', users.slice(i, i + CHUNK))
      .where('revoked_at', 'is', null).where('expires_at', '>', now).execute();
    for (const r of rows) (live.get(r.user_id) ?? live.set(r.user_id, []).get(r.user_id)!).push(r);
  }
  const recorded: UnrecordedPlace[] = [];
  const ended: string[] = [];
  for (const p of owned) {
    const others = (live.get(p.userId) ?? []).filter((o) => o.jti !== p.jti);
    const rivals = others.filter((o) => o.seq !== p.seq);
    if (rivals.some((o) => holdsLaterPlace(o, p))) {
      refused.push(p);
      continue;
    }
    ended.push(...rivals.map((o) => o.jti));
    live.set(p.userId, [...others.filter((o) => o.seq === p.seq), { jti: p.jti, seq: p.seq, created_at: p.issuedAt }]);
    recorded.push(p);
  }
  for (let i = 0; i < recorded.length; i += CHUNK) {
    await insertTokens(trx, recorded.slice(i, i + CHUNK).map((p) => ({
      jti: p.jti, userId: p.userId, typ: 'queue' as const, concertId, seq: p.seq, expiresAt: p.expiresAt, now: p.issuedAt,
    })));
  }
  for (let i = 0; i < ended.length; i += CHUNK) await revokeTokens(trx, ended.slice(i, i + CHUNK), now);
  for (let i = 0; i < replaced.length; i += CHUNK) await revokeTokens(trx, replaced.slice(i, i + CHUNK), lastJoin || now);
  for (const p of refused) await revokeQueueToken(trx, p, now);
}

/** Rows per multi-row statement here (SQLite binds every value). */
const CHUNK = 100;
