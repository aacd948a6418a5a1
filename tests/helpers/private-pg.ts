import { afterAll, beforeAll } from 'bun:test';
import { findPgBin, startPgCluster, type PgCluster } from '../../chaos/cluster.ts';
import { freePort } from '../../sentinel/topology.ts';
import { openDatabase } from '../../src/store/connect.ts';
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
