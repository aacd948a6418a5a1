import { errors } from '../../errors.ts';
import type { Transaction } from 'kysely';
import type { Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';
import { claimEntries } from '../queue/entries.repo.ts';
import { givenBack, holdJoinClaims, insertJoinClaims, isGivenBack, takeOverJoinClaim } from './join-replays.repo.ts';
import { insertTokens, queueTokenRecords, revokeTokens, type TokenRow } from './tokens.repo.ts';

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
