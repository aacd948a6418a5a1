/**
 * One writer per table: every INSERT, UPDATE and DELETE of a table (Kysely's insertInto /
 * updateTable / deleteFrom, or raw SQL) lives in the one repository module that owns the table.
 * Other code calls that module's functions. Migrations create the tables and are left out.
 *
 * Owners:
 *   users                 src/modules/identity/users.repo.ts
 *   identities            src/modules/identity/identities.repo.ts
 *   user_id_counter       src/modules/identity/identities.repo.ts
 *   ledger                src/modules/payments/ledger.repo.ts
 *   payments              src/modules/payments/payments.repo.ts
 *   idempotency_keys      src/modules/payments/idempotency.repo.ts
 *   concerts              src/modules/catalog/catalog.repo.ts
 *   schedules             src/modules/catalog/catalog.repo.ts
 *   seats                 src/modules/reservations/reservations.repo.ts
 *   reservations          src/modules/reservations/reservations.repo.ts
 *   tokens                src/modules/tokens/tokens.repo.ts
 *   join_replays          src/modules/tokens/join-replays.repo.ts
 *   spent_challenges      src/modules/pow/spent-challenges.repo.ts
 *   queue_entries         src/modules/queue/entries.repo.ts
 *   queue_state           src/modules/queue/queue-state.repo.ts
 *   prequeue_entries      src/modules/draw/sale.repo.ts
 *   service_mode          src/resilience/coordinator.ts
 *   console_samples       src/modules/console/samples.ts
 *   console_sampler       src/modules/console/samples.ts
 */
import { describe, expect, test } from 'bun:test';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const OWNERS: Record<string, string> = {
  users: 'src/modules/identity/users.repo.ts',
  identities: 'src/modules/identity/identities.repo.ts',
  user_id_counter: 'src/modules/identity/identities.repo.ts',
  ledger: 'src/modules/payments/ledger.repo.ts',
  payments: 'src/modules/payments/payments.repo.ts',
  idempotency_keys: 'src/modules/payments/idempotency.repo.ts',
  concerts: 'src/modules/catalog/catalog.repo.ts',
  schedules: 'src/modules/catalog/catalog.repo.ts',
  seats: 'src/modules/reservations/reservations.repo.ts',
  reservations: 'src/modules/reservations/reservations.repo.ts',
  tokens: 'src/modules/tokens/tokens.repo.ts',
  join_replays: 'src/modules/tokens/join-replays.repo.ts',
  spent_challenges: 'src/modules/pow/spent-challenges.repo.ts',
  queue_entries: 'src/modules/queue/entries.repo.ts',
  queue_state: 'src/modules/queue/queue-state.repo.ts',
  prequeue_entries: 'src/modules/draw/sale.repo.ts',
  service_mode: 'src/resilience/coordinator.ts',
  console_samples: 'src/modules/console/samples.ts',
  console_sampler: 'src/modules/console/samples.ts',
};

const ROOT = join(import.meta.dir, '..');
const SRC = join(ROOT, 'src');
const MIGRATIONS = join(SRC, 'store', 'migrations');

/** Kysely's write builders, and raw SQL writes (upper case, as the code writes SQL; prose does not match). */
const WRITES = [
  /\b(?:insertInto|updateTable|deleteFrom|replaceInto|mergeInto)\(\s*['"`]([a-z_]+)/g,
  /\b(?:INSERT\s+INTO|DELETE\s+FROM|MERGE\s+INTO)\s+([a-z_]+)/g,
  /\bUPDATE\s+([a-z_]+)\s+SET\b/g,
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return path === MIGRATIONS ? [] : sourceFiles(path);
    return /\.(ts|js|mjs)$/.test(e.name) ? [path] : [];
  });
}

/** table → files that write it, found by reading every source file. */
function writers(): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  for (const path of sourceFiles(SRC)) {
    const text = readFileSync(path, 'utf8');
    for (const pattern of WRITES) {
      for (const m of text.matchAll(pattern)) {
        const table = m[1]!;
        if (!found.has(table)) found.set(table, new Set());
        found.get(table)!.add(relative(ROOT, path));
      }
    }
  }
  return found;
}

function schemaTables(): string[] {
  const schema = readFileSync(join(SRC, 'store', 'schema.ts'), 'utf8');
  const body = schema.slice(schema.indexOf('export interface Database {'));
  return [...body.slice(0, body.indexOf('}')).matchAll(/^\s+([a-z_]+):/gm)].map((m) => m[1]!);
}

const ownerMap = Object.entries(OWNERS).map(([t, f]) => `${t} → ${f.replace(/^src\//, '')}`).join(', ');

describe('one writer per table', () => {
  test(`each table is written only by its owner: ${ownerMap}`, () => {
    const strays: string[] = [];
    for (const [table, files] of writers()) {
      for (const file of files) if (file !== OWNERS[table]) strays.push(`${table} written in ${file} (owner: ${OWNERS[table] ?? 'none'})`);
    }
    expect(strays).toEqual([]);
  });

  test('every owned table is a table of the schema, and every owner writes its table', () => {
    expect(Object.keys(OWNERS).filter((t) => !schemaTables().includes(t))).toEqual([]);
    const found = writers();
    expect(Object.entries(OWNERS).filter(([t, f]) => !found.get(t)?.has(f)).map(([t]) => t)).toEqual([]);
  });
});
