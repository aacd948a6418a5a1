/**
 * POST /v1/tokens and the Bearer checks every authenticated endpoint shares: what a client
 * sees for no token, a forged, expired, revoked or replaced one; and the overload rule that
 * keeps tokens past TOKEN_REDIS_LIMIT in SQL only.
 */
import { expect, test } from 'bun:test';
import { loadConfig } from '../src/config.ts';
import { createContext } from '../src/context.ts';
import { createApp } from '../src/http/app.ts';
import { JwtCodec, TOKEN_LEEWAY_SECONDS } from '../src/modules/tokens/jwt.ts';
import { keys } from '../src/redis/keys.ts';
import { describeEach, enterMode, newUserId, type Harness } from './helpers/harness.ts';
import { call, createConcert, join, userToken } from './helpers/http.ts';
import { ADMIN_KEY, JWT_SECRET } from './helpers/service.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function rowCounts(h: Harness) {
  const db = h.svc.database.db;
  const n = async (t: 'users' | 'tokens') =>
    Number((await db.selectFrom(t).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  return { users: await n('users'), tokens: await n('tokens') };
}

describeEach('POST /v1/tokens', {}, (h) => {
  test('issues a user token recorded server-side and creates the user with balance 0', async () => {
    const userId = newUserId();
    const before = h.clock.now();
    const r = await call(h.app, 'POST', '/v1/tokens', { body: { userId } });
    expect(r.status).toBe(201);
    expect(r.headers.get('Content-Type')).toContain('application/json');
    expect(Object.keys(r.body).sort()).toEqual(['expiresAt', 'token', 'userId']);
    expect(r.body.userId).toBe(userId);
    const claims = (await h.svc.ctx.tokens.jwt.verify(r.body.token, Math.floor(before / 1000)))!;
    expect(claims).toMatchObject({ typ: 'user', sub: String(userId) });
    expect(claims.jti).toMatch(UUID);
    const expiresAt = Date.parse(r.body.expiresAt);
    expect(expiresAt - before).toBeGreaterThanOrEqual(1800_000);
    expect(expiresAt - before).toBeLessThan(1800_000 + 5_000);
    expect(claims.exp).toBe(Math.floor(expiresAt / 1000));

    const db = h.svc.database.db;
    expect(await db.selectFrom('users').selectAll().where('id', '=', userId).execute())
      .toEqual([{ id: userId, balance: 0, created_at: expect.any(Number) }]);
    const row = await db.selectFrom('tokens').selectAll().where('jti', '=', claims.jti).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ user_id: userId, typ: 'user', revoked_at: null, expires_at: expiresAt });
    // Write-through: Redis holds the record too, except while the service runs on SQL alone.
    expect(await h.svc.redis.exists(keys.userToken(claims.jti))).toBe(h.mode === 'redis' ? 1 : 0);
  });

  test('a second token for the same user is a new token; the first stays valid', async () => {
    const userId = newUserId();
    const a = await userToken(h.app, userId);
    const b = await userToken(h.app, userId);
    expect(a).not.toBe(b);
    const concert = await createConcert(h.app);
    expect((await join(h.app, concert.id, a)).status).toBe(201);
  });

  test.each([
    ['malformed JSON', '{"userId": 1', 'body'],
    ['a string', '{"userId": "1"}', 'userId'],
    ['a fraction', '{"userId": 1.5}', 'userId'],
    ['null', '{"userId": null}', 'userId'],
    ['zero', '{"userId": 0}', 'userId'],
    ['a negative number', '{"userId": -4}', 'userId'],
    ['past the safe integers', '{"userId": 9007199254740993}', 'userId'],
    ['missing', '{}', 'userId'],
    ['an array body', '[1]', 'body'],
    ['an empty body', '', 'body'],
  ])('userId %s → 400 VALIDATION_FAILED naming the field', async (_what, raw, field) => {
    const before = await rowCounts(h);
    const r = await call(h.app, 'POST', '/v1/tokens', { raw });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_FAILED');
    expect(r.body.error.message).toEqual(expect.any(String));
    expect(r.body.error.details).toContainEqual({ field, problem: expect.any(String) });
    expect(await rowCounts(h)).toEqual(before);
  });

  test('an unknown field → 400 naming it', async () => {
    const r = await call(h.app, 'POST', '/v1/tokens', { body: { userId: 1, admin: true } });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_FAILED');
    expect(JSON.stringify(r.body.error.details)).toContain('admin');
  });

  test('a body that is not JSON at all → 400', async () => {
    const r = await call(h.app, 'POST', '/v1/tokens', { raw: 'userId=1', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_FAILED');
  });
});

describeEach('Bearer tokens', {}, (h) => {
  const other = new JwtCodec('another-secret-that-is-at-least-32-bytes!!');
  const expectUnauthenticated = (r: { status: number; body: any }) => {
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('UNAUTHENTICATED');
  };
  let concertId: number;
  const joinWith = (authorization?: string) =>
    call(h.app, 'POST', `/v1/concerts/${concertId}/queue`, { headers: authorization ? { Authorization: authorization } : {} });

  test('setup: a concert', async () => {
    concertId = (await createConcert(h.app)).id;
  });

  test('no token, another scheme, or a token that is not a JWT → 401', async () => {
    expectUnauthenticated(await joinWith());
    expectUnauthenticated(await joinWith('Basic dXNlcjpwYXNz'));
    expectUnauthenticated(await joinWith('Bearer'));
    expectUnauthenticated(await joinWith('Bearer not-a-jwt'));
    expectUnauthenticated(await joinWith('Bearer a.b.c'));
    expectUnauthenticated(await call(h.app, 'GET', '/v1/queue/me'));
    expectUnauthenticated(await call(h.app, 'DELETE', '/v1/queue/me'));
  });

  test('a token signed with another secret → 401', async () => {
    const token = await userToken(h.app, newUserId());
    const claims = (await h.svc.ctx.tokens.decode(token, h.clock.now()))!;
    const forged = await other.sign({ typ: 'user', sub: String(claims.userId), jti: claims.jti, iat: 0, exp: claims.exp });
    expectUnauthenticated(await joinWith(`Bearer ${forged}`));
    // The same token with its own signature is fine: only the signature was wrong.
    expect((await joinWith(`Bearer ${token}`)).status).toBe(201);
  });

  test('a token expired beyond the clock leeway → 401, even though the server still has its record; within it → accepted', async () => {
    const token = await userToken(h.app, newUserId());
    const c = (await h.svc.ctx.tokens.decode(token, h.clock.now()))!;
    const nowS = Math.floor(h.clock.now() / 1000);
    const signed = (exp: number) => h.svc.ctx.tokens.jwt.sign({ typ: 'user', sub: String(c.userId), jti: c.jti, iat: nowS - 100, exp });
    expectUnauthenticated(await joinWith(`Bearer ${await signed(nowS - TOKEN_LEEWAY_SECONDS)}`));
    // Another instance's clock may be behind: a token a moment past its exp still passes the
    // signature layer, and the record (live here) decides.
    expect((await joinWith(`Bearer ${await signed(nowS - TOKEN_LEEWAY_SECONDS + 1)}`)).status).toBe(201);
  });

  test('a well-signed token the server never issued → 401', async () => {
    const nowS = Math.floor(h.clock.now() / 1000);
    const unknown = await h.svc.ctx.tokens.jwt.sign({ typ: 'user', sub: '77', jti: crypto.randomUUID(), iat: nowS, exp: nowS + 600 });
    expectUnauthenticated(await joinWith(`Bearer ${unknown}`));
    const queue = await h.svc.ctx.tokens.jwt.sign({ typ: 'queue', sub: '77', jti: crypto.randomUUID(), cid: concertId, seq: 1, iat: nowS, exp: nowS + 600 });
    expectUnauthenticated(await call(h.app, 'GET', '/v1/queue/me', { token: queue }));
  });

  test('the user token is revoked by joining: a retried join gets the same answer, anything else → 401', async () => {
    const token = await userToken(h.app, newUserId());
    const first = await joinWith(`Bearer ${token}`);
    expect(first.status).toBe(201);
    // The join's answer may have been lost: its retry is answered again (token lifecycle).
    const retry = await joinWith(`Bearer ${token}`);
    expect(retry.status).toBe(200);
    expect(retry.body.token).toBe(first.body.token);
    expectUnauthenticated(await call(h.app, 'GET', '/v1/me/balance', { token }));
    // SQL has the revocation with the join's record: before the answer in SQL mode, written
    // behind in Redis mode (refused meanwhile by Redis's mark, above).
    if (h.mode === 'redis') await h.svc.ctx.writeBehind.drainConcertFully(concertId);
    const row = await h.svc.database.db.selectFrom('tokens').select('revoked_at')
      .where('jti', '=', (await h.svc.ctx.tokens.decode(token, h.clock.now()))!.jti).executeTakeFirstOrThrow();
    expect(row.revoked_at).toEqual(expect.any(Number));
  });

  test('a queue token replaced by joining again (with a new user token) → 401 everywhere', async () => {
    const userId = newUserId();
    const first = await join(h.app, concertId, await userToken(h.app, userId));
    const second = await join(h.app, concertId, await userToken(h.app, userId));
    expect(second.status).toBe(200);
    expect(second.body.token).not.toBe(first.body.token);
    expectUnauthenticated(await call(h.app, 'GET', '/v1/queue/me', { token: first.body.token }));
    expectUnauthenticated(await call(h.app, 'DELETE', '/v1/queue/me', { token: first.body.token }));
    expectUnauthenticated(await joinWith(`Bearer ${first.body.token}`));
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: second.body.token })).status).toBe(200);
  });

  test('a user token where a queue token is required → 401', async () => {
    const token = await userToken(h.app, newUserId());
    expectUnauthenticated(await call(h.app, 'GET', '/v1/queue/me', { token }));
    expectUnauthenticated(await call(h.app, 'DELETE', '/v1/queue/me', { token }));
  });
});

describeEach('token overload (TOKEN_REDIS_LIMIT=2)', { modes: ['redis'] }, (h) => {
  test('the third live user token is kept in SQL only and still verifies', async () => {
    // A second instance of the service, on the same Redis and SQL, configured with the limit;
    // the count of live tokens starts from zero.
    const config = loadConfig({
      JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'error', TOKEN_REDIS_LIMIT: '2',
      REDIS_URL: h.svc.redisProc.url, DATABASE_URL: h.svc.database.url,
    });
    const app = createApp(createContext(config, { db: h.svc.database.db, redis: h.svc.redis }, { clock: h.clock.now }));
    // A limit this small is counted in one tag, 00 (src/modules/tokens/token-slots.ts).
    await h.svc.redis.del(keys.liveUserTokens('00'));
    const tokens = [];
    for (let i = 0; i < 3; i++) tokens.push(await userToken(app, newUserId()));
    const jtis = await Promise.all(tokens.map(async (t) => (await h.svc.ctx.tokens.decode(t, h.clock.now()))!.jti));
    expect(await Promise.all(jtis.map((j) => h.svc.redis.exists(keys.userToken(j))))).toEqual([1, 1, 0]);
    expect(await h.svc.redis.zcard(keys.liveUserTokens('00'))).toBe(2);
    const sqlRows = await h.svc.database.db.selectFrom('tokens').select('jti').where('jti', 'in', jtis).execute();
    expect(sqlRows).toHaveLength(3);

    const concert = await createConcert(app);
    const j = await join(app, concert.id, tokens[2]!);
    expect(j.status).toBe(201);
    // Revoked in SQL by the join, the overflowed token is refused like any other (a retried
    // join is answered again: token lifecycle).
    expect((await call(app, 'GET', '/v1/me/balance', { token: tokens[2]! })).status).toBe(401);
    const retried = await join(app, concert.id, tokens[2]!);
    expect([retried.status, retried.body.token]).toEqual([200, j.body.token]);
    // A Redis-held token still works too, and joining frees its place in the count.
    expect((await join(app, concert.id, tokens[0]!)).status).toBe(201);
    expect(await h.svc.redis.zcard(keys.liveUserTokens('00'))).toBe(1);
    const fourth = await userToken(app, newUserId());
    expect(await h.svc.redis.exists(keys.userToken((await h.svc.ctx.tokens.decode(fourth, h.clock.now()))!.jti))).toBe(1);
  });
});

describeEach('tokens across a stay in SQL mode', { modes: ['redis'] }, (h) => {
  test('a user token revoked while in SQL mode stays revoked after the return to Redis mode', async () => {
    const first = await createConcert(h.app);
    const token = await userToken(h.app, newUserId());
    const jti = (await h.svc.ctx.tokens.decode(token, h.clock.now()))!.jti;
    expect(await h.svc.redis.exists(keys.userToken(jti))).toBe(1);
    await enterMode(h.svc, 'sql');
    try {
      // Joining revokes the user token, in SQL only: Redis is not in use.
      expect((await join(h.app, first.id, token)).status).toBe(201);
      // Back to Redis the way the service goes back: drain, rebuild, switch.
      expect(await h.svc.ctx.coordinator.rebuildNow()).toBe(true);
      expect(h.svc.ctx.mode.current).toBe('redis');
      expect(await h.svc.redis.exists(keys.userToken(jti))).toBe(0);
      const second = await createConcert(h.app);
      const again = await join(h.app, second.id, token);
      expect(again.status).toBe(401);
      expect(again.body.error.code).toBe('UNAUTHENTICATED');
    } finally {
      await enterMode(h.svc, 'redis');
    }
  });
});
