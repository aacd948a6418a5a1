import type { Transaction } from 'kysely';
import type { Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';

type Conn = Db | Transaction<Database>;

export interface KeyRef { userId: number; scope: string; key: string }

export interface StoredKey { requestHash: string; statusCode: number; responseBody: string; createdAt: number }

export async function findKey(db: Conn, k: KeyRef, notBefore: number): Promise<StoredKey | null> {
  const r = await db.selectFrom('idempotency_keys').select(['request_hash', 'status_code', 'response_body', 'created_at'])
    .where('user_id', '=', k.userId).where('scope', '=', k.scope).where('key', '=', k.key)
    .where('created_at', '>', notBefore)
    .executeTakeFirst();
  return r ? { requestHash: r.request_hash, statusCode: r.status_code, responseBody: r.response_body, createdAt: r.created_at } : null;
}

/**
 * Takes the key for this request, first thing in the money transaction: a concurrent retry
 * waits on the row (PostgreSQL) or the writer lock (SQLite) and then finds it taken. A key
 * older than `notBefore` has lapsed and is taken over. Returns whether this request owns it.
 */
export async function claimKey(trx: Transaction<Database>, k: KeyRef, requestHash: string, now: number, notBefore: number): Promise<boolean> {
  const ins = await trx.insertInto('idempotency_keys').values({
    user_id: k.userId, scope: k.scope, key: k.key, request_hash: requestHash, status_code: 0, response_body: '', created_at: now,
  }).onConflict((oc) => oc.columns(['user_id', 'scope', 'key']).doNothing()).executeTakeFirst();
  if (Number(ins.numInsertedOrUpdatedRows ?? 0) === 1) return true;
  const lapsed = await trx.updateTable('idempotency_keys')
    .set({ request_hash: requestHash, status_code: 0, response_body: '', created_at: now })
    .where('user_id', '=', k.userId).where('scope', '=', k.scope).where('key', '=', k.key)
    .where('created_at', '<=', notBefore)
    .executeTakeFirst();
  return Number(lapsed.numUpdatedRows) === 1;
}

export async function completeKey(trx: Transaction<Database>, k: KeyRef, statusCode: number, responseBody: string): Promise<void> {
  await trx.updateTable('idempotency_keys').set({ status_code: statusCode, response_body: responseBody })
    .where('user_id', '=', k.userId).where('scope', '=', k.scope).where('key', '=', k.key).execute();
}

export async function purgeKeys(db: Db, notBefore: number): Promise<number> {
  const r = await db.deleteFrom('idempotency_keys').where('created_at', '<=', notBefore).executeTakeFirst();
  return Number(r.numDeletedRows);
}
