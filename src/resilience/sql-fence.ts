import type { Transaction } from 'kysely';
import { errors } from '../errors.ts';
import { isPostgres } from '../store/connect.ts';
import type { Database } from '../store/schema.ts';

/**
 * SQL-mode writes to what Redis owns (places, admissions, holds) run only while the shared mode
 * row says `sql`, checked inside their own transaction. On PostgreSQL the row is read FOR SHARE,
 * so the rebuild's move of the row to `rebuilding` waits until every such transaction under way
 * has committed, and every later one sees `rebuilding` and refuses (503). SQLite runs one
 * writer at a time, so the read inside the transaction is enough. The rebuild therefore reads
 * every SQL-mode change, however late an instance learns of the new mode: no timing involved.
 */
export function assertSqlMode(trx: Transaction<Database>): Promise<void> {
  return assertMode(trx, 'sql');
}

/**
 * The other side of the same fence: Redis-mode writes to SQL that SQL mode acts on (an
 * entry-number reservation, an admission tick's record) commit only while the mode row says
 * `redis`. On PostgreSQL the move to `sql` waits for them; on SQLite writers go one at a time.
 */
export function assertRedisMode(trx: Transaction<Database>): Promise<void> {
  return assertMode(trx, 'redis');
}

async function assertMode(trx: Transaction<Database>, mode: 'redis' | 'sql'): Promise<void> {
  let q = trx.selectFrom('service_mode').select('mode').where('id', '=', 1);
  if (isPostgres(trx)) q = q.forShare();
  const row = await q.executeTakeFirst();
  if (row && row.mode !== mode) throw errors.unavailable('the service is switching stores; retry in a moment', 1);
}
