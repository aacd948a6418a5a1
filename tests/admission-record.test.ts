/**
 * During a failover two masters may admit the same place for a moment (the old one keeps
 * taking writes until the sentinels demote it), and a redelivered entry repeats an admission.
 * SQL used to keep the last admission applied, so its record showed an entry admitted after
 * later ones (the fault checker's SQL order check). The first admission counts.
 */
import { expect, test } from 'bun:test';
import { applyEvents } from '../src/jobs/write-behind.apply.ts';
import { describeEach, newConcert, newUserId } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

describeEach('the SQL record of admissions', { modes: ['redis'] }, (h) => {
  test('keeps the earliest admission of a place, whichever order the entries arrive in', async () => {
    const c = await newConcert(h);
    const db = h.svc.database.db;
    const t = h.clock.now();
    const join = (seq: number, user: number) => ({ e: 'join', u: String(user), s: String(seq), t: String(t) });
    const admit = (seq: number, user: number, at: number) => ({ e: 'admit', u: String(user), s: String(seq), t: String(at), x: String(at + 60_000) });
    await applyEvents(db, c.id, [join(1, 501), join(2, 502), admit(1, 501, t + 100), admit(2, 502, t + 200)], t);
    // The other master admitted entry 1 again, later; and a batch repeats both in reverse order.
    await applyEvents(db, c.id, [admit(1, 501, t + 900)], t);
    await applyEvents(db, c.id, [admit(2, 502, t + 950), admit(2, 502, t + 150)], t);
    const rows = await db.selectFrom('queue_entries').select(['seq', 'admitted_at']).where('concert_id', '=', c.id).orderBy('seq').execute();
    expect(rows).toEqual([{ seq: 1, admitted_at: t + 100 }, { seq: 2, admitted_at: t + 150 }]);
    const state = await db.selectFrom('queue_state').select('admitted_total').where('concert_id', '=', c.id).executeTakeFirstOrThrow();
    expect(state.admitted_total).toBe(2);
  });
});

describeEach('SQL-mode admission', { modes: ['sql'] }, (h) => {
  test('passes over an entry without a live token (a join that was never acknowledged) instead of admitting it', async () => {
    const c = await newConcert(h);
    const db = h.svc.database.db;
    const now = h.clock.now();
    // The write-behind recorded a join whose token was never written (its answer was a 503).
    await db.insertInto('queue_entries').values({
      concert_id: c.id, seq: 1, user_id: 777_001, status: 'waiting', joined_at: now, admitted_at: null,
      active_until: null, last_seen_at: now, updated_at: now,
    }).execute();
    await db.updateTable('queue_state').set({ last_seq: 1 }).where('concert_id', '=', c.id).execute();
    const fan = await join(h.app, c.id, await userToken(h.app, newUserId()));
    expect(fan.status).toBe(201);
    await h.tick();
    const rows = await db.selectFrom('queue_entries').select(['seq', 'status']).where('concert_id', '=', c.id).orderBy('seq').execute();
    expect(rows).toEqual([{ seq: 1, status: 'expired' }, { seq: 2, status: 'active' }]);
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: fan.body.token })).body.status).toBe('active');
  });
});
