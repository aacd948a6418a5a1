import type { Db } from '../../store/connect.ts';

/**
 * Records that the join `spentBy` used challenge `id`, in one statement on the primary key.
 * True when the challenge is this join's: newly recorded, or recorded before by the same join
 * (its retry, or a double-submit). False when another join spent it.
 */
export async function spendChallenge(db: Db, c: { id: string; spentBy: string; keepUntil: number }): Promise<boolean> {
  const row = await db.insertInto('spent_challenges')
    .values({ id: c.id, spent_by: c.spentBy, keep_until: c.keepUntil })
    .onConflict((oc) => oc.column('id')
      .doUpdateSet((eb) => ({ keep_until: eb.ref('excluded.keep_until') }))
      .whereRef('spent_challenges.spent_by', '=', 'excluded.spent_by'))
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/** Drops records whose challenge can no longer be accepted anyway. */
export async function purgeSpentChallenges(db: Db, now: number): Promise<number> {
  const r = await db.deleteFrom('spent_challenges').where('keep_until', '<', now).executeTakeFirst();
  return Number(r.numDeletedRows ?? 0);
}
