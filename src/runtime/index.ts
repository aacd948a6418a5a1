import type { Context } from 'hono';
import type { SqliteDatabase } from 'kysely';

/**
 * What differs between Bun and Node, and nothing else: the HTTP server, the SQLite driver and
 * the client's address (read from the server's own request objects). Everything else (Hono,
 * ioredis, pg, Kysely, cockatiel, zod, node:fs, node:crypto) runs unchanged on both.
 */
export interface Runtime {
  name: 'bun' | 'node';
  /** Listens and resolves once connections are accepted (rejects when the port cannot be had). */
  serve(opts: ServeOptions): Promise<Served>;
  /**
   * A SQLite database (created when missing) with the better-sqlite3 surface Kysely's
   * SqliteDialect expects, each `pragmas` entry ("journal_mode = WAL") applied first.
   */
  openSqlite(path: string, pragmas: readonly string[]): SqliteDatabase;
  /** The peer address of the socket the request came on; null for in-process requests. */
  remoteAddress(c: Context): string | null;
}

export interface ServeOptions {
  port: number;
  hostname: string;
  fetch: (req: Request, ...rest: never[]) => Response | Promise<Response>;
}

export interface Served {
  /** The port listened on (the one the system chose when asked for 0). */
  port: number;
  /**
   * Stops accepting and closes idle keep-alive connections; resolves once the requests in
   * flight were answered and their connections closed.
   */
  stop(): Promise<void>;
}

/**
 * Chosen once, by the program that runs the entry point: `bun src/main.ts` gets Bun's server
 * and bun:sqlite, `node dist/main.js` (npm run start:node) gets @hono/node-server and
 * better-sqlite3. Picked here rather than by each entry so that every program importing the
 * service's modules (tests, bench, drills) gets the right one without a step to forget; the
 * other runtime's module is never loaded.
 */
export const runtime: Runtime = process.versions.bun
  ? (await import('./bun.ts')).bunRuntime
  : (await import('./node.ts')).nodeRuntime;

/** A pause, the same on both runtimes (Bun's own sleep does not exist on Node). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
