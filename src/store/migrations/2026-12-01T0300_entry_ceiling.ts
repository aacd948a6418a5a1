import type { Kysely } from 'kysely';

/*
 * queue_state.seq_ceiling: the highest entry number Redis mode may give out in a concert,
 * reserved here before Redis uses it (reserveEntryNumbers in src/modules/queue/queue-state.repo.ts).
 * SQL mode and the rebuild number above it, so an entry number Redis gave out is never given again,
 * whether or not its place reached this database yet.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- migrations work on the untyped schema */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('queue_state').addColumn('seq_ceiling', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('queue_state').dropColumn('seq_ceiling').execute();
}
