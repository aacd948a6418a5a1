import { randomBytes } from 'node:crypto';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { openDatabase, type Db } from '../../src/store/connect.ts';
import { migrateToLatest } from '../../src/store/migrate.ts';

export type SqlTarget = 'sqlite' | 'postgres';

/**
 * Every SQL-touching suite runs on both engines. TEST_SQL_TARGETS (`sqlite`, `postgres`, or both
 * comma-separated) narrows that: the fast tier runs on SQLite alone, with no PostgreSQL needed.
 */
export const SQL_TARGETS: SqlTarget[] = sqlTargetsFromEnv(process.env.TEST_SQL_TARGETS);

function sqlTargetsFromEnv(value: string | undefined): SqlTarget[] {
  if (!value) return ['sqlite', 'postgres'];
  const targets = value.split(',').map((t) => t.trim()).filter((t) => t !== '');
  for (const t of targets) {
    if (t !== 'sqlite' && t !== 'postgres') throw new Error(`TEST_SQL_TARGETS: unknown SQL target '${t}' (sqlite, postgres)`);
  }
  return targets as SqlTarget[];
}

const adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  db: Db;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own: SQLite in a temp file, or a new PostgreSQL database. */
export async function createTestDatabase(target: SqlTarget): Promise<TestDatabase> {
  const name = `ticketing_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  if (target === 'sqlite') {
    const path = `/tmp/${name}.db`;
    const url = `sqlite:${path}`;
    const db = openDatabase(url);
    await migrateToLatest(db);
    return {
      url, db,
      async drop() {
        await db.destroy().catch(() => {});
        for (const suffix of ['', '-wal', '-shm']) await Bun.file(path + suffix).delete().catch(() => {});
      },
    };
  }
  const admin = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: adminUrl, max: 1 }) }) });
  await sql`CREATE DATABASE ${sql.id(name)}`.execute(admin);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const db = openDatabase(url, { poolSize: 10 });
  await migrateToLatest(db);
  return {
    url, db,
    async drop() {
      await db.destroy().catch(() => {});
      await sql`DROP DATABASE IF EXISTS ${sql.id(name)} WITH (FORCE)`.execute(admin).catch(() => {});
      await admin.destroy();
    },
  };
}
