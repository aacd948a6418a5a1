import { sql, type Kysely } from 'kysely';
import { isPostgres } from '../connect.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations work on the untyped schema */
export async function up(db: Kysely<any>): Promise<void> {
  const pg = isPostgres(db);
  const serial = pg ? 'bigserial' : 'integer';
  const id = (b: any) => (pg ? b.primaryKey() : b.primaryKey().autoIncrement());

  await db.schema.createTable('users')
    .addColumn('id', 'bigint', (c) => c.primaryKey())
    .addColumn('balance', 'bigint', (c) => c.notNull().defaultTo(0).check(sql`balance >= 0`))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema.createTable('ledger')
    .addColumn('id', serial, id)
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id'))
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('ref', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('ledger_user').on('ledger').column('user_id').execute();

  await db.schema.createTable('concerts')
    .addColumn('id', serial, id)
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('starts_at', 'bigint', (c) => c.notNull())
    .addColumn('ends_at', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema.createTable('schedules')
    .addColumn('id', serial, id)
    .addColumn('concert_id', 'bigint', (c) => c.notNull().references('concerts.id'))
    .addColumn('date', 'bigint', (c) => c.notNull())
    .addColumn('capacity', 'integer', (c) => c.notNull())
    .addColumn('price', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('schedules_concert').on('schedules').column('concert_id').execute();

  await db.schema.createTable('seats')
    .addColumn('schedule_id', 'bigint', (c) => c.notNull().references('schedules.id'))
    .addColumn('seat_number', 'integer', (c) => c.notNull())
    .addColumn('concert_id', 'bigint', (c) => c.notNull())
    .addColumn('price', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('available'))
    .addColumn('hold_reservation_id', 'text')
    .addColumn('hold_user_id', 'bigint')
    .addColumn('hold_expires_at', 'bigint')
    .addPrimaryKeyConstraint('seats_pk', ['schedule_id', 'seat_number'])
    .execute();

  await db.schema.createTable('reservations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('concert_id', 'bigint', (c) => c.notNull())
    .addColumn('schedule_id', 'bigint', (c) => c.notNull())
    .addColumn('seat_number', 'integer', (c) => c.notNull())
    .addColumn('price', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('reservations_user').on('reservations').columns(['user_id', 'status']).execute();
  await db.schema.createIndex('reservations_seat').on('reservations').columns(['schedule_id', 'seat_number']).execute();

  await db.schema.createTable('payments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('reservation_id', 'text', (c) => c.notNull().unique())
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id'))
    .addColumn('concert_id', 'bigint', (c) => c.notNull())
    .addColumn('schedule_id', 'bigint', (c) => c.notNull())
    .addColumn('seat_number', 'integer', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  // The last line of defence: one seat is paid for at most once, whatever Redis said.
  await db.schema.createIndex('payments_one_sale_per_seat').on('payments')
    .columns(['schedule_id', 'seat_number']).unique().execute();

  await db.schema.createTable('tokens')
    .addColumn('jti', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('typ', 'text', (c) => c.notNull())
    .addColumn('concert_id', 'bigint')
    .addColumn('seq', 'bigint')
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('tokens_user').on('tokens').columns(['user_id', 'typ']).execute();
  // Queue tokens are written through with their entry number: SQL mode numbers new entries
  // after the highest one any token carries, even if the write-behind stream lagged.
  await db.schema.createIndex('tokens_concert_seq').on('tokens').columns(['concert_id', 'seq']).execute();

  await db.schema.createTable('queue_entries')
    .addColumn('concert_id', 'bigint', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('joined_at', 'bigint', (c) => c.notNull())
    .addColumn('admitted_at', 'bigint')
    .addColumn('active_until', 'bigint')
    .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('queue_entries_pk', ['concert_id', 'seq'])
    .execute();
  await db.schema.createIndex('queue_entries_user').on('queue_entries').columns(['concert_id', 'user_id']).execute();
  await db.schema.createIndex('queue_entries_status').on('queue_entries').columns(['concert_id', 'status', 'seq']).execute();

  await db.schema.createTable('queue_state')
    .addColumn('concert_id', 'bigint', (c) => c.primaryKey())
    .addColumn('last_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('last_admitted_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('admitted_total', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('max_active', 'integer', (c) => c.notNull())
    .addColumn('admit_per_second', 'integer', (c) => c.notNull())
    .addColumn('active_ttl_seconds', 'integer', (c) => c.notNull())
    .addColumn('paused', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_tick', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();

  await db.schema.createTable('idempotency_keys')
    .addColumn('user_id', 'bigint', (c) => c.notNull())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('status_code', 'integer', (c) => c.notNull())
    .addColumn('response_body', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['user_id', 'scope', 'key'])
    .execute();
  // One row: the mode every instance follows, so instances never split between Redis and SQL.
  await db.schema.createTable('service_mode')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('epoch', 'bigint', (c) => c.notNull())
    .addColumn('owner', 'text')
    .addColumn('reason', 'text')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.insertInto('service_mode').values({ id: 1, mode: 'redis', epoch: 0, owner: null, reason: 'initial', updated_at: 0 }).execute();

  await db.schema.createIndex('idempotency_keys_created').on('idempotency_keys').column('created_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['service_mode', 'idempotency_keys', 'queue_state', 'queue_entries', 'tokens', 'payments', 'reservations',
    'seats', 'schedules', 'concerts', 'ledger', 'users']) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
