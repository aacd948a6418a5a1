import { Database as BunDatabase } from 'bun:sqlite';
import { getConnInfo } from 'hono/bun';
import type { SqliteDatabase, SqliteStatement } from 'kysely';
import type { Runtime } from './index.ts';

/** Bun: Bun.serve, bun:sqlite (Bun refuses the native better-sqlite3 module). */
export const bunRuntime: Runtime = {
  name: 'bun',

  async serve({ port, hostname, fetch }) {
    const server = Bun.serve({ port, hostname, fetch });
    // stop() without `true` is the graceful one: in-flight requests are answered first.
    return { port: server.port ?? port, stop: () => server.stop() };
  },

  openSqlite(path, pragmas) {
    const db = new BunDatabase(path, { create: true, strict: true });
    for (const p of pragmas) db.exec(`PRAGMA ${p}`);
    return bunAdapter(db);
  },

  remoteAddress(c) {
    try {
      return getConnInfo(c).remote.address ?? null;
    } catch {
      return null; // not served by Bun.serve (app.request() in-process): nothing to key on
    }
  },
};

/**
 * Kysely's SqliteDialect expects the better-sqlite3 surface; bun:sqlite is close enough that a
 * thin adapter suffices. `reader` tells Kysely whether a statement returns rows.
 */
function bunAdapter(db: BunDatabase): SqliteDatabase {
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
