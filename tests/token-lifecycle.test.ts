/**
 * Token lifecycle: a client that retries is never locked out. Joining again with the live queue
 * token answers with that very token; a join retried with the token it replaced (its answer was
 * lost) gets the same answer for JOIN_REPLAY_SECONDS, across mode switches; concurrent
 * double-submits share one place and one token; and a fan who keeps polling keeps a live token
 * past its original life. Both service modes, both SQL engines.
 */
import { expect, test } from 'bun:test';
import { decode } from 'hono/jwt';
import { ENTRY_NUMBER_BLOCK } from '../src/modules/queue/queue.redis.ts';
import type { TokenClaims } from '../src/modules/tokens/jwt.ts';
import { describeEach, enterMode, newConcert, newUserId, patchQueue, queueStats, recorded, type Harness } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

const poll = (h: Harness, token: string) => call(h.app, 'GET', '/v1/queue/me', { token });
// The claims as the service put them (read, not verified: the test clock runs ahead of the tokens' iat/exp).
const claims = (_h: Harness, token: string) => decode(token).payload as unknown as TokenClaims;
const jtiOf = (h: Harness, token: string) => claims(h, token).jti;

/**
 * Fires `n` requests, the i-th after i × `turns` turns of the event loop: all run at once, but
 * later ones reach the service while earlier ones are at different steps of their join (in
 * lockstep every request would pass each step together and some orders would never be seen).
 */
async function staggered<T>(n: number, turns: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const started: Promise<T>[] = [];
  for (let i = 0; i < n; i++) {
    started.push(fn(i));
    for (let t = 0; t < turns; t++) await new Promise((r) => setImmediate(r));
  }
  return Promise.all(started);
}

async function tokenRow(h: Harness, jti: string) {
  return h.svc.database.db.selectFrom('tokens').selectAll().where('jti', '=', jti).executeTakeFirstOrThrow();
}

async function queueTokensOf(h: Harness, userId: number, concertId: number) {
  return h.svc.database.db.selectFrom('tokens').select(['jti', 'seq', 'revoked_at'])
    .where('user_id', '=', userId).where('typ', '=', 'queue').where('concert_id', '=', concertId).execute();
}

describeEach('joining again', {}, (h) => {
  test('with the live queue token of the same concert: 200, the same token string and place, no new entry', async () => {
    const c = await newConcert(h);
    await join(h.app, c.id, await userToken(h.app, newUserId()));
    const userId = newUserId();
    const first = await join(h.app, c.id, await userToken(h.app, userId));
    expect(first.status).toBe(201);
    const again = await join(h.app, c.id, first.body.token);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ token: first.body.token, status: 'waiting', position: 2, ahead: 1 });
    await recorded(h, c.id);
    // The answer's expiry is the token's own (whole seconds, as the JWT carries it).
    expect(Date.parse(again.body.expiresAt)).toBe(claims(h, first.body.token).exp * 1000);
    expect((await poll(h, first.body.token)).body).toMatchObject({ status: 'waiting', position: 2 });
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 2, lastEntry: 2 });
    expect(await queueTokensOf(h, userId, c.id)).toHaveLength(1);
  });

  test('with the live queue token while active: 200, the same token, still active', async () => {
    const c = await newConcert(h);
    const first = await join(h.app, c.id, await userToken(h.app, newUserId()));
    await h.tick();
    const again = await join(h.app, c.id, first.body.token);
    expect([again.status, again.body.token, again.body.status]).toEqual([200, first.body.token, 'active']);
    expect((await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules`, { token: first.body.token })).status).toBe(200);
  });
});

describeEach('a join retried with the token it replaced', {}, (h) => {
  test('within JOIN_REPLAY_SECONDS: 200 with the same queue token and place; after it: 401', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const first = await join(h.app, c.id, u);
    expect(first.status).toBe(201);
    // Others join after: the replayed place is still the first one, not a new one at the back.
    await join(h.app, c.id, await userToken(h.app, newUserId()));
    h.clock.advance((h.svc.config.joinReplaySeconds - 1) * 1000);
    const retry = await join(h.app, c.id, u);
    expect(retry.status).toBe(200);
    expect(retry.body).toMatchObject({ token: first.body.token, expiresAt: first.body.expiresAt, status: 'waiting', position: 1 });
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 2, lastEntry: 2 });
    h.clock.advance(1000);
    const late = await join(h.app, c.id, u);
    expect([late.status, late.body.error?.code]).toEqual([401, 'UNAUTHENTICATED']);
    // The place itself is untouched.
    expect((await poll(h, first.body.token)).body).toMatchObject({ status: 'waiting', position: 1 });
  });

  test('the sweeper drops a join claim only once no token could replay it', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const first = await join(h.app, c.id, u);
    expect(first.status).toBe(201);
    await recorded(h, c.id);
    const src = jtiOf(h, u);
    const claimOf = () => h.svc.database.db.selectFrom('join_replays').select('queue_jti').where('src_jti', '=', src).executeTakeFirst();
    const cfg = h.svc.config;
    const keepMs = 1000 * Math.max(cfg.joinReplaySeconds, cfg.userTokenTtlSeconds, cfg.queueTokenTtlSeconds);
    h.clock.advance(keepMs - 1000);
    await h.svc.ctx.sweeper.sweepOnce(h.clock.now());
    expect((await claimOf())?.queue_jti).toBe(jtiOf(h, first.body.token));
    h.clock.advance(2000);
    expect((await h.svc.ctx.sweeper.sweepOnce(h.clock.now())).joinClaims).toBeGreaterThanOrEqual(1);
    expect(await claimOf()).toBeUndefined();
  });

  test('a refused copy of a join gives the claim back only when no copy recorded the token; a copy recording after that is refused', async () => {
    const c = await newConcert(h);
    const tokens = h.svc.ctx.tokens;
    // A copy answered (the token recorded): the refused one keeps the claim, and so the place.
    const u = await userToken(h.app, newUserId());
    const first = await join(h.app, c.id, u);
    expect(first.status).toBe(201);
    await recorded(h, c.id);
    const src = (await tokens.decode(u, h.clock.now()))!;
    expect(await tokens.dropJoinClaim(src, c.id, jtiOf(h, first.body.token))).toBe(false);
    expect((await poll(h, first.body.token)).status).toBe(200);
    expect((await join(h.app, c.id, u)).body.token).toBe(first.body.token);
    // Nothing recorded yet: the claim goes, and a copy that records afterwards is refused (503).
    const v = await userToken(h.app, newUserId());
    const src2 = (await tokens.decode(v, h.clock.now()))!;
    const jti = await tokens.claimJoin(src2, c.id, h.clock.now());
    expect(await tokens.dropJoinClaim(src2, c.id, jti)).toBe(true);
    const late = tokens.recordQueueTokenInSql({ userId: src2.userId, jti, concertId: c.id, seq: 999_999, issuedAt: h.clock.now(), expiresAt: h.clock.now() + 60_000 },
      [src2.jti], h.clock.now(), h.svc.ctx.backends[h.mode], { srcJti: src2.jti });
    await expect(late).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    // Refused means nothing changed: the user token still joins (a new claim, a new place).
    const again = await join(h.app, c.id, v);
    expect(again.status).toBe(201);
    expect(jtiOf(h, again.body.token)).not.toBe(jti);
  });

  test('the place was left: 401', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const first = await join(h.app, c.id, u);
    expect((await call(h.app, 'DELETE', '/v1/queue/me', { token: first.body.token })).status).toBe(204);
    const retry = await join(h.app, c.id, u);
    expect([retry.status, retry.body.error?.code]).toEqual([401, 'UNAUTHENTICATED']);
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 0, lastEntry: 1 });
  });

  test('the queue token was replaced since (joined again with another user token): 401', async () => {
    const c = await newConcert(h);
    const userId = newUserId();
    const u1 = await userToken(h.app, userId);
    await join(h.app, c.id, u1);
    const second = await join(h.app, c.id, await userToken(h.app, userId));
    expect(second.status).toBe(200);
    expect((await join(h.app, c.id, u1)).status).toBe(401);
    expect((await poll(h, second.body.token)).status).toBe(200);
  });

  test('only in the concert it joined: the replaced token joining another concert → 401', async () => {
    const [a, b] = [await newConcert(h), await newConcert(h)];
    const u = await userToken(h.app, newUserId());
    expect((await join(h.app, a.id, u)).status).toBe(201);
    expect((await join(h.app, b.id, u)).status).toBe(401);
    expect(await queueStats(h.app, b.id)).toMatchObject({ waiting: 0, lastEntry: 0 });
  });

  test('a queue token that moved to another concert: the retry gets the new concert\'s token', async () => {
    const [a, b] = [await newConcert(h), await newConcert(h)];
    const inA = await join(h.app, a.id, await userToken(h.app, newUserId()));
    const inB = await join(h.app, b.id, inA.body.token);
    expect(inB.status).toBe(201);
    const retry = await join(h.app, b.id, inA.body.token);
    expect([retry.status, retry.body.token, retry.body.concertId]).toEqual([200, inB.body.token, b.id]);
    expect((await join(h.app, a.id, inA.body.token)).status).toBe(401);
    expect(await queueStats(h.app, a.id)).toMatchObject({ waiting: 0 });
    expect(await queueStats(h.app, b.id)).toMatchObject({ waiting: 1, lastEntry: 1 });
  });
});

describeEach('a join retried after its place ended', { env: { JOIN_REPLAY_SECONDS: '900', QUEUE_GRACE_SECONDS: '60' } }, (h) => {
  test('the waiting place lapsed (no poll within the grace): 401', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    expect((await join(h.app, c.id, u)).status).toBe(201);
    h.clock.advance(61_000);
    const retry = await join(h.app, c.id, u);
    expect([retry.status, retry.body.error?.code]).toEqual([401, 'UNAUTHENTICATED']);
  });

  test('admitted: the replay answers active; once the active time is over: 401', async () => {
    const c = await newConcert(h);
    await patchQueue(h.app, c.id, { activeTtlSeconds: 120 });
    const u = await userToken(h.app, newUserId());
    const first = await join(h.app, c.id, u);
    await h.tick();
    const retry = await join(h.app, c.id, u);
    expect([retry.status, retry.body.token, retry.body.status]).toEqual([200, first.body.token, 'active']);
    h.clock.advance(121_000);
    expect((await join(h.app, c.id, u)).status).toBe(401);
  });
});

describeEach('the replay record across mode switches', { modes: ['redis'] }, (h) => {
  const backToRedis = async () => {
    expect(await h.svc.ctx.coordinator.rebuildNow()).toBe(true);
    expect(h.svc.ctx.mode.current).toBe('redis');
  };

  test('joined in Redis mode: replayed in SQL mode, and again back in Redis mode', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const first = await join(h.app, c.id, u);
    expect(first.status).toBe(201);
    // Its record has reached SQL before the switch (a switch within the record's lag finds no
    // replay record in SQL: the retry takes a new place, docs/architecture.md).
    await recorded(h, c.id);
    await enterMode(h.svc, 'sql');
    try {
      const inSql = await join(h.app, c.id, u);
      expect([inSql.status, inSql.body.token, inSql.body.position]).toEqual([200, first.body.token, 1]);
      await backToRedis();
      const inRedis = await join(h.app, c.id, u);
      expect([inRedis.status, inRedis.body.token, inRedis.body.position]).toEqual([200, first.body.token, 1]);
      // The rebuilt line numbers new places above what the old Redis had reserved (ENTRY_NUMBER_BLOCK).
      expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 1, lastEntry: ENTRY_NUMBER_BLOCK });
    } finally {
      await enterMode(h.svc, 'redis');
    }
  });

  test('joined in SQL mode: replayed in Redis mode', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    await enterMode(h.svc, 'sql');
    try {
      const first = await join(h.app, c.id, u);
      expect(first.status).toBe(201);
      await backToRedis();
      const retry = await join(h.app, c.id, u);
      expect([retry.status, retry.body.token, retry.body.position]).toEqual([200, first.body.token, 1]);
    } finally {
      await enterMode(h.svc, 'redis');
    }
  });
});

describeEach('concurrent double-submits', {}, (h) => {
  const N = 10;

  test(`${N} concurrent joins with one user token, for 5 users at once: per user one 201, the rest 200 with the same token and place`, async () => {
    const c = await newConcert(h);
    const users = Array.from({ length: 5 }, () => newUserId());
    const tokens = await Promise.all(users.map((u) => userToken(h.app, u)));
    // Users 0-2 in lockstep, users 3-4 staggered: both kinds of interleaving, exact outcomes either way.
    const replies = (await Promise.all(tokens.map((t, i) => i < 3
      ? Promise.all(Array.from({ length: N }, () => join(h.app, c.id, t)))
      : staggered(N, i - 2, () => join(h.app, c.id, t))))).flat();
    const seqs = new Set<number>();
    await recorded(h, c.id);
    for (let i = 0; i < users.length; i++) {
      const mine = replies.slice(i * N, (i + 1) * N);
      expect(mine.map((r) => r.status).sort()).toEqual([...Array(N - 1).fill(200), 201].sort());
      const token = mine[0]!.body.token;
      expect(mine.every((r) => r.body.token === token)).toBe(true);
      expect(new Set(mine.map((r) => r.body.position)).size).toBe(1);
      seqs.add(claims(h, token).seq!);
      const rows = await queueTokensOf(h, users[i]!, c.id);
      expect(rows).toEqual([{ jti: jtiOf(h, token), seq: claims(h, token).seq!, revoked_at: null }]);
      expect((await poll(h, token)).status).toBe(200);
      expect((await tokenRow(h, jtiOf(h, tokens[i]!))).revoked_at).toEqual(expect.any(Number));
    }
    expect([...seqs].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 5, lastEntry: 5 });
  });

  test(`${N} concurrent joins with one queue token: all 200 with that very token`, async () => {
    const c = await newConcert(h);
    const first = await join(h.app, c.id, await userToken(h.app, newUserId()));
    const replies = await Promise.all(Array.from({ length: N }, () => join(h.app, c.id, first.body.token)));
    expect(replies.map((r) => r.status)).toEqual(Array(N).fill(200));
    expect(replies.every((r) => r.body.token === first.body.token && r.body.position === 1)).toBe(true);
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 1, lastEntry: 1 });
  });

  test('the user token and its queue token at once, after the join: all 200 with the same token', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const first = await join(h.app, c.id, u);
    const replies = await Promise.all(Array.from({ length: N }, (_, i) => join(h.app, c.id, i % 2 ? u : first.body.token)));
    expect(replies.map((r) => r.status)).toEqual(Array(N).fill(200));
    expect(replies.every((r) => r.body.token === first.body.token)).toBe(true);
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 1, lastEntry: 1 });
  });

  test(`${N} concurrent joins into another concert with one queue token: one 201, the rest 200 with the same token; the old place is given up`, async () => {
    const [a, b] = [await newConcert(h), await newConcert(h)];
    const userId = newUserId();
    const inA = await join(h.app, a.id, await userToken(h.app, userId));
    const replies = await staggered(N, 2, () => join(h.app, b.id, inA.body.token));
    expect(replies.map((r) => r.status).sort()).toEqual([...Array(N - 1).fill(200), 201].sort());
    const token = replies[0]!.body.token;
    expect(replies.every((r) => r.body.token === token && r.body.concertId === b.id && r.body.position === 1)).toBe(true);
    expect((await poll(h, inA.body.token)).status).toBe(401);
    expect((await poll(h, token)).body).toMatchObject({ concertId: b.id, status: 'waiting', position: 1 });
    expect(await queueStats(h.app, a.id)).toMatchObject({ waiting: 0 });
    expect(await queueStats(h.app, b.id)).toMatchObject({ waiting: 1, lastEntry: 1 });
    expect((await tokenRow(h, jtiOf(h, inA.body.token))).revoked_at).toEqual(expect.any(Number));
  });

  test(`a place that already existed: ${N} concurrent joins with a new user token give no 201, one new token for all`, async () => {
    const c = await newConcert(h);
    const userId = newUserId();
    const old = await join(h.app, c.id, await userToken(h.app, userId));
    const u2 = await userToken(h.app, userId);
    const replies = await Promise.all(Array.from({ length: N }, () => join(h.app, c.id, u2)));
    expect(replies.map((r) => r.status)).toEqual(Array(N).fill(200));
    const token = replies[0]!.body.token;
    expect(token).not.toBe(old.body.token);
    expect(replies.every((r) => r.body.token === token && r.body.position === 1)).toBe(true);
    expect((await poll(h, old.body.token)).status).toBe(401);
    expect((await poll(h, token)).body).toMatchObject({ status: 'waiting', position: 1 });
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 1, lastEntry: 1 });
  });
});

describeEach('queue token refresh through the poll', {}, (h) => {
  test('past half-life the poll answers a new token (same place, new exp); a fan who keeps polling keeps the place past the first hour', async () => {
    const ttlMs = h.svc.config.queueTokenTtlSeconds * 1000;
    const step = 250_000; // under the heartbeat grace
    expect(step).toBeLessThan(h.svc.config.queueGraceSeconds * 1000);
    const c = await newConcert(h);
    const first = await join(h.app, c.id, await userToken(h.app, newUserId()));
    // A refresh extends the token's record: it has reached SQL (written behind in Redis mode).
    await recorded(h, c.id);
    const original = claims(h, first.body.token);
    const joinedAt = h.clock.now();
    let token: string = first.body.token;
    let refreshes = 0;
    while (h.clock.now() - joinedAt < ttlMs + 2 * step) {
      h.clock.advance(step);
      const now = h.clock.now();
      const r = await poll(h, token);
      expect([r.status, r.body.status, r.body.position]).toEqual([200, 'waiting', 1]);
      const due = claims(h, token).exp * 1000 - now < ttlMs / 2;
      expect(r.body.token !== undefined).toBe(due);
      if (!due) continue;
      refreshes++;
      const fresh = claims(h, r.body.token);
      expect(fresh).toMatchObject({ typ: 'queue', jti: original.jti, sub: original.sub, cid: c.id, seq: original.seq });
      expect(fresh.exp).toBe(Math.floor((now + ttlMs) / 1000));
      // Recorded server-side: the SQL record's expiry moved with it.
      expect((await tokenRow(h, original.jti)).expires_at).toBe(now + ttlMs);
      // The old string stays valid until its own exp (a lost poll answer loses nothing).
      expect((await poll(h, token)).status).toBe(200);
      token = r.body.token;
      // The new token is not due yet: no token in its next answer.
      expect((await poll(h, token)).body.token).toBeUndefined();
    }
    expect(refreshes).toBeGreaterThanOrEqual(2);
    expect(h.clock.now()).toBeGreaterThan(original.exp * 1000);
    // The first string has died of old age; the place lives on with the refreshed one.
    expect((await poll(h, first.body.token)).status).toBe(401);
    expect((await join(h.app, c.id, token)).body).toMatchObject({ token, position: 1 });
    await h.tick();
    expect((await poll(h, token)).body.status).toBe('active');
    expect((await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules`, { token })).status).toBe(200);
  });
});

describeEach('a refreshed queue token across mode switches', { modes: ['redis'] }, (h) => {
  test('past the original life, the place is known with the refreshed token in SQL mode and again in Redis mode', async () => {
    const ttlMs = h.svc.config.queueTokenTtlSeconds * 1000;
    const c = await newConcert(h);
    const first = await join(h.app, c.id, await userToken(h.app, newUserId()));
    await recorded(h, c.id);
    let token: string = first.body.token;
    for (let i = 0; i < Math.ceil(ttlMs / 250_000) + 1; i++) {
      h.clock.advance(250_000);
      const r = await poll(h, token);
      expect(r.status).toBe(200);
      token = r.body.token ?? token;
    }
    expect(h.clock.now()).toBeGreaterThan(claims(h, first.body.token).exp * 1000);
    await enterMode(h.svc, 'sql');
    try {
      expect((await poll(h, token)).body).toMatchObject({ status: 'waiting', position: 1 });
      expect(await h.svc.ctx.coordinator.rebuildNow()).toBe(true);
      expect((await poll(h, token)).body).toMatchObject({ status: 'waiting', position: 1 });
    } finally {
      await enterMode(h.svc, 'redis');
    }
  });
});
