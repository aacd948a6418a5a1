import type { QueryCreator, Transaction } from 'kysely';
import { isPostgres, type Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';

type Conn = Db | Transaction<Database>;

export interface NewUser { id: number; balance: number; created_at: number }

/**
 * The insert of users not there yet, as a query to run or to nest (a PostgreSQL `WITH` that
 * writes users and their tokens in one statement). Users already there are left as they are.
 */
export function insertMissingUsers(q: QueryCreator<Database>, users: NewUser[]) {
  return q.insertInto('users').values(users).onConflict((oc) => oc.column('id').doNothing());
}

/** The user's row, created with balance 0 if it is not there yet. */
export async function ensureUser(db: Conn, userId: number, now: number): Promise<void> {
  await insertMissingUsers(db, [{ id: userId, balance: 0, created_at: now }]).execute();
}

/** A new user with balance 0; false when the id is taken. */
export async function insertNewUser(db: Conn, userId: number, now: number): Promise<boolean> {
  const user = await insertMissingUsers(db, [{ id: userId, balance: 0, created_at: now }]).returning('id').executeTakeFirst();
  return user !== undefined;
}

/** Serialises one user's holds (PostgreSQL), so the per-user limit holds under concurrency. */
export async function lockUser(trx: Transaction<Database>, userId: number, now: number): Promise<void> {
  await ensureUser(trx, userId, now);
  if (isPostgres(trx)) await trx.selectFrom('users').select('id').where('id', '=', userId).forUpdate().execute();
}

/** Adds to the balance; answers the new balance. */
export async function addToBalance(trx: Transaction<Database>, userId: number, amount: number): Promise<number> {
  const r = await trx.updateTable('users').set((eb) => ({ balance: eb('balance', '+', amount) }))
    .where('id', '=', userId).returning('balance').executeTakeFirstOrThrow();
  return Number(r.balance);
}

/**
 * Takes from the balance only if there is enough (a conditional UPDATE, so concurrent debits
 * cannot overdraw); answers the new balance, or null when the balance is short.
 */
export async function takeFromBalance(trx: Transaction<Database>, userId: number, amount: number): Promise<number | null> {
  const r = await trx.updateTable('users').set((eb) => ({ balance: eb('balance', '-', amount) }))
    .where('id', '=', userId).where('balance', '>=', amount).returning('balance').executeTakeFirst();
  return r ? Number(r.balance) : null;
}
