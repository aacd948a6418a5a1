/**
 * Proof of work on joins (JOIN_POW_BITS): GET /v1/challenge, 428 without an answer, 400
 * CHALLENGE_FAILED for a wrong, tampered, forged, expired or reused one (also across a switch
 * between Redis and SQL mode), 201 with a good one; joins that take no new place (retries and
 * rejoins of the token lifecycle) are never refused for a challenge they already spent; with
 * JOIN_POW_BITS=0 nothing changes. Both service modes, both SQL engines.
 */
import { expect, test } from 'bun:test';
import { ChallengeCodec } from '../src/modules/pow/challenge.ts';
import { describeEach, enterMode, newConcert, newUserId, queueStats, type Harness } from './helpers/harness.ts';
import { call, userToken } from './helpers/http.ts';
import { getChallenge, joinWith, solvedChallenge, solvePow, wrongNonce } from './helpers/pow.ts';

const BITS = 8;
const POW = { env: { JOIN_POW_BITS: String(BITS) } };

const expectCode = (r: { status: number; body: any }, status: number, code: string) =>
  expect([r.status, r.body?.error?.code]).toEqual([status, code]);

async function spentRows(h: Harness) {
  return h.svc.database.db.selectFrom('spent_challenges').selectAll().execute();
}

describeEach('GET /v1/challenge', POW, (h) => {
  test('answers a challenge for the configured bits, alive for 120 s, never cached', async () => {
    const r = await call(h.app, 'GET', '/v1/challenge');
    expect(r.status).toBe(200);
    expect(r.body.bits).toBe(BITS);
    expect(typeof r.body.challenge).toBe('string');
    expect(Date.parse(r.body.expiresAt)).toBe(h.clock.now() + 120_000);
    expect(r.headers.get('Cache-Control')).toBe('no-store');
    // Each call a new one.
    expect((await getChallenge(h.app)).challenge).not.toBe(r.body.challenge);
  });
});

describeEach('a join with JOIN_POW_BITS > 0', POW, (h) => {
  test('without an answer: 428 CHALLENGE_REQUIRED, and no place is taken', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const r = await joinWith(h.app, c.id, u);
    expectCode(r, 428, 'CHALLENGE_REQUIRED');
    expect(r.body.error.message).toContain('/v1/challenge');
    expectCode(await joinWith(h.app, c.id, u, {}), 428, 'CHALLENGE_REQUIRED');
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 0, lastEntry: 0 });
    // The token was not spent: a solved challenge then joins.
    expect((await joinWith(h.app, c.id, u, { pow: await solvedChallenge(h.app) })).status).toBe(201);
  });

  test('a good answer: 201, and the challenge is recorded as spent by this join', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const pow = await solvedChallenge(h.app);
    const r = await joinWith(h.app, c.id, u, { pow });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ status: 'waiting', position: 1 });
    const id = pow.challenge.split('.')[2];
    expect((await spentRows(h)).find((row) => row.id === id)?.spent_by).toEndWith(`:${c.id}`);
  });

  test('a wrong nonce, a tampered or forged challenge: 400 CHALLENGE_FAILED, nothing changes', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const ch = await getChallenge(h.app);
    const wrong = await joinWith(h.app, c.id, u, { pow: { challenge: ch.challenge, nonce: wrongNonce(ch.challenge, BITS) } });
    expectCode(wrong, 400, 'CHALLENGE_FAILED');
    expect(wrong.body.error.message).toContain('zero bits');
    const [bits, expiry, rand, mac] = ch.challenge.split('.') as [string, string, string, string];
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    const tampered = [
      `1.${expiry}.${rand}.${mac}`, // fewer bits
      `${bits}.${Number(expiry) + 600_000}.${rand}.${mac}`, // a longer life
      `${bits}.${expiry}.${flip(rand)}.${mac}`, // another id (a replay under a new name)
      `${bits}.${expiry}.${rand}.${flip(mac)}`,
      'not-a-challenge',
    ];
    for (const challenge of tampered) {
      const r = await joinWith(h.app, c.id, u, { pow: { challenge, nonce: solvePow(challenge, Number(challenge.split('.')[0]) || 1) } });
      expectCode(r, 400, 'CHALLENGE_FAILED');
      expect(r.body.error.message).toContain('not a challenge this service issued');
    }
    // Signed with another key: what a client could make up for itself.
    const forged = new ChallengeCodec('another-secret-that-is-at-least-32-bytes!').issue(BITS, h.clock.now());
    expectCode(await joinWith(h.app, c.id, u, { pow: { challenge: forged.challenge, nonce: solvePow(forged.challenge, BITS) } }),
      400, 'CHALLENGE_FAILED');
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 0, lastEntry: 0 });
    // None of these spent the real challenge.
    expect((await joinWith(h.app, c.id, u, { pow: { challenge: ch.challenge, nonce: solvePow(ch.challenge, BITS) } })).status).toBe(201);
  });

  test('a malformed answer: 400 VALIDATION_FAILED naming the field', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const cases: [unknown, string][] = [
      [{ pow: 'abc' }, 'pow'],
      [{ pow: { challenge: 'x' } }, 'pow.nonce'],
      [{ pow: { challenge: 'x', nonce: 5 } }, 'pow.nonce'],
      [{ pow: { challenge: 'x', nonce: 'has space' } }, 'pow.nonce'],
      [{ pow: { challenge: 'x', nonce: 'n'.repeat(65) } }, 'pow.nonce'],
      [{ pow: { challenge: '', nonce: '1' } }, 'pow.challenge'],
      [{ pow: { challenge: 'x', nonce: '1', extra: 1 } }, 'pow.extra'],
      [{ powx: {} }, 'powx'],
    ];
    for (const [body, field] of cases) {
      const r = await joinWith(h.app, c.id, u, body);
      expectCode(r, 400, 'VALIDATION_FAILED');
      expect(r.body.error.details[0].field).toBe(field);
    }
    const notJson = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token: u, raw: '{"pow":' });
    expectCode(notJson, 400, 'VALIDATION_FAILED');
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 0 });
  });

  test('expired (the clock moved past 120 s): 400 CHALLENGE_FAILED', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const pow = await solvedChallenge(h.app);
    h.clock.advance(120_001);
    const r = await joinWith(h.app, c.id, u, { pow });
    expectCode(r, 400, 'CHALLENGE_FAILED');
    expect(r.body.error.message).toContain('expired');
    // At 120 s exactly it is still good.
    const fresh = await solvedChallenge(h.app);
    h.clock.advance(120_000);
    expect((await joinWith(h.app, c.id, await userToken(h.app, newUserId()), { pow: fresh })).status).toBe(201);
  });

  test('reused by another join (another user, another concert, the same user\'s other token): 400 CHALLENGE_FAILED', async () => {
    const c = await newConcert(h);
    const other = await newConcert(h);
    const userId = newUserId();
    const pow = await solvedChallenge(h.app);
    expect((await joinWith(h.app, c.id, await userToken(h.app, userId), { pow })).status).toBe(201);
    for (const [concertId, token] of [
      [c.id, await userToken(h.app, newUserId())],
      [other.id, await userToken(h.app, newUserId())],
      [other.id, await userToken(h.app, userId)],
    ] as const) {
      const r = await joinWith(h.app, concertId, token, { pow });
      expectCode(r, 400, 'CHALLENGE_FAILED');
      expect(r.body.error.message).toContain('already used');
    }
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 1 });
    expect(await queueStats(h.app, other.id)).toMatchObject({ waiting: 0 });
  });

  test('one challenge raced by many users: exactly one place', async () => {
    const c = await newConcert(h);
    const tokens = await Promise.all(Array.from({ length: 12 }, () => userToken(h.app, newUserId())));
    const pow = await solvedChallenge(h.app);
    const answers = await Promise.all(tokens.map((t) => joinWith(h.app, c.id, t, { pow })));
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([201, ...Array(11).fill(400)]);
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 1, lastEntry: 1 });
  });

  test('the token lifecycle: retries and rejoins are answered, never refused for their spent challenge', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const pow = await solvedChallenge(h.app);
    const first = await joinWith(h.app, c.id, u, { pow });
    expect(first.status).toBe(201);
    // A retry after a lost answer, with the same body or without one.
    const retried = await joinWith(h.app, c.id, u, { pow });
    expect([retried.status, retried.body.token]).toEqual([200, first.body.token]);
    const bare = await joinWith(h.app, c.id, u);
    expect([bare.status, bare.body.token]).toEqual([200, first.body.token]);
    // Joining again with the live queue token needs nothing either.
    const again = await joinWith(h.app, c.id, first.body.token);
    expect([again.status, again.body.token]).toEqual([200, first.body.token]);
    expect([(await joinWith(h.app, c.id, first.body.token, { pow })).status]).toEqual([200]);
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 1, lastEntry: 1 });
  });

  test('concurrent double-submits of one join with one challenge: one 201, the rest 200 with the same token', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const pow = await solvedChallenge(h.app);
    const answers = await Promise.all(Array.from({ length: 6 }, () => joinWith(h.app, c.id, u, { pow })));
    expect(answers.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    expect(new Set(answers.map((r) => r.body.token)).size).toBe(1);
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 1, lastEntry: 1 });
  });

  test('the join that spent a challenge but was not answered may show it again; another join may not', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const src = (await h.svc.ctx.tokens.decode(u, h.clock.now()))!;
    const pow = await solvedChallenge(h.app);
    // The check passed and recorded the challenge, then the join failed before it took a place.
    await h.svc.ctx.joinProof.assertSolved(pow, { srcJti: src.jti, concertId: c.id }, h.clock.now());
    expect((await joinWith(h.app, c.id, u, { pow })).status).toBe(201);
    const stranger = await userToken(h.app, newUserId());
    expectCode(await joinWith(h.app, c.id, stranger, { pow }), 400, 'CHALLENGE_FAILED');
  });

  test('a new place from a queue token (another concert) needs a fresh challenge', async () => {
    const c = await newConcert(h);
    const other = await newConcert(h);
    const first = await joinWith(h.app, c.id, await userToken(h.app, newUserId()), { pow: await solvedChallenge(h.app) });
    expectCode(await joinWith(h.app, other.id, first.body.token), 428, 'CHALLENGE_REQUIRED');
    // Refused: the first place is untouched.
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: first.body.token })).status).toBe(200);
    const moved = await joinWith(h.app, other.id, first.body.token, { pow: await solvedChallenge(h.app) });
    expect([moved.status, moved.body.concertId]).toEqual([201, other.id]);
  });

  test('the sweeper drops a spent record once its challenge could not be accepted anyway', async () => {
    const c = await newConcert(h);
    const pow = await solvedChallenge(h.app);
    expect((await joinWith(h.app, c.id, await userToken(h.app, newUserId()), { pow })).status).toBe(201);
    const id = pow.challenge.split('.')[2];
    const row = (await spentRows(h)).find((r) => r.id === id)!;
    expect(row.keep_until).toBe(Number(pow.challenge.split('.')[1]) + 60_000);
    await h.svc.ctx.sweeper.sweepOnce(row.keep_until);
    expect((await spentRows(h)).some((r) => r.id === id)).toBe(true);
    expect((await h.svc.ctx.sweeper.sweepOnce(row.keep_until + 1)).spentChallenges).toBeGreaterThanOrEqual(1);
    expect((await spentRows(h)).some((r) => r.id === id)).toBe(false);
  });
});

describeEach('a challenge spent in one mode', { ...POW, modes: ['redis'] }, (h) => {
  const backToRedis = async () => {
    expect(await h.svc.ctx.coordinator.rebuildNow()).toBe(true);
    expect(h.svc.ctx.mode.current).toBe('redis');
  };

  test('spent in Redis mode: refused in SQL mode', async () => {
    const c = await newConcert(h);
    const pow = await solvedChallenge(h.app);
    expect((await joinWith(h.app, c.id, await userToken(h.app, newUserId()), { pow })).status).toBe(201);
    await enterMode(h.svc, 'sql');
    try {
      expectCode(await joinWith(h.app, c.id, await userToken(h.app, newUserId()), { pow }), 400, 'CHALLENGE_FAILED');
    } finally {
      await backToRedis();
    }
  });

  test('spent in SQL mode: refused back in Redis mode (Redis never saw it)', async () => {
    const c = await newConcert(h);
    const pow = await solvedChallenge(h.app);
    await enterMode(h.svc, 'sql');
    try {
      expect((await joinWith(h.app, c.id, await userToken(h.app, newUserId()), { pow })).status).toBe(201);
    } finally {
      await backToRedis();
    }
    const id = pow.challenge.split('.')[2]!;
    expect(await h.svc.redis.exists(`pow:spent:${id}`)).toBe(0);
    expectCode(await joinWith(h.app, c.id, await userToken(h.app, newUserId()), { pow }), 400, 'CHALLENGE_FAILED');
    // Redis now knows it too: the next replay is refused without SQL.
    expect(await h.svc.redis.exists(`pow:spent:${id}`)).toBe(1);
  });

  test('spent in SQL mode by a join not yet answered: a stranger in Redis mode does not take it from that join', async () => {
    const c = await newConcert(h);
    const u = await userToken(h.app, newUserId());
    const src = (await h.svc.ctx.tokens.decode(u, h.clock.now()))!;
    const pow = await solvedChallenge(h.app);
    await enterMode(h.svc, 'sql');
    try {
      // The check passed and recorded the challenge; the join then failed before taking a place.
      await h.svc.ctx.joinProof.assertSolved(pow, { srcJti: src.jti, concertId: c.id }, h.clock.now());
    } finally {
      await backToRedis();
    }
    expectCode(await joinWith(h.app, c.id, await userToken(h.app, newUserId()), { pow }), 400, 'CHALLENGE_FAILED');
    expect(await h.svc.redis.get(`pow:spent:${pow.challenge.split('.')[2]}`)).toBe(`${src.jti}:${c.id}`);
    expect((await joinWith(h.app, c.id, u, { pow })).status).toBe(201);
  });

  test('Redis mode records the spender with the challenge\'s life as TTL', async () => {
    const c = await newConcert(h);
    const pow = await solvedChallenge(h.app);
    const u = await userToken(h.app, newUserId());
    expect((await joinWith(h.app, c.id, u, { pow })).status).toBe(201);
    const key = `pow:spent:${pow.challenge.split('.')[2]}`;
    const src = (await h.svc.ctx.tokens.decode(u, h.clock.now()))!;
    expect(await h.svc.redis.get(key)).toBe(`${src.jti}:${c.id}`);
    const ttl = await h.svc.redis.pttl(key);
    expect(ttl).toBeGreaterThan(170_000);
    expect(ttl).toBeLessThanOrEqual(180_000);
  });
});

describeEach('JOIN_POW_BITS=0 (the default)', { env: { JOIN_POW_BITS: '0' } }, (h) => {
  test('joins need no body, as before; GET /v1/challenge answers 404 saying why', async () => {
    const c = await newConcert(h);
    expect((await joinWith(h.app, c.id, await userToken(h.app, newUserId()))).status).toBe(201);
    expect((await joinWith(h.app, c.id, await userToken(h.app, newUserId()), {})).status).toBe(201);
    // An answer is not needed, and not checked.
    expect((await joinWith(h.app, c.id, await userToken(h.app, newUserId()), { pow: { challenge: 'x', nonce: '1' } })).status).toBe(201);
    const r = await call(h.app, 'GET', '/v1/challenge');
    expectCode(r, 404, 'NOT_FOUND');
    expect(r.body.error.message).toContain('JOIN_POW_BITS=0');
    expect(await queueStats(h.app, c.id)).toMatchObject({ waiting: 3 });
  });
});
