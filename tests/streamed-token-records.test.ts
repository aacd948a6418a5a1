/**
 * A join's queue token carried by its write-behind stream entry (joinQueue's 'join' and 'token'
 * events) is recorded by the write-behind under the rules the join's own record keeps
 * (recordStreamedTokens): its claim names it, its entry number is its user's, no later place of
 * the user in the concert; a refused token is recorded revoked; a token SQL knows is left alone.
 * Each join here is made the way Redis mode makes one (claim in Redis, place in Redis with the
 * token's record in the stream) and nothing is written to SQL before the stream is drained.
 */
import { expect, test } from 'bun:test';
import { describeEach, newConcert, newUserId, type Harness } from './helpers/harness.ts';
import { userToken } from './helpers/http.ts';
import { givenBack } from '../src/modules/tokens/join-replays.repo.ts';

async function principalOf(h: Harness, userId: number) {
  const token = await userToken(h.app, userId);
  return (await h.svc.ctx.tokens.decode(token, h.clock.now()))!;
}

describeEach('queue tokens recorded from the stream', { modes: ['redis'] }, (h) => {
  const db = () => h.svc.database.db;
  const ttlMs = () => h.svc.config.queueTokenTtlSeconds * 1000;
  const tokenRow = (jti: string) => db().selectFrom('tokens').select(['user_id', 'concert_id', 'seq', 'revoked_at', 'expires_at', 'created_at'])
    .where('jti', '=', jti).executeTakeFirst();
  const claimRow = (src: string, concertId: number) => db().selectFrom('join_replays').select('queue_jti')
    .where('src_jti', '=', src).where('concert_id', '=', concertId).executeTakeFirst();
  const drain = (concertId: number) => h.svc.ctx.writeBehind.drainConcertFully(concertId);

  /** A Redis-mode join made with `src`, its token's record left to the stream. */
  const joinBehind = async (concertId: number, src: { jti: string; userId: number; typ: string }) => {
    const now = h.clock.now();
    const backend = h.svc.ctx.backends.redis;
    const claim = await backend.tokens.claimJoin({ srcJti: src.jti, concertId, userId: src.userId, now });
    const place = await backend.queue.join(concertId, src.userId, claim.jti, now, {
      issuedAt: claim.issuedAt, expiresAt: claim.issuedAt + ttlMs(), srcJti: src.jti, replacesSrc: true,
    });
    return { jti: claim.jti, issuedAt: claim.issuedAt, seq: place.seq, fresh: place.fresh };
  };

  test('a join written behind: its token, its claim and the user token it spent are in SQL once the stream is drained', async () => {
    const c = await newConcert(h);
    const u = newUserId();
    const src = await principalOf(h, u);
    const j = await joinBehind(c.id, src);
    expect(j.fresh).toBe(true);
    expect(await tokenRow(j.jti)).toBeUndefined();
    h.clock.advance(2_000);
    await drain(c.id);
    expect(await tokenRow(j.jti)).toEqual({
      user_id: u, concert_id: c.id, seq: j.seq, revoked_at: null, expires_at: j.issuedAt + ttlMs(), created_at: j.issuedAt,
    });
    expect((await claimRow(src.jti, c.id))?.queue_jti).toBe(j.jti);
    expect((await tokenRow(src.jti))?.revoked_at).not.toBeNull();
    const entry = await db().selectFrom('queue_entries').select(['user_id', 'status']).where('concert_id', '=', c.id)
      .where('seq', '=', j.seq).executeTakeFirstOrThrow();
    expect(entry).toEqual({ user_id: u, status: 'waiting' });
    // Applied again (a redelivered batch): nothing changes.
    await h.svc.ctx.writeBehind.drainConcertFully(c.id);
    expect((await tokenRow(j.jti))?.revoked_at).toBeNull();
  });

  test('a place kept under a new token: the new token shares the place, the one it replaced is revoked', async () => {
    const c = await newConcert(h);
    const u = newUserId();
    const first = await joinBehind(c.id, await principalOf(h, u));
    h.clock.advance(1_000);
    const second = await joinBehind(c.id, await principalOf(h, u));
    expect(second).toMatchObject({ seq: first.seq, fresh: false });
    await drain(c.id);
    expect(await tokenRow(second.jti)).toMatchObject({ seq: first.seq, revoked_at: null });
    expect((await tokenRow(first.jti))?.revoked_at).not.toBeNull();
    const entries = await db().selectFrom('queue_entries').select(['seq', 'status']).where('concert_id', '=', c.id).execute();
    expect(entries).toEqual([{ seq: first.seq, status: 'waiting' }]);
  });

  test('a join whose claim a refused copy of it gave back is recorded revoked, its user token not spent', async () => {
    const c = await newConcert(h);
    const a = await principalOf(h, newUserId());
    const refused = await joinBehind(c.id, a);
    await db().insertInto('join_replays').values({
      src_jti: a.jti, concert_id: c.id, queue_jti: givenBack(refused.jti), user_id: a.userId, created_at: h.clock.now(),
    }).execute();
    await drain(c.id);
    expect((await tokenRow(refused.jti))?.revoked_at).not.toBeNull();
    expect((await tokenRow(a.jti))?.revoked_at).toBeNull();
    expect((await claimRow(a.jti, c.id))?.queue_jti).toBe(givenBack(refused.jti));
  });

  test('a claim SQL mode made for an attempt that recorded nothing is taken over; one whose token SQL mode recorded stays, and the later place wins', async () => {
    const c = await newConcert(h);
    const a = await principalOf(h, newUserId());
    const b = await principalOf(h, newUserId());
    const now = h.clock.now();
    // Claimed in SQL mode by attempts with the same user tokens: a's never recorded its token
    // (it failed before its answer); b's did, at a number SQL mode gave (above Redis's).
    await db().insertInto('join_replays').values([
      { src_jti: a.jti, concert_id: c.id, queue_jti: 'failed-attempt', user_id: a.userId, created_at: now },
      { src_jti: b.jti, concert_id: c.id, queue_jti: 'made-in-sql', user_id: b.userId, created_at: now },
    ]).execute();
    const aj = await joinBehind(c.id, a);
    const bj = await joinBehind(c.id, b);
    await db().insertInto('tokens').values({
      jti: 'made-in-sql', user_id: b.userId, typ: 'queue', concert_id: c.id, seq: bj.seq + 500, expires_at: now + ttlMs(), revoked_at: null, created_at: now,
    }).execute();
    await drain(c.id);
    expect(await tokenRow(aj.jti)).toMatchObject({ seq: aj.seq, revoked_at: null });
    expect((await claimRow(a.jti, c.id))?.queue_jti).toBe(aj.jti);
    expect((await tokenRow(bj.jti))?.revoked_at).not.toBeNull();
    expect((await tokenRow('made-in-sql'))?.revoked_at).toBeNull();
    expect((await claimRow(b.jti, c.id))?.queue_jti).toBe('made-in-sql');
    // Both joins were made: the user tokens they were made with are spent.
    expect((await tokenRow(a.jti))?.revoked_at).not.toBeNull();
    expect((await tokenRow(b.jti))?.revoked_at).not.toBeNull();
  });

  test('a claim another attempt gave back is taken over, as the join itself would', async () => {
    const c = await newConcert(h);
    const a = await principalOf(h, newUserId());
    const j = await joinBehind(c.id, a);
    await db().insertInto('join_replays').values({
      src_jti: a.jti, concert_id: c.id, queue_jti: givenBack('an-earlier-attempt'), user_id: a.userId, created_at: h.clock.now(),
    }).execute();
    await drain(c.id);
    expect(await tokenRow(j.jti)).toMatchObject({ seq: j.seq, revoked_at: null });
    expect((await claimRow(a.jti, c.id))?.queue_jti).toBe(j.jti);
  });

  test('a later place of the user in the concert wins: the streamed token is recorded revoked; one in another concert is no rival', async () => {
    const c = await newConcert(h);
    const elsewhere = await newConcert(h);
    const u = newUserId();
    const j = await joinBehind(c.id, await principalOf(h, u));
    const there = await joinBehind(elsewhere.id, await principalOf(h, u));
    // SQL already holds a later place of the user in this concert (taken in SQL mode meanwhile).
    const now = h.clock.now();
    await db().insertInto('tokens').values({
      jti: 'later-place', user_id: u, typ: 'queue', concert_id: c.id, seq: j.seq + 500, expires_at: now + ttlMs(), revoked_at: null, created_at: now,
    }).execute();
    await drain(c.id);
    await drain(elsewhere.id);
    expect((await tokenRow(j.jti))?.revoked_at).not.toBeNull();
    expect((await tokenRow('later-place'))?.revoked_at).toBeNull();
    expect(await tokenRow(there.jti)).toMatchObject({ concert_id: elsewhere.id, revoked_at: null });
  });

  test("an entry number SQL gave to another user refuses the token; a token SQL knows (a leave's revoked row) stays as it is", async () => {
    const c = await newConcert(h);
    const taken = await joinBehind(c.id, await principalOf(h, newUserId()));
    const left = await joinBehind(c.id, await principalOf(h, newUserId()));
    const now = h.clock.now();
    await db().insertInto('queue_entries').values({
      concert_id: c.id, seq: taken.seq, user_id: newUserId(), status: 'waiting', joined_at: now,
      admitted_at: null, active_until: null, last_seen_at: now, updated_at: now,
    }).execute();
    await db().insertInto('tokens').values({
      jti: left.jti, user_id: 0, typ: 'queue', concert_id: c.id, seq: left.seq, expires_at: now + ttlMs(), revoked_at: now, created_at: now,
    }).execute();
    await drain(c.id);
    expect((await tokenRow(taken.jti))?.revoked_at).not.toBeNull();
    expect(await tokenRow(left.jti)).toMatchObject({ user_id: 0, revoked_at: now });
  });
});
