import { sql, type Kysely } from 'kysely';

/**
 * AUTH_MODE=jwt: the service keeps its own numeric user id per identity-provider subject
 * (iss, sub), made on first sight. New ids come from a one-row counter rather than MAX(id)+1,
 * so that many first sign-ins at once (a sale opening) do not all race for the same id.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- migrations work on the untyped schema */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('identities')
    .addColumn('iss', 'text', (c) => c.notNull())
    .addColumn('sub', 'text', (c) => c.notNull())
    .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('identities_pk', ['iss', 'sub'])
    .execute();
  await db.schema.createIndex('identities_user').on('identities').column('user_id').execute();

  await db.schema.createTable('user_id_counter')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('last_id', 'bigint', (c) => c.notNull())
    .execute();
  // Start past the users open mode has made; ids it makes later are skipped when met.
  await sql`insert into user_id_counter (id, last_id) select 1, coalesce(max(id), 0) from users`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('user_id_counter').ifExists().execute();
  await db.schema.dropTable('identities').ifExists().execute();
}
