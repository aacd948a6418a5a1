import type { Kysely } from 'kysely';

/*
 * Proof-of-work challenges already used for a join (src/modules/pow/): one row per challenge,
 * naming the join that spent it. The key makes the single-use check one statement; the sweeper
 * drops rows once their challenge could no longer be accepted anyway (keep_until).
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- migrations work on the untyped schema */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('spent_challenges')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('spent_by', 'text', (c) => c.notNull())
    .addColumn('keep_until', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('spent_challenges_keep_until').on('spent_challenges').column('keep_until').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('spent_challenges').ifExists().execute();
}
