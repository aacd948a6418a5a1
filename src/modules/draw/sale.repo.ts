import { sql, type Transaction } from 'kysely';
import { errors } from '../../errors.ts';
import { isPostgres, type Db } from '../../store/connect.ts';
import type { Database, PrequeueEntry } from '../../store/schema.ts';
import { markDrawn, rescheduleSale } from '../catalog/catalog.repo.ts';
import { highestSeq, insertWaitingEntries } from '../queue/entries.repo.ts';
import { setLastSeq } from '../queue/queue-state.repo.ts';
import { revokeToken, settleDrawnTokens } from '../tokens/tokens.repo.ts';
import { drawOrder } from './algorithm.ts';

type Conn = Db | Transaction<Database>;

export interface SaleRecord {
  concertId: number;
  saleStartsAt: number | null;
  drawnAt: number | null;
  commitment: string | null;
}

export async function findSale(db: Conn, concertId: number): Promise<SaleRecord | null> {
  const row = await db.selectFrom('concerts').select(['id', 'sale_starts_at', 'drawn_at', 'draw_commitment'])
    .where('id', '=', concertId).executeTakeFirst();
  if (!row) return null;
  return { concertId: row.id, saleStartsAt: row.sale_starts_at, drawnAt: row.drawn_at, commitment: row.draw_commitment };
}

/**
 * Moves a scheduled sale's opening. Only while the current opening is still ahead and nothing
 * was drawn: a passed opening (the draw is due or done) and a concert that opened at creation
 * keep what they have. The check and the change are one conditional UPDATE.
 */
export async function moveSaleStart(db: Db, concertId: number, saleStartsAt: number, now: number): Promise<'moved' | 'passed' | 'unscheduled' | 'unknown'> {
  if (await rescheduleSale(db, concertId, saleStartsAt, now)) return 'moved';
  const sale = await findSale(db, concertId);
  if (!sale) return 'unknown';
  return sale.saleStartsAt === null ? 'unscheduled' : 'passed';
}

/**
 * Records a pre-queued place in the transaction that records its queue token. The concert row is
 * read FOR SHARE (PostgreSQL; SQLite has one writer at a time), so the draw's marker waits for
 * every pre-queue join under way, and a join that comes after it sees the sale drawn and is
 * refused: no fan is pre-queued into a draw that has already been made. A fan already pre-queued
 * keeps the first ticket, whatever nonce a later join sends.
 */
export async function recordPrequeued(trx: Transaction<Database>, p: {
  concertId: number; userId: number; jti: string; ticket: string; now: number;
}): Promise<{ ticket: string; replacedJti: string | null; fresh: boolean } | 'closed'> {
  let q = trx.selectFrom('concerts').select(['sale_starts_at', 'drawn_at']).where('id', '=', p.concertId);
  if (isPostgres(trx)) q = q.forShare();
  const sale = await q.executeTakeFirst();
  if (!sale) throw errors.notFound('concert');
  if (sale.drawn_at !== null || sale.sale_starts_at === null || sale.sale_starts_at <= p.now) return 'closed';
  let existing = trx.selectFrom('prequeue_entries').selectAll().where('concert_id', '=', p.concertId).where('user_id', '=', p.userId);
  if (isPostgres(trx)) existing = existing.forUpdate();
  const row = await existing.executeTakeFirst();
  if (row && row.status === 'waiting') {
    await trx.updateTable('prequeue_entries').set({ jti: p.jti, last_seen_at: p.now })
      .where('concert_id', '=', p.concertId).where('user_id', '=', p.userId).execute();
    return { ticket: row.ticket, replacedJti: row.jti === p.jti ? null : row.jti, fresh: false };
  }
  if (row) {
    // Left or lapsed before: a new place with the new ticket.
    await trx.updateTable('prequeue_entries')
      .set({ jti: p.jti, ticket: p.ticket, status: 'waiting', joined_at: p.now, last_seen_at: p.now, drawn_seq: null })
      .where('concert_id', '=', p.concertId).where('user_id', '=', p.userId).execute();
    return { ticket: p.ticket, replacedJti: row.jti, fresh: true };
  }
  await trx.insertInto('prequeue_entries').values({
    concert_id: p.concertId, user_id: p.userId, ticket: p.ticket, jti: p.jti, status: 'waiting',
    joined_at: p.now, last_seen_at: p.now, drawn_seq: null,
  }).execute();
  return { ticket: p.ticket, replacedJti: null, fresh: true };
}

export function findPrequeued(db: Conn, concertId: number, userId: number): Promise<PrequeueEntry | undefined> {
  return db.selectFrom('prequeue_entries').selectAll().where('concert_id', '=', concertId).where('user_id', '=', userId).executeTakeFirst();
}

/** Ends a pre-queued place (left, or its heartbeat lapsed) and its token, unless the draw already gave it a number. */
export async function endPrequeued(db: Db, p: { concertId: number; userId: number; jti: string; now: number }, status: 'left' | 'lapsed'): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('prequeue_entries').set({ status })
      .where('concert_id', '=', p.concertId).where('user_id', '=', p.userId).where('jti', '=', p.jti)
      .where('status', '=', 'waiting').where('drawn_seq', 'is', null).execute();
    await revokeToken(trx, p.jti, p.now);
  });
}

/** SQL mode's heartbeat of a pre-queued fan. */
export async function touchPrequeued(db: Db, concertId: number, userId: number, now: number): Promise<void> {
  await db.updateTable('prequeue_entries').set({ last_seen_at: now })
    .where('concert_id', '=', concertId).where('user_id', '=', userId).where('status', '=', 'waiting').execute();
}

/**
 * Heartbeats Redis saw (Redis-mode polls never reach SQL): the fans in `userIds` were seen at or
 * after `cutoff`, which is all the draw asks of them.
 */
export async function markSeenSince(db: Db, concertId: number, userIds: number[], cutoff: number): Promise<void> {
  for (let i = 0; i < userIds.length; i += 1000) {
    await db.updateTable('prequeue_entries').set({ last_seen_at: cutoff })
      .where('concert_id', '=', concertId).where('user_id', 'in', userIds.slice(i, i + 1000))
      .where('status', '=', 'waiting').where('last_seen_at', '<', cutoff).execute();
  }
}

export interface DrawResult { drawn: number; base: number; drawnAt: number }

const CHUNK = 500;

/**
 * The draw, exactly once per concert: the marker (`drawn_at`) is a conditional UPDATE in the
 * same transaction that records every drawn entry, so of two instances (or a retry after a
 * failure midway) one commits the whole draw and the others find it made; a transaction that
 * dies leaves nothing behind. Drawn are the fans still pre-queued, with a live token, seen at or
 * after `seenSince` (the heartbeat). Each becomes an ordinary waiting entry numbered after every
 * entry the concert has, in drawn order; their tokens take those numbers; the rest's tokens end.
 * Null when the draw is not due or was already made.
 */
export async function recordDraw(db: Db, concertId: number, now: number, seenSince: number): Promise<DrawResult | null> {
  return db.transaction().execute(async (trx) => {
    if (!(await markDrawn(trx, concertId, now))) return null;
    const concert = await trx.selectFrom('concerts').select(['draw_seed']).where('id', '=', concertId).executeTakeFirstOrThrow();
    let stateQ = trx.selectFrom('queue_state').select(['last_seq', 'seq_ceiling']).where('concert_id', '=', concertId);
    if (isPostgres(trx)) stateQ = stateQ.forUpdate();
    const state = await stateQ.executeTakeFirstOrThrow();
    const fans = await trx.selectFrom('prequeue_entries as p').innerJoin('tokens as t', 't.jti', 'p.jti')
      .select(['p.user_id', 'p.ticket', 'p.jti', 'p.joined_at'])
      .where('p.concert_id', '=', concertId).where('p.status', '=', 'waiting').where('p.last_seen_at', '>=', seenSince)
      .where('t.revoked_at', 'is', null).where('t.expires_at', '>', now)
      .execute();
    const byTicket = new Map(fans.map((f) => [f.ticket, f]));
    const order = drawOrder(concert.draw_seed ?? '', fans.map((f) => f.ticket));
    const base = await highestSeq(trx, concertId, Math.max(state.last_seq, state.seq_ceiling));
    for (let i = 0; i < order.length; i += CHUNK) {
      const rows = order.slice(i, i + CHUNK).map((ticket, k) => ({ fan: byTicket.get(ticket)!, seq: base + i + k + 1 }));
      await insertWaitingEntries(trx, concertId, rows.map(({ fan, seq }) => ({ seq, userId: fan.user_id, joinedAt: fan.joined_at })), now);
      // Each fan's number, 100 at a time: a CASE of 100 arms per row stays cheap on SQLite, where a
      // correlated subquery per row picked a range scan and went quadratic.
      for (let j = 0; j < rows.length; j += 100) {
        const part = rows.slice(j, j + 100);
        const numbers = sql.join(part.map(({ fan, seq }) => sql`WHEN ${fan.user_id} THEN CAST(${seq} AS BIGINT)`), sql` `);
        await trx.updateTable('prequeue_entries').set({ drawn_seq: sql<number>`CASE user_id ${numbers} END` })
          .where('concert_id', '=', concertId).where('user_id', 'in', part.map((r) => r.fan.user_id)).execute();
      }
    }
    // Tokens take their entry numbers; the tokens of fans the draw left out end here.
    await settleDrawnTokens(trx, concertId, now);
    await setLastSeq(trx, concertId, base + order.length);
    return { drawn: order.length, base, drawnAt: now };
  });
}

/** The published draw: the seed once drawn, and the tickets in drawn order. */
export async function drawRecord(db: Db, concertId: number) {
  const concert = await db.selectFrom('concerts').select(['draw_seed', 'draw_commitment', 'drawn_at', 'sale_starts_at'])
    .where('id', '=', concertId).executeTakeFirst();
  if (!concert) return null;
  if (concert.drawn_at === null) return { drawn: false as const, saleStartsAt: concert.sale_starts_at };
  const rows = await db.selectFrom('prequeue_entries').select('ticket')
    .where('concert_id', '=', concertId).where('drawn_seq', 'is not', null).orderBy('drawn_seq').execute();
  return {
    drawn: true as const, seed: concert.draw_seed!, commitment: concert.draw_commitment!, drawnAt: concert.drawn_at,
    tickets: rows.map((r) => r.ticket),
  };
}

/** Drawn fans whose place is still waiting with a live token, in entry order: what Redis must hold. */
export function drawnPlaces(db: Db, concertId: number, afterSeq: number, limit: number, now: number) {
  return db.selectFrom('prequeue_entries as p').innerJoin('tokens as t', 't.jti', 'p.jti')
    .innerJoin('queue_entries as e', (j) => j.onRef('e.concert_id', '=', 'p.concert_id').onRef('e.seq', '=', 'p.drawn_seq'))
    .select(['p.user_id', 'p.jti', 'p.drawn_seq'])
    .where('p.concert_id', '=', concertId).where('p.drawn_seq', '>', afterSeq)
    .where('e.status', '=', 'waiting').where('t.revoked_at', 'is', null).where('t.expires_at', '>', now)
    .orderBy('p.drawn_seq').limit(limit).execute();
}

/** Concerts whose sale opening has come and whose draw is not recorded yet. */
export async function dueDraws(db: Db, now: number): Promise<number[]> {
  const rows = await db.selectFrom('concerts').select('id')
    .where('drawn_at', 'is', null).where('sale_starts_at', '<=', now).where('ends_at', '>', now).execute();
  return rows.map((r) => r.id);
}
