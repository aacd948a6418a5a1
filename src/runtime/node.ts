import type { Server } from 'node:http';
import { serve, type ServerType } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import type { Runtime } from './index.ts';

/** Node 20+: @hono/node-server and better-sqlite3 (the driver Kysely's SqliteDialect is written for). */
export const nodeRuntime: Runtime = {
  name: 'node',

  serve({ port, hostname, fetch }) {
    return new Promise((resolve, reject) => {
      const server: ServerType = serve({ port, hostname, fetch: fetch as (req: Request) => Promise<Response> }, (info) => {
        server.off('error', reject);
        resolve({ port: info.port, stop: () => stopGracefully(server as Server) });
      });
      server.once('error', reject); // EADDRINUSE, EACCES: the start fails with the reason
    });
  },

  openSqlite(path, pragmas) {
    const Database = loadBetterSqlite3();
    const db = new Database(path);
    for (const p of pragmas) db.pragma(p);
    return db;
  },

  remoteAddress(c) {
    try {
      return getConnInfo(c).remote.address ?? null;
    } catch {
      return null; // not served by @hono/node-server (app.request() in-process): nothing to key on
    }
  },
};

/**
 * close() stops accepting and resolves once every connection has ended; connections idle in
 * keep-alive are closed at once (they would otherwise hold close() open until their timeout),
 * and those with a request in flight end after its answer, which carries `Connection: close`
 * while draining (src/http/drain.ts).
 */
function stopGracefully(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeIdleConnections();
  });
}

/**
 * better-sqlite3 is an optional dependency: its native module is built by `npm ci` (Python and a
 * C++ compiler, or a prebuilt binary from the network), and a machine without them still
 * installs and runs everything else. Loaded when SQLite is first opened, so Node with
 * PostgreSQL does not need it.
 */
function loadBetterSqlite3(): typeof BetterSqlite3 {
  try {
    return createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
  } catch (err) {
    throw new Error('SQLite on Node needs the optional package better-sqlite3, which npm could not install here '
      + '(building it needs Python and a C++ compiler): install them and run npm ci again, set DATABASE_URL to a '
      + `PostgreSQL database, or run on Bun (npm start). ${(err as Error).message.split('\n')[0]}`);
  }
}
