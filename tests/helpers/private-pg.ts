import { afterAll, beforeAll } from 'bun:test';
import { findPgBin, startPgCluster, type PgCluster } from '../../chaos/cluster.ts';
import { freePort } from '../../sentinel/topology.ts';
import type { Transaction } from 'kysely';
import { openDatabase } from '../../src/store/connect.ts';
import type { Database } from '../../src/store/schema.ts';
import { migrateToLatest } from '../../src/store/migrate.ts';
import type { TestClock } from './harness.ts';
import { startService, type TestService } from './service.ts';

/** The PostgreSQL 15 binaries (initdb, pg_ctl), when this machine has them. */
export const privatePgBin = findPgBin();

export interface PrivatePgService {
  cluster: PgCluster;
  svc: TestService;
  /** Stops the service, its pool and the cluster. */
  stop(): Promise<void>;
}

/**
 * A service on a PostgreSQL cluster of its own (initdb on a free port), for tests that stop,
 * slow or restart PostgreSQL: the shared server on 5432 is never touched.
 */
export async function servicePrivatePg(clock: TestClock, timeoutMs: number): Promise<PrivatePgService> {
  const cluster = await startPgCluster(await freePort());
  const db = openDatabase(cluster.url, { poolSize: 5, timeoutMs });
  await migrateToLatest(db);
  const svc = await startService({ clock: clock.now, database: { url: cluster.url, db, drop: async () => { await db.destroy(); } } });
  return {
    cluster, svc,
    async stop() {
      await svc.stop();
      await svc.database.drop();
      await cluster.destroy();
    },
  };
}

/** servicePrivatePg for a describe block: started before its tests, stopped after them. */
export function usePrivatePg(clock: TestClock, timeoutMs: number): { readonly cluster: PgCluster; readonly svc: TestService } {
  let pg: PrivatePgService | undefined;
  beforeAll(async () => { pg = await servicePrivatePg(clock, timeoutMs); }, 60_000);
  afterAll(async () => { await pg?.stop(); });
  return {
    get cluster() { return pg!.cluster; },
    get svc() { return pg!.svc; },
  };
}

/**
 * Another session holding a lock: opens its own connection to `url` and runs `lock` in a
 * transaction that stays open until `end()`. `locked` resolves once `lock` has run. `end()` lets
 * the transaction commit and closes the connection; it throws if the transaction failed, unless
 * `mayFail` (a test that takes the server away under it).
 */
export function holdInTransaction(url: string, lock: (trx: Transaction<Database>) => Promise<unknown>) {
  const db = openDatabase(url, { poolSize: 1, timeoutMs: 60_000 });
  let release!: () => void;
  const released = new Promise<void>((r) => { release = r; });
  let markLocked!: () => void;
  const locked = new Promise<void>((r) => { markLocked = r; });
  const outcome = db.transaction().execute(async (trx) => {
    await lock(trx);
    markLocked();
    await released;
  }).then(() => null, (err: unknown) => err);
  return {
    locked,
    async end(opts: { mayFail?: boolean } = {}): Promise<void> {
      release();
      const err = await outcome;
      await db.destroy().catch(() => {});
      if (err && !opts.mayFail) throw err;
    },
  };
}
