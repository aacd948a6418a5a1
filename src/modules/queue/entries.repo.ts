import type { Transaction } from 'kysely';
import type { Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';

type Conn = Db | Transaction<Database>;

/**
 * Claims entry numbers of places, in the transaction that records their queue tokens: inserts
 * each waiting entry unless its row exists, and answers who holds each number afterwards
 * (`concertId:seq` → user id). Entry numbers come from Redis in Redis mode and from SQL in SQL mode;
 * around a switch both may hand out the same number (a Redis join whose token was still being
 * written when SQL mode began). Whoever claims the row first keeps the number; the other place
 * is refused before it is acknowledged, so no two fans ever share one.
 */
export async function claimEntries(db: Conn, es: { concertId: number; seq: number; userId: number; now: number }[]): Promise<Map<string, number>> {
  const owners = new Map<string, number>();
  if (es.length === 0) return owners;
  const unique = new Map<string, (typeof es)[number]>();
  for (const e of es) if (!unique.has(`${e.concertId}:${e.seq}`)) unique.set(`${e.concertId}:${e.seq}`, e);
  await db.insertInto('queue_entries').values([...unique.values()].map((e) => ({
    concert_id: e.concertId, seq: e.seq, user_id: e.userId, status: 'waiting' as const, joined_at: e.now,
    admitted_at: null, active_until: null, last_seen_at: e.now, updated_at: e.now,
  }))).onConflict((oc) => oc.columns(['concert_id', 'seq']).doNothing()).execute();
  for (const concertId of new Set(es.map((e) => e.concertId))) {
    const rows = await db.selectFrom('queue_entries').select(['seq', 'user_id']).where('concert_id', '=', concertId)
      .where('seq', 'in', es.filter((e) => e.concertId === concertId).map((e) => e.seq)).execute();
    for (const r of rows) owners.set(`${concertId}:${r.seq}`, r.user_id);
  }
  return owners;
}

/** The highest entry number of a concert that any table knows of (entries, tokens, counters). */
export async function highestSeq(db: Conn, concertId: number, counter: number): Promise<number> {
  const [issued, entered] = await Promise.all([
    db.selectFrom('tokens').select((eb) => eb.fn.max<number | null>('seq').as('m')).where('concert_id', '=', concertId).executeTakeFirst(),
    db.selectFrom('queue_entries').select((eb) => eb.fn.max<number | null>('seq').as('m')).where('concert_id', '=', concertId).executeTakeFirst(),
  ]);
  return Math.max(counter, Number(issued?.m ?? 0), Number(entered?.m ?? 0));
}
