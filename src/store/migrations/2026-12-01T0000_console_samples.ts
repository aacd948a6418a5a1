import type { Kysely } from 'kysely';

/*
 * The operator console's samples while the service runs in SQL mode (in Redis mode they live in
 * Redis, see docs/redis-keys.md): one row per concert per sampling slot, purged past an hour.
 * console_sampler is one row: the last slot an instance claimed, so that one instance of the
 * fleet samples per slot.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- migrations work on the untyped schema */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('console_samples')
    .addColumn('concert_id', 'bigint', (c) => c.notNull())
    .addColumn('slot', 'bigint', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('waiting', 'bigint', (c) => c.notNull())
    .addColumn('active', 'bigint', (c) => c.notNull())
    .addColumn('admitted_total', 'bigint', (c) => c.notNull())
    .addColumn('lag_seconds', 'double precision')
    .addColumn('mode', 'text', (c) => c.notNull())
    /** JSON list of {at, from, to}: the mode changes since the slot before. */
    .addColumn('mode_changes', 'text')
    .addPrimaryKeyConstraint('console_samples_pk', ['concert_id', 'slot'])
    .execute();
  await db.schema.createIndex('console_samples_at').on('console_samples').column('at').execute();
  await db.schema.createTable('console_sampler')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('last_slot', 'bigint', (c) => c.notNull())
    .execute();
  await db.insertInto('console_sampler').values({ id: 1, last_slot: 0 }).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('console_sampler').ifExists().execute();
  await db.schema.dropTable('console_samples').ifExists().execute();
}
