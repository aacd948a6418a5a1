import type { Db } from '../../store/connect.ts';

/**
 * Records that the join `spentBy` used challenge `id`, in one statement on the primary key, and
 * answers who spent it: `spentBy` when the challenge is this join's (newly recorded, or recorded
 * before by the same join: its retry, a double-submit), else the other join. A record never
 * changes hands (the upsert only touches a row of the same join), so that answer is final.
 */
export async function spendChallenge(db: Db, c: { id: string; spentBy: string; keepUntil: number }): Promise<string> {
  const row = await db.insertInto('spent_challenges')
    .values({ id: c.id, spent_by: c.spentBy, keep_until: c.keepUntil })
    .onConflict((oc) => oc.column('id')
      .doUpdateSet((eb) => ({ keep_until: eb.ref('excluded.keep_until') }))
      .whereRef('spent_challenges.spent_by', '=', 'excluded.spent_by'))
    .returning('spent_by')
    .executeTakeFirst();
  if (row) return row.spent_by;
  // Another join's: read whose (only refusals get here).
  const other = await db.selectFrom('spent_challenges').select('spent_by').where('id', '=', c.id).executeTakeFirst();
  return other?.spent_by ?? '';
}

/** Drops records whose challenge can no longer be accepted anyway. */
export async function purgeSpentChallenges(db: Db, now: number): Promise<number> {
  const r = await db.deleteFrom('spent_challenges').where('keep_until', '<', now).executeTakeFirst();
  return Number(r.numDeletedRows ?? 0);
}
