import { Database as BunDatabase } from 'bun:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/**
 * Kysely's SqliteDialect expects the better-sqlite3 surface; bun:sqlite is close enough that a
 * thin adapter suffices. `reader` tells Kysely whether a statement returns rows.
 */
export function bunSqlite(path: string): SqliteDatabase {
  const db = new BunDatabase(path, { create: true, strict: true });
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('PRAGMA foreign_keys = ON');
  db.exec('PRAGMA busy_timeout = 5000');
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      const stmt = db.prepare(sql);
      return {
        reader: stmt.columnNames.length > 0,
        all: (params) => stmt.all(...(params as never[])) as unknown[],
        run: (params) => stmt.run(...(params as never[])),
        iterate: (params) => stmt.iterate(...(params as never[])) as IterableIterator<unknown>,
      };
    },
  };
}
