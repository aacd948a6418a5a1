import { sql, type Transaction } from 'kysely';
import { errors } from '../../errors.ts';
import { assertRedisMode } from '../../resilience/sql-fence.ts';
import { isPostgres, type Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';
import type { QueueConfig } from './types.ts';

type Conn = Db | Transaction<Database>;

/** A new concert's counter row, every counter at 0 and the queue open. */
export async function insertQueueState(trx: Transaction<Database>, concertId: number,
  defaults: { maxActive: number; admitPerSecond: number; activeTtlSeconds: number }): Promise<void> {
  await trx.insertInto('queue_state').values({
    concert_id: concertId, last_seq: 0, last_admitted_seq: 0, admitted_total: 0,
    max_active: defaults.maxActive, admit_per_second: defaults.admitPerSecond,
    active_ttl_seconds: defaults.activeTtlSeconds, paused: 0, last_tick: 0,
  }).execute();
}

export async function setQueueConfig(db: Conn, concertId: number, config: QueueConfig): Promise<void> {
  await db.updateTable('queue_state').set({
    max_active: config.maxActive, admit_per_second: config.admitPerSecond,
    active_ttl_seconds: config.activeTtlSeconds, paused: config.paused ? 1 : 0,
  }).where('concert_id', '=', concertId).execute();
}

/** The highest entry number given out. */
export async function setLastSeq(trx: Transaction<Database>, concertId: number, lastSeq: number): Promise<void> {
  await trx.updateTable('queue_state').set({ last_seq: lastSeq }).where('concert_id', '=', concertId).execute();
}

/**
 * Reserves entry numbers for Redis mode: the concert's ceiling goes up to `upTo` (never down),
 * and the ceiling SQL then has is returned. Redis gives out no number above the ceiling it was
 * told (joinQueue), and is told only after this commits; SQL mode, the draw and the rebuild number
 * above it. So a number Redis gave out is never given to anyone else, even when its place had not
 * reached SQL when the fleet switched stores. Refused (503) once the fleet has left Redis mode.
 */
export async function reserveEntryNumbers(db: Db, concertId: number, upTo: number): Promise<number> {
  return db.transaction().execute(async (trx) => {
    await assertRedisMode(trx);
    await trx.updateTable('queue_state')
      .set({ seq_ceiling: sql`CASE WHEN seq_ceiling < ${upTo} THEN ${upTo} ELSE seq_ceiling END` })
      .where('concert_id', '=', concertId).execute();
    const row = await trx.selectFrom('queue_state').select('seq_ceiling').where('concert_id', '=', concertId).executeTakeFirst();
    if (!row) throw errors.notFound('concert');
    return Number(row.seq_ceiling);
  });
}

/**
 * A concert's queue_state row, locked until commit (PostgreSQL; SQLite runs one writer at a
 * time): what serialises the concert's joins, admission ticks and adoptions in SQL.
 */
export async function lockQueueState(trx: Transaction<Database>, concertId: number) {
  let q = trx.selectFrom('queue_state').selectAll().where('concert_id', '=', concertId);
  if (isPostgres(trx)) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) throw errors.notFound('concert');
  return row;
}

/** Moves the entry counters up to what the stream reports, never down. */
export async function raiseQueueCounters(trx: Transaction<Database>, concertId: number, maxSeq: number, maxAdmitted: number): Promise<void> {
  await trx.updateTable('queue_state')
    .set({
      last_seq: sql`CASE WHEN last_seq < ${maxSeq} THEN ${maxSeq} ELSE last_seq END`,
      last_admitted_seq: sql`CASE WHEN last_admitted_seq < ${maxAdmitted} THEN ${maxAdmitted} ELSE last_admitted_seq END`,
    })
    .where('concert_id', '=', concertId).execute();
}

export async function addAdmittedTotal(trx: Transaction<Database>, concertId: number, admitted: number): Promise<void> {
  await trx.updateTable('queue_state').set({ admitted_total: sql`admitted_total + ${admitted}` })
    .where('concert_id', '=', concertId).execute();
}

/** The admission tick taken (ticks are taken once, in order). */
export async function setLastTick(trx: Transaction<Database>, concertId: number, tickId: number): Promise<void> {
  await trx.updateTable('queue_state').set({ last_tick: tickId }).where('concert_id', '=', concertId).execute();
}

export interface EtaFields { eta_state: string; eta_mean_hold: number | null; eta_spread: number }

/** The wait estimate's state after a tick that admitted no one (the queue is paused). */
export async function setEtaState(trx: Transaction<Database>, concertId: number, eta: EtaFields): Promise<void> {
  await trx.updateTable('queue_state').set(eta).where('concert_id', '=', concertId).execute();
}

/** What a tick admitted: the line's new front, the running total and the wait estimate's state. */
export async function recordAdmissions(trx: Transaction<Database>, concertId: number,
  a: { lastAdmittedSeq: number; admittedTotal: number; eta: EtaFields }): Promise<void> {
  await trx.updateTable('queue_state')
    .set({ last_admitted_seq: a.lastAdmittedSeq, admitted_total: a.admittedTotal, ...a.eta })
    .where('concert_id', '=', concertId).execute();
}
