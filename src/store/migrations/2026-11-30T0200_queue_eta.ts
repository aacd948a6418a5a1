import type { Kysely } from 'kysely';

/*
 * The wait estimate's state (src/modules/queue/eta.ts), kept by SQL mode's admission tick as the
 * Redis meta hash keeps it in Redis mode: eta_state (JSON of EtaState, null before the first
 * tick), and the two numbers a poll reads, eta_mean_hold (seconds, null before the first tick)
 * and eta_spread (entry numbers passed per admission).
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- migrations work on the untyped schema */
export async function up(db: Kysely<any>): Promise<void> {
  // One column per statement: SQLite adds a single column per ALTER TABLE.
  await db.schema.alterTable('queue_state').addColumn('eta_state', 'text').execute();
  await db.schema.alterTable('queue_state').addColumn('eta_mean_hold', 'double precision').execute();
  await db.schema.alterTable('queue_state').addColumn('eta_spread', 'double precision', (c) => c.notNull().defaultTo(1)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const col of ['eta_state', 'eta_mean_hold', 'eta_spread']) await db.schema.alterTable('queue_state').dropColumn(col).execute();
}
