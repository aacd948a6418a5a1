import type { Kysely } from 'kysely';

/*
 * The wait estimate's decayed sums (see src/modules/queue/eta.ts), kept by SQL mode's admission
 * tick as the Redis meta hash keeps them in Redis mode. eta_active: the active count the last
 * tick left behind (null before the first tick).
 */
const SUMS = ['eta_releases', 'eta_slot_seconds', 'eta_positions', 'eta_admissions'];

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations work on the untyped schema */
export async function up(db: Kysely<any>): Promise<void> {
  // One column per statement: SQLite adds a single column per ALTER TABLE.
  for (const col of SUMS) {
    await db.schema.alterTable('queue_state').addColumn(col, 'double precision', (c) => c.notNull().defaultTo(0)).execute();
  }
  await db.schema.alterTable('queue_state').addColumn('eta_active', 'bigint').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const col of [...SUMS, 'eta_active']) await db.schema.alterTable('queue_state').dropColumn(col).execute();
}
