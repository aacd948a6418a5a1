import type { Db } from '../../store/connect.ts';
import { insertNewUser } from './users.repo.ts';

export async function findIdentityUser(db: Db, iss: string, sub: string): Promise<number | undefined> {
  const row = await db.selectFrom('identities').select('user_id').where('iss', '=', iss).where('sub', '=', sub).executeTakeFirst();
  return row?.user_id;
}

/** The next user id for a new identity; its own short statement, so the counter's row lock is held for microseconds. */
async function nextUserId(db: Db): Promise<number> {
  const row = await db.updateTable('user_id_counter').set((eb) => ({ last_id: eb('last_id', '+', 1) }))
    .where('id', '=', 1).returning('last_id').executeTakeFirstOrThrow();
  return row.last_id;
}

/** Open mode made users past the counter: move the counter past them so the next ids are free. */
async function skipTakenIds(db: Db): Promise<void> {
  const top = await db.selectFrom('users').select((eb) => eb.fn.max<number>('id').as('max')).executeTakeFirst();
  const max = Number(top?.max ?? 0);
  await db.updateTable('user_id_counter').set({ last_id: max }).where('id', '=', 1).where('last_id', '<', max).execute();
}

class LostRace extends Error {}

/**
 * The user id of an identity, made with a new user (balance 0) on first sight. Concurrent first
 * sights of one (iss, sub) end with one user: each tries to insert its own user and the identity
 * in one transaction; the identity's primary key lets one win, the others roll back (their user
 * with them) and read the winner's row.
 */
export async function userIdOfIdentity(db: Db, iss: string, sub: string, now: number): Promise<number> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const known = await findIdentityUser(db, iss, sub);
    if (known !== undefined) return known;
    const userId = await nextUserId(db);
    const outcome = await db.transaction().execute(async (trx) => {
      if (!(await insertNewUser(trx, userId, now))) return 'id-taken' as const;
      const identity = await trx.insertInto('identities').values({ iss, sub, user_id: userId, created_at: now })
        .onConflict((oc) => oc.columns(['iss', 'sub']).doNothing()).returning('user_id').executeTakeFirst();
      if (!identity) throw new LostRace();
      return userId;
    }).catch((err) => {
      if (err instanceof LostRace) return 'lost' as const;
      throw err;
    });
    if (typeof outcome === 'number') return outcome;
    if (outcome === 'id-taken') await skipTakenIds(db);
  }
  throw new Error(`could not record the identity (${iss}, ${sub}) after 5 attempts`);
}
