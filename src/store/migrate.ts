import { Migrator, type Migration, type MigrationProvider } from 'kysely/migration';
import type { Db } from './connect.ts';
import * as initial from './migrations/2026-11-25T0000_initial.ts';
import * as identities from './migrations/2026-11-30T0000_identities.ts';
import * as joinReplays from './migrations/2026-11-30T0100_join_replays.ts';
import * as queueEta from './migrations/2026-11-30T0200_queue_eta.ts';
import * as consoleSamples from './migrations/2026-12-01T0000_console_samples.ts';
import * as spentChallenges from './migrations/2026-12-01T0200_spent_challenges.ts';
import * as saleDraw from './migrations/2026-12-01T0100_sale_draw.ts';
import * as entryCeiling from './migrations/2026-12-01T0300_entry_ceiling.ts';

/** Listed explicitly so the set is the same whether run from source or a bundle. */
const migrations: Record<string, Migration> = {
  '2026-11-25T0000_initial': initial,
  '2026-11-30T0000_identities': identities,
  '2026-11-30T0100_join_replays': joinReplays,
  '2026-11-30T0200_queue_eta': queueEta,
  '2026-12-01T0000_console_samples': consoleSamples,
  '2026-12-01T0100_sale_draw': saleDraw,
  '2026-12-01T0200_spent_challenges': spentChallenges,
  '2026-12-01T0300_entry_ceiling': entryCeiling,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

export async function migrateToLatest(db: Db): Promise<void> {
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    const why = error instanceof Error ? error.message : String(error ?? 'unknown error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${why}`);
  }
}
