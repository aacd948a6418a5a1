import { Kysely, PostgresAdapter, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { bunSqlite } from './bun-sqlite.ts';
import type { Database } from './schema.ts';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Kysely<Database>;
export type SqlKind = 'sqlite' | 'postgres';

// int8 (ids, epoch-ms times, money) fits comfortably in a JS number.
pg.types.setTypeParser(20, (v) => Number(v));

export function sqlKind(databaseUrl: string): SqlKind {
  return databaseUrl.startsWith('postgres://') || databaseUrl.startsWith('postgresql://') ? 'postgres' : 'sqlite';
}

export function openDatabase(databaseUrl: string, opts: { poolSize?: number } = {}): Db {
  if (sqlKind(databaseUrl) === 'postgres') {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: opts.poolSize ?? 20 });
    // An idle client that loses its server must not crash the process.
    pool.on('error', () => {});
    return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  }
  const path = databaseUrl.slice('sqlite:'.length);
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: bunSqlite(path) }) });
}

export function isPostgres(db: Db): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** Unique-constraint violation on either engine. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    /UNIQUE constraint failed/.test(e?.message ?? '');
}
