import type { Kysely } from 'kysely';

/*
 * A scheduled sale with a verifiable draw (docs/architecture.md, "Scheduled sale"):
 * - concerts.sale_starts_at: when the line opens (null: open from creation, no draw);
 *   draw_seed: the secret the draw is made from, revealed once drawn; draw_commitment: lowercase
 *   hex SHA-256 of the seed, public from creation; drawn_at: set in the transaction that records
 *   the drawn order, exactly once.
 * - prequeue_entries: one row per fan who joined before the sale opened, with the draw ticket,
 *   the queue token id that holds the place, the last heartbeat SQL knows of, and the entry
 *   number the draw gave (null before the draw, or for a fan it left out).
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- migrations work on the untyped schema */
export async function up(db: Kysely<any>): Promise<void> {
  // One column per statement: SQLite adds a single column per ALTER TABLE.
  await db.schema.alterTable('concerts').addColumn('sale_starts_at', 'bigint').execute();
  await db.schema.alterTable('concerts').addColumn('draw_seed', 'text').execute();
  await db.schema.alterTable('concerts').addColumn('draw_commitment', 'text').execute();
  await db.schema.alterTable('concerts').addColumn('drawn_at', 'bigint').execute();
  await db.schema.createTable('prequeue_entries')
    .addColumn('concert_id', 'bigint', (c) => c.notNull())
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('ticket', 'text', (c) => c.notNull())
    .addColumn('jti', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('joined_at', 'bigint', (c) => c.notNull())
    .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
    .addColumn('drawn_seq', 'bigint')
    .addPrimaryKeyConstraint('prequeue_entries_pk', ['concert_id', 'user_id'])
    .execute();
  await db.schema.createIndex('prequeue_entries_ticket').on('prequeue_entries').columns(['concert_id', 'ticket']).unique().execute();
  await db.schema.createIndex('prequeue_entries_jti').on('prequeue_entries').column('jti').execute();
  await db.schema.createIndex('prequeue_entries_drawn').on('prequeue_entries').columns(['concert_id', 'drawn_seq']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('prequeue_entries').execute();
  for (const col of ['sale_starts_at', 'draw_seed', 'draw_commitment', 'drawn_at']) {
    await db.schema.alterTable('concerts').dropColumn(col).execute();
  }
}
