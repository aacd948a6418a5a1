import { Kysely, PostgresAdapter, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { runtime } from '../runtime/index.ts';
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

/** Longest a SQL statement (a lock wait included) or a wait for a pooled connection may take. */
export const DEFAULT_SQL_TIMEOUT_MS = 5_000;

/** Concurrent readers beside one writer; a writer waits for the lock instead of failing at once. */
const SQLITE_PRAGMAS = ['journal_mode = WAL', 'synchronous = NORMAL', 'foreign_keys = ON', 'busy_timeout = 5000'];

export function openDatabase(databaseUrl: string, opts: { poolSize?: number; timeoutMs?: number } = {}): Db {
  if (sqlKind(databaseUrl) === 'postgres') {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_SQL_TIMEOUT_MS;
    // A database that is down, or a lock held for seconds, must turn into a 503 the client can
    // retry, not a request (and a pooled connection) that waits for ever.
    const pool = new pg.Pool({
      connectionString: databaseUrl, max: opts.poolSize ?? 20,
      connectionTimeoutMillis: timeoutMs, statement_timeout: timeoutMs,
    });
    // A client that loses its server must not crash the process: idle ones report to the pool,
    // checked-out ones to themselves (their query fails, and the request answers 503).
    pool.on('error', () => {});
    pool.on('connect', (client) => { client.on('error', () => {}); });
    return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  }
  const path = databaseUrl.slice('sqlite:'.length);
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: runtime.openSqlite(path, SQLITE_PRAGMAS) }) });
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
