/**
 * Joins record their claims and queue tokens in shared SQL transactions (group commit). A batch
 * must answer each join as it would have been answered alone: a join that is refused writes
 * nothing (no token, no entry, no revocation), and the joins recorded beside it are unaffected.
 * Both service modes, both SQL engines.
 */
import { expect, test } from 'bun:test';
import { describeEach, newConcert, newUserId, type Harness } from './helpers/harness.ts';
import { userToken } from './helpers/http.ts';
import { seeded } from './helpers/random.ts';

async function principalOf(h: Harness, userId: number) {
  const token = await userToken(h.app, userId);
  return (await h.svc.ctx.tokens.decode(token, h.clock.now()))!;
}

// Entry numbers far from the ones joins hand out, different on each run (files share a database per target).
const { random } = seeded('JOIN_GROUP_COMMIT_SEED', 'join group commit');

describeEach('join group commit', {}, (h) => {
  test('refused joins in a batch write nothing; the others in it are recorded and revoke what they replace', async () => {
    const c = await newConcert(h);
    const db = h.svc.database.db;
    const tokens = h.svc.ctx.tokens;
    const now = h.clock.now();
    const backend = h.svc.ctx.backends[h.mode];
    const expiresAt = now + 60_000;
    const base = 700_000 + Math.floor(random() * 100_000) * 10;

    const good = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
      const src = await principalOf(h, newUserId());
      return { src, jti: await tokens.claimJoin(src, c.id, now), seq: base + i };
    }));
    // A copy of this join gave its claim back.
    const dropped = await principalOf(h, newUserId());
    const droppedJti = await tokens.claimJoin(dropped, c.id, now);
    expect(await tokens.dropJoinClaim(dropped, c.id, droppedJti)).toBe(true);
    // Its entry number is another fan's already (given out by SQL mode around a switch).
    const taken = await principalOf(h, newUserId());
    const takenJti = await tokens.claimJoin(taken, c.id, now);
    await db.insertInto('queue_entries').values({
      concert_id: c.id, seq: base + 50, user_id: newUserId(), status: 'waiting', joined_at: now,
      admitted_at: null, active_until: null, last_seen_at: now, updated_at: now,
    }).execute();

    const record = (src: typeof dropped, jti: string, seq: number) => tokens.recordQueueTokenInSql(
      { userId: src.userId, jti, concertId: c.id, seq, issuedAt: now, expiresAt }, [src.jti], now, backend, { srcJti: src.jti });
    // All at once: after the first two (each starts a batch of its own) they share batches.
    const outcomes = await Promise.allSettled([
      ...good.map((g) => record(g.src, g.jti, g.seq)),
      record(dropped, droppedJti, base + 40),
      record(taken, takenJti, base + 50),
      // A second copy of the first join, in the same batch as the first or the next.
      record(good[0]!.src, good[0]!.jti, good[0]!.seq),
    ]);

    const issued = outcomes.slice(0, 12);
    for (const o of issued) expect(o.status).toBe('fulfilled');
    expect(outcomes[12]).toMatchObject({ status: 'rejected', reason: { code: 'UNAVAILABLE' } });
    expect(outcomes[13]).toMatchObject({ status: 'rejected', reason: { code: 'UNAVAILABLE' } });
    // Both copies of one join answer with one token string.
    expect(outcomes[14]).toMatchObject({ status: 'fulfilled' });
    expect((outcomes[14] as PromiseFulfilledResult<{ token: string }>).value.token)
      .toBe((outcomes[0] as PromiseFulfilledResult<{ token: string }>).value.token);

    const rows = await db.selectFrom('tokens').select(['jti', 'user_id', 'seq', 'revoked_at'])
      .where('jti', 'in', [...good.map((g) => g.jti), droppedJti, takenJti, ...good.map((g) => g.src.jti), dropped.jti, taken.jti])
      .execute();
    const byJti = new Map(rows.map((r) => [r.jti, r]));
    good.forEach((g) => {
      expect(byJti.get(g.jti)).toMatchObject({ user_id: g.src.userId, seq: g.seq, revoked_at: null });
      // The user token each join replaced is revoked; the refused joins' user tokens are not.
      expect(byJti.get(g.src.jti)?.revoked_at).not.toBeNull();
    });
    expect(byJti.has(droppedJti)).toBe(false);
    expect(byJti.has(takenJti)).toBe(false);
    expect(byJti.get(dropped.jti)?.revoked_at).toBeNull();
    expect(byJti.get(taken.jti)?.revoked_at).toBeNull();
    const entries = await db.selectFrom('queue_entries').select(['seq', 'user_id']).where('concert_id', '=', c.id)
      .where('seq', '>=', base).where('seq', '<', base + 100).orderBy('seq').execute();
    expect(entries.map((e) => e.seq)).toEqual([...good.map((g) => g.seq), base + 50]);
    expect(entries.find((e) => e.seq === base + 50)?.user_id).not.toBe(taken.userId);
  });

  test('a join whose token id was recorded for another place is refused, beside joins that are not', async () => {
    const c = await newConcert(h);
    const tokens = h.svc.ctx.tokens;
    const now = h.clock.now();
    const backend = h.svc.ctx.backends[h.mode];
    const base = 800_000 + Math.floor(random() * 100_000) * 10;
    const src = await principalOf(h, newUserId());
    const jti = await tokens.claimJoin(src, c.id, now);
    const first = await tokens.recordQueueTokenInSql({ userId: src.userId, jti, concertId: c.id, seq: base, issuedAt: now, expiresAt: now + 60_000 },
      [], now, backend, { srcJti: src.jti });
    expect(first.seq).toBe(base);
    const others = await Promise.all(Array.from({ length: 4 }, async (_, i) => {
      const s = await principalOf(h, newUserId());
      return { s, jti: await tokens.claimJoin(s, c.id, now), seq: base + 1 + i };
    }));
    const outcomes = await Promise.allSettled([
      ...others.map((o) => tokens.recordQueueTokenInSql({ userId: o.s.userId, jti: o.jti, concertId: c.id, seq: o.seq, issuedAt: now, expiresAt: now + 60_000 },
        [o.s.jti], now, backend, { srcJti: o.s.jti })),
      tokens.recordQueueTokenInSql({ userId: src.userId, jti, concertId: c.id, seq: base + 9, issuedAt: now, expiresAt: now + 60_000 },
        [src.jti], now, backend, { srcJti: src.jti }),
    ]);
    expect(outcomes.slice(0, 4).every((o) => o.status === 'fulfilled')).toBe(true);
    expect(outcomes[4]).toMatchObject({ status: 'rejected', reason: { code: 'UNAVAILABLE' } });
    const entry = await h.svc.database.db.selectFrom('queue_entries').select('seq').where('concert_id', '=', c.id)
      .where('seq', '=', base + 9).executeTakeFirst();
    expect(entry).toBeUndefined();
  });
});

describeEach('join claims', {}, (h) => {
  const claimOf = (src: { jti: string; userId: number }, concertId: number) => ({ srcJti: src.jti, concertId, userId: src.userId, now: h.clock.now() });
  const replayRow = (srcJti: string, concertId: number) => h.svc.database.db.selectFrom('join_replays').select('queue_jti')
    .where('src_jti', '=', srcJti).where('concert_id', '=', concertId).executeTakeFirst();
  const record = (src: { jti: string; userId: number }, concertId: number, jti: string, seq: number, issuedAt = h.clock.now()) =>
    h.svc.ctx.tokens.recordQueueTokenInSql({ userId: src.userId, jti, concertId, seq, issuedAt, expiresAt: issuedAt + 60_000 },
      [src.jti], h.clock.now(), h.svc.ctx.backends[h.mode], { srcJti: src.jti });
  const base = () => 900_000 + Math.floor(random() * 10_000) * 10;

  test('copies of a join share one claim; SQL has it once the token is recorded (in Redis mode, not before)', async () => {
    const c = await newConcert(h);
    const store = h.svc.ctx.backends[h.mode].tokens;
    const src = await principalOf(h, newUserId());
    const claims = await Promise.all([store.claimJoin(claimOf(src, c.id)), store.claimJoin(claimOf(src, c.id))]);
    // One id and one issue time: every copy signs the same token from them.
    expect(claims[1]).toEqual(claims[0]);
    const copies = [claims[0]!.jti, claims[1]!.jti] as const;
    // Redis mode claims with no SQL on the join's way; SQL mode claims in SQL.
    expect((await replayRow(src.jti, c.id))?.queue_jti).toBe(h.mode === 'redis' ? undefined : copies[0]);
    const seq = base();
    // Recorded a moment after the claim, from the claim's issue time (as QueueService.join does).
    h.clock.advance(1_500);
    const [a, b] = await Promise.all([record(src, c.id, copies[0], seq, claims[0]!.issuedAt), record(src, c.id, copies[1], seq, claims[1]!.issuedAt)]);
    expect(b.token).toBe(a.token);
    // The record's issue time is the claim's, not the moment it was written.
    const recorded = await h.svc.database.db.selectFrom('tokens').select('created_at').where('jti', '=', copies[0]).executeTakeFirstOrThrow();
    expect(recorded.created_at).toBe(claims[0]!.issuedAt);
    expect((await replayRow(src.jti, c.id))?.queue_jti).toBe(copies[0]);
    expect(await store.giveBackJoinClaim({ ...claimOf(src, c.id), queueJti: copies[0] })).toBe(false);
    expect((await store.claimJoin(claimOf(src, c.id))).jti).toBe(copies[0]);
  });

  test('a claim given back refuses the copies still under way; the retry takes a new id and is recorded', async () => {
    const c = await newConcert(h);
    const store = h.svc.ctx.backends[h.mode].tokens;
    const src = await principalOf(h, newUserId());
    const { jti: first } = await store.claimJoin(claimOf(src, c.id));
    expect(await store.giveBackJoinClaim({ ...claimOf(src, c.id), queueJti: first })).toBe(true);
    const seq = base();
    await expect(record(src, c.id, first, seq)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const { jti: retry } = await store.claimJoin(claimOf(src, c.id));
    expect(retry).not.toBe(first);
    await expect(record(src, c.id, retry, seq + 1)).resolves.toMatchObject({ jti: retry, seq: seq + 1 });
    expect((await replayRow(src.jti, c.id))?.queue_jti).toBe(retry);
    const row = await h.svc.database.db.selectFrom('tokens').select('jti').where('jti', '=', first).executeTakeFirst();
    expect(row).toBeUndefined();
  });

  test('a claim SQL has and Redis does not (made in SQL mode) is what the retry of a refused join takes', async () => {
    const c = await newConcert(h);
    const store = h.svc.ctx.backends[h.mode].tokens;
    const src = await principalOf(h, newUserId());
    // Claimed in SQL by an attempt that never finished (SQL mode, or the pre-queue).
    const inSql = await h.svc.ctx.tokens.claimJoin(src, c.id, h.clock.now());
    const { jti: mine } = await store.claimJoin(claimOf(src, c.id));
    const seq = base();
    if (h.mode === 'sql') {
      expect(mine).toBe(inSql);
    } else {
      expect(mine).not.toBe(inSql);
      await expect(record(src, c.id, mine, seq)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      // The refused join gives its claim back: Redis now names SQL's claim for the retry.
      expect(await store.giveBackJoinClaim({ ...claimOf(src, c.id), queueJti: mine })).toBe(true);
      expect((await store.claimJoin(claimOf(src, c.id))).jti).toBe(inSql);
    }
    await expect(record(src, c.id, inSql, seq + 1)).resolves.toMatchObject({ jti: inSql });
  });
});
