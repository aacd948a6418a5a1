import type { Kysely } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations work on the untyped schema */
export async function up(db: Kysely<any>): Promise<void> {
  // One row per (token a join was made with, concert): the queue token that join issued. Every
  // double-submit and every retry of that join reads the same row, so they all get one token.
  await db.schema.createTable('join_replays')
    .addColumn('src_jti', 'text', (c) => c.notNull())
    .addColumn('concert_id', 'bigint', (c) => c.notNull())
    .addColumn('queue_jti', 'text', (c) => c.notNull())
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('join_replays_pk', ['src_jti', 'concert_id'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('join_replays').ifExists().execute();
}
