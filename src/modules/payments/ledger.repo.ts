import type { Transaction } from 'kysely';
import type { Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';
import { addToBalance, ensureUser, takeFromBalance } from '../identity/users.repo.ts';

type Trx = Transaction<Database>;

export async function findBalance(db: Db, userId: number): Promise<number> {
  const r = await db.selectFrom('users').select('balance').where('id', '=', userId).executeTakeFirst();
  return r?.balance ?? 0;
}

/** Adds money and its ledger row in the caller's transaction; returns the new balance. */
export async function credit(trx: Trx, userId: number, amount: number, ref: string, now: number): Promise<number> {
  await ensureUser(trx, userId, now);
  const balance = await addToBalance(trx, userId, amount);
  await trx.insertInto('ledger').values({ user_id: userId, amount, kind: 'charge', ref, created_at: now }).execute();
  return balance;
}

/**
 * Takes money only if there is enough (a conditional UPDATE, so concurrent debits cannot
 * overdraw), with its ledger row; returns the new balance, or null when the balance is short.
 */
export async function debit(trx: Trx, userId: number, amount: number, ref: string, now: number): Promise<number | null> {
  const balance = await takeFromBalance(trx, userId, amount);
  if (balance === null) return null;
  await trx.insertInto('ledger').values({ user_id: userId, amount: -amount, kind: 'payment', ref, created_at: now }).execute();
  return balance;
}
