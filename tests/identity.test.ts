/**
 * AUTH_MODE=jwt: POST /v1/tokens with an identity provider's token. Tokens are signed here with
 * real RS256, ES256 and HS256 keys; the provider's JWKS is served on a loopback port. Every
 * bad identity token answers 401 naming why and changes nothing; (iss, sub) maps to one user,
 * even under concurrent first sign-ins; the JWKS is cached, refetched for unknown kids at most
 * every 30 s, and its outage answers 503, not 500.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { describeEach, newUserId, TestClock, type Harness } from './helpers/harness.ts';
import { call, createConcert, join } from './helpers/http.ts';
import { ecKey, rsaKey, signJwt, signWith, startIdp, type SigningKey } from './helpers/idp.ts';
import { fcRun } from './helpers/random.ts';
import { startService, type TestService } from './helpers/service.ts';

const ISS = 'https://idp.example.test';
const AUD = 'ticketing-web';
const rsa = rsaKey('rsa-1');
const ec = ecKey('ec-1');
const stranger = rsaKey('rsa-1'); // same kid, another key: a forgery
const idp = startIdp([rsa, ec]);
afterAll(() => idp.stop());

const JWKS_ENV = { AUTH_MODE: 'jwt', AUTH_JWKS_URL: idp.url, AUTH_ISSUER: ISS, AUTH_AUDIENCE: AUD };

type Svc = Pick<TestService, 'app' | 'database'>;
const signIn = (app: TestService['app'], idToken: unknown) => call(app, 'POST', '/v1/tokens', { body: { idToken } });

async function counts(svc: Svc) {
  const db = svc.database.db;
  const n = async (t: 'users' | 'identities' | 'tokens') =>
    Number((await db.selectFrom(t).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
  return { users: await n('users'), identities: await n('identities'), tokens: await n('tokens') };
}

function expect401(r: { status: number; body: any }, why: RegExp) {
  expect(r.status).toBe(401);
  expect(r.body.error.code).toBe('UNAUTHENTICATED');
  expect(r.body.error.message).toMatch(why);
}

describeEach('AUTH_MODE=jwt with AUTH_JWKS_URL', { env: JWKS_ENV }, (h) => {
  const nowS = () => Math.floor(h.clock.now() / 1000);
  const claims = (over: Record<string, unknown> = {}) =>
    ({ iss: ISS, aud: AUD, sub: `fan-${randomUUID()}`, iat: nowS(), exp: nowS() + 600, ...over });

  test.each([['RS256', rsa], ['ES256', ec]] as [string, SigningKey][])('a %s identity token → 201 with a user token; the same subject is the same user', async (_alg, key) => {
    const c = claims();
    const r = await signIn(h.app, signWith(key, c));
    expect(r.status).toBe(201);
    expect(Object.keys(r.body).sort()).toEqual(['expiresAt', 'token', 'userId']);
    expect(Number.isSafeInteger(r.body.userId) && r.body.userId > 0).toBe(true);
    expect((await h.svc.ctx.tokens.decode(r.body.token, h.clock.now()))).toMatchObject({ typ: 'user', userId: r.body.userId });
    const db = h.svc.database.db;
    expect(await db.selectFrom('identities').selectAll().where('sub', '=', c.sub).execute())
      .toEqual([{ iss: ISS, sub: c.sub, user_id: r.body.userId, created_at: expect.any(Number) }]);
    expect(await db.selectFrom('users').select(['id', 'balance']).where('id', '=', r.body.userId).execute())
      .toEqual([{ id: r.body.userId, balance: 0 }]);

    const again = await signIn(h.app, signWith(key, { ...c, iat: nowS(), exp: nowS() + 300 }));
    expect(again.status).toBe(201);
    expect(again.body.userId).toBe(r.body.userId);
    expect(again.body.token).not.toBe(r.body.token);
    const other = await signIn(h.app, signWith(key, claims()));
    expect(other.status).toBe(201);
    expect(other.body.userId).not.toBe(r.body.userId);

    // The token is an ordinary user token.
    const concert = await createConcert(h.app);
    expect((await join(h.app, concert.id, r.body.token)).status).toBe(201);
  });

  test('aud may be a list that includes AUTH_AUDIENCE', async () => {
    expect((await signIn(h.app, signWith(rsa, claims({ aud: ['other', AUD] })))).status).toBe(201);
  });

  const bad: [string, () => string, RegExp][] = [
    ['not a JWT', () => 'not-a-jwt', /not a JWT/],
    ['signed with another key (same kid)', () => signWith(stranger, claims()), /signature that does not match/],
    ['expired', () => signWith(rsa, claims({ iat: nowS() - 7200, exp: nowS() - 3600 })), /expired/],
    ['without exp', () => signWith(rsa, { iss: ISS, aud: AUD, sub: 'fan-x', iat: nowS() }), /no exp claim/],
    ['exp not a number', () => signWith(rsa, claims({ exp: String(nowS() + 600) })), /no exp claim/],
    ['not valid yet (nbf)', () => signWith(rsa, claims({ nbf: nowS() + 3600 })), /not valid yet/],
    ['from another issuer', () => signWith(rsa, claims({ iss: 'https://evil.example' })), /another issuer/],
    ['without iss', () => signWith(rsa, claims({ iss: undefined })), /another issuer/],
    ['for another audience', () => signWith(rsa, claims({ aud: 'someone-else' })), /another audience/],
    ['without aud', () => signWith(rsa, claims({ aud: undefined })), /another audience/],
    ['without sub', () => signWith(rsa, claims({ sub: undefined })), /no sub claim/],
    ['with an empty sub', () => signWith(rsa, claims({ sub: '' })), /no sub claim/],
    ['alg none', () => signJwt(claims(), { alg: 'none', kid: 'rsa-1' }), /"none"; accepted: RS256, ES256/],
    ['alg none, upper case', () => signJwt(claims(), { alg: 'none' }, { alg: 'NONE' }), /"NONE"; accepted/],
    ['HS256 keyed with the public key (algorithm confusion)', () =>
      signJwt(claims(), { alg: 'HS256', kid: 'rsa-1', secret: rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString() }),
    /"HS256"; accepted: RS256, ES256/],
    ['ES256 naming the RSA key', () => signJwt(claims(), { alg: 'ES256', privateKey: ec.privateKey, kid: 'rsa-1' }), /not a key for it/],
    ['without kid', () => signJwt(claims(), { alg: 'RS256', privateKey: rsa.privateKey }), /no kid header/],
    ['naming a kid the provider does not list', () => signWith(rsaKey('made-up'), claims()), /does not list/],
    ['with a crit header', () => signWith(rsa, claims(), { crit: ['x'] }), /header/],
  ];
  test.each(bad)('an identity token %s → 401 naming why, nothing recorded', async (_what, make, why) => {
    const before = await counts(h.svc);
    expect401(await signIn(h.app, make()), why);
    expect(await counts(h.svc)).toEqual(before);
  });

  test('any made-up idToken → 400 or 401, never a 500 and never a user', async () => {
    const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
    const part = fc.oneof(fc.string(), fc.json().map(b64), fc.jsonValue().map(b64),
      fc.record({ alg: fc.constantFrom('RS256', 'ES256', 'HS256', 'none', 'PS256', 'EdDSA'), kid: fc.constantFrom('rsa-1', 'ec-1', 'x'), typ: fc.constantFrom('JWT', 'at+jwt') }, { requiredKeys: [] }).map(b64),
      fc.record({ iss: fc.constantFrom(ISS, 'x'), aud: fc.constantFrom(AUD, 'y'), sub: fc.string(), exp: fc.oneof(fc.integer(), fc.double(), fc.string()) }, { requiredKeys: [] }).map(b64));
    const token = fc.oneof(fc.string(), fc.tuple(part, part, fc.oneof(fc.string(), fc.base64String())).map((p) => p.join('.')));
    const before = await counts(h.svc);
    await fc.assert(fc.asyncProperty(token, async (idToken) => {
      const r = await signIn(h.app, idToken);
      expect([400, 401]).toContain(r.status);
    }), fcRun(`identity tokens [${h.sql}, ${h.mode}]`, 150));
    expect(await counts(h.svc)).toEqual(before);
  });

  test("one of this service's own tokens as idToken → 401", async () => {
    const own = await h.svc.ctx.tokens.jwt.sign({ typ: 'user', sub: '42', jti: randomUUID(), iat: nowS(), exp: nowS() + 600 });
    const before = await counts(h.svc);
    expect401(await signIn(h.app, own), /this service's own tokens/);
    expect(await counts(h.svc)).toEqual(before);
  });

  test.each([
    ['a userId body', { userId: 5 }, 'userId'],
    ['a userId next to the idToken', { userId: 5, idToken: 'x.y.z' }, 'userId'],
    ['an idToken that is not a string', { idToken: 5 }, 'idToken'],
    ['an empty idToken', { idToken: '' }, 'idToken'],
    ['no idToken', {}, 'idToken'],
  ])('%s → 400 VALIDATION_FAILED naming the field', async (_what, body, field) => {
    const before = await counts(h.svc);
    const r = await call(h.app, 'POST', '/v1/tokens', { body });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_FAILED');
    expect(r.body.error.details).toContainEqual({ field, problem: expect.any(String) });
    if (field === 'userId') expect(JSON.stringify(r.body.error.details)).toContain('AUTH_MODE=jwt');
    expect(await counts(h.svc)).toEqual(before);
  });

  test('30 concurrent first sign-ins of one subject end with one user and one identity', async () => {
    const c = claims();
    const before = await counts(h.svc);
    const replies = await Promise.all(Array.from({ length: 30 }, () => signIn(h.app, signWith(rsa, c))));
    expect(replies.map((r) => r.status)).toEqual(Array(30).fill(201));
    const ids = new Set(replies.map((r) => r.body.userId));
    expect(ids.size).toBe(1);
    const after = await counts(h.svc);
    expect(after.users - before.users).toBe(1);
    expect(after.identities - before.identities).toBe(1);
    expect(after.tokens - before.tokens).toBe(30);
  });

  test('30 concurrent first sign-ins of 30 subjects end with 30 users', async () => {
    const before = await counts(h.svc);
    const replies = await Promise.all(Array.from({ length: 30 }, () => signIn(h.app, signWith(ec, claims()))));
    expect(replies.map((r) => r.status)).toEqual(Array(30).fill(201));
    expect(new Set(replies.map((r) => r.body.userId)).size).toBe(30);
    const after = await counts(h.svc);
    expect(after.users - before.users).toBe(30);
    expect(after.identities - before.identities).toBe(30);
  });

  test('a new identity never takes over a user that open mode made', async () => {
    const db = h.svc.database.db;
    const { last_id } = await db.selectFrom('user_id_counter').select('last_id').executeTakeFirstOrThrow();
    // Users made by open mode right where the counter would go next.
    for (const id of [last_id + 1, last_id + 2]) {
      await db.insertInto('users').values({ id, balance: 777, created_at: 0 }).execute();
    }
    const r = await signIn(h.app, signWith(rsa, claims()));
    expect(r.status).toBe(201);
    expect(r.body.userId).toBeGreaterThan(last_id + 2);
    expect(await db.selectFrom('users').select('balance').where('id', '=', r.body.userId).executeTakeFirstOrThrow()).toEqual({ balance: 0 });
    expect((await db.selectFrom('users').select('balance').where('id', 'in', [last_id + 1, last_id + 2]).execute()).map((u) => u.balance))
      .toEqual([777, 777]);
  });
});

describeEach('AUTH_MODE=open', {}, (h: Harness) => {
  test('an idToken body → 400 naming idToken and the mode', async () => {
    for (const body of [{ idToken: signWith(rsa, { sub: 'x', exp: 2e9 }) }, { userId: newUserId(), idToken: 'a.b.c' }]) {
      const r = await call(h.app, 'POST', '/v1/tokens', { body });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('VALIDATION_FAILED');
      expect(r.body.error.details).toContainEqual({ field: 'idToken', problem: expect.stringContaining('AUTH_MODE=jwt') });
    }
  });
});

const rsaPem = (k: SigningKey) => k.publicKey.export({ type: 'spki', format: 'pem' }).toString();

describeEach('AUTH_MODE=jwt with an RS256 AUTH_PUBLIC_KEY', {
  // On one line with literal \n, as environment files carry it.
  env: { AUTH_MODE: 'jwt', AUTH_PUBLIC_KEY: rsaPem(rsa).replace(/\n/g, '\\n') }, sqlTargets: ['sqlite'], modes: ['redis'],
}, (h) => {
  const c = () => ({ sub: `fan-${randomUUID()}`, iss: 'anyone', exp: Math.floor(h.clock.now() / 1000) + 60 });
  test('RS256 with the key → 201; any issuer and audience when none is configured', async () => {
    const r = await signIn(h.app, signJwt(c(), { alg: 'RS256', privateKey: rsa.privateKey }));
    expect(r.status).toBe(201);
  });
  test('another key, ES256, HS256 → 401', async () => {
    expect401(await signIn(h.app, signJwt(c(), { alg: 'RS256', privateKey: stranger.privateKey })), /signature that does not match/);
    expect401(await signIn(h.app, signJwt(c(), { alg: 'ES256', privateKey: ec.privateKey })), /"ES256"; accepted: RS256$/);
    expect401(await signIn(h.app, signJwt(c(), { alg: 'HS256', secret: rsaPem(rsa) })), /"HS256"; accepted: RS256$/);
  });
});

describeEach('AUTH_MODE=jwt with an ES256 AUTH_PUBLIC_KEY', {
  env: { AUTH_MODE: 'jwt', AUTH_PUBLIC_KEY: ec.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
  sqlTargets: ['sqlite'], modes: ['redis'],
}, (h) => {
  const c = () => ({ sub: `fan-${randomUUID()}`, exp: Math.floor(h.clock.now() / 1000) + 60 });
  test('ES256 with the key → 201 (a token without iss maps by sub alone); RS256 → 401', async () => {
    const sub = `fan-${randomUUID()}`;
    const r = await signIn(h.app, signJwt({ ...c(), sub }, { alg: 'ES256', privateKey: ec.privateKey }));
    expect(r.status).toBe(201);
    expect(await h.svc.database.db.selectFrom('identities').select(['iss', 'user_id']).where('sub', '=', sub).execute())
      .toEqual([{ iss: '', user_id: r.body.userId }]);
    expect401(await signIn(h.app, signJwt(c(), { alg: 'ES256', privateKey: ecKey('x').privateKey })), /signature that does not match/);
    expect401(await signIn(h.app, signJwt(c(), { alg: 'RS256', privateKey: rsa.privateKey })), /accepted: ES256$/);
  });
});

const SHARED = 'the-identity-providers-shared-secret-0123456789';
describeEach('AUTH_MODE=jwt with an HS256 AUTH_SHARED_SECRET', {
  env: { AUTH_MODE: 'jwt', AUTH_SHARED_SECRET: SHARED, AUTH_ISSUER: ISS }, sqlTargets: ['sqlite'], modes: ['redis'],
}, (h) => {
  const c = () => ({ iss: ISS, sub: `fan-${randomUUID()}`, exp: Math.floor(h.clock.now() / 1000) + 60 });
  test('HS256 with the secret → 201; another secret, RS256, our own token → 401', async () => {
    expect((await signIn(h.app, signJwt(c(), { alg: 'HS256', secret: SHARED }))).status).toBe(201);
    expect401(await signIn(h.app, signJwt(c(), { alg: 'HS256', secret: `${SHARED}-not` })), /signature that does not match/);
    expect401(await signIn(h.app, signWith(rsa, c())), /"RS256"; accepted: HS256$/);
    const nowS = Math.floor(h.clock.now() / 1000);
    const own = await h.svc.ctx.tokens.jwt.sign({ typ: 'user', sub: '7', jti: randomUUID(), iat: nowS, exp: nowS + 60 });
    expect401(await signIn(h.app, own), /this service's own tokens/);
  });
});

describe('the JWKS cache', () => {
  const clock = new TestClock();
  const rotated = rsaKey('rsa-2');
  const provider = startIdp([rsa, ec]);
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ clock: clock.now, env: { ...JWKS_ENV, AUTH_JWKS_URL: provider.url, AUTH_JWKS_TIMEOUT_MS: '300' } });
  });
  afterAll(async () => {
    await svc.stop();
    provider.stop();
  });
  const token = (key: SigningKey, header: Record<string, unknown> = {}) => {
    const nowS = Math.floor(clock.now() / 1000);
    return signWith(key, { iss: ISS, aud: AUD, sub: `fan-${randomUUID()}`, exp: nowS + 600 }, header);
  };

  test('keys are fetched once; an unknown kid refetches at most every 30 s; a rotated-in key then works', async () => {
    expect((await signIn(svc.app, token(rsa))).status).toBe(201);
    expect((await signIn(svc.app, token(ec))).status).toBe(201);
    expect((await signIn(svc.app, token(rsa))).status).toBe(201);
    expect(provider.requests).toBe(1);

    provider.keys = [rsa, ec, rotated];
    // Made-up kids right after a fetch do not reach the provider.
    for (let i = 0; i < 5; i++) expect401(await signIn(svc.app, token(rsaKey(`junk-${i}`))), /does not list/);
    expect401(await signIn(svc.app, token(rotated)), /does not list/);
    expect(provider.requests).toBe(1);
    clock.advance(30_001);
    expect((await signIn(svc.app, token(rotated))).status).toBe(201);
    expect(provider.requests).toBe(2);
    expect401(await signIn(svc.app, token(rsaKey('junk-after'))), /does not list/);
    expect(provider.requests).toBe(2);

    // A key the provider retires goes once the cache is old.
    provider.keys = [ec, rotated];
    expect((await signIn(svc.app, token(rsa))).status).toBe(201);
    clock.advance(10 * 60_000 + 1);
    expect401(await signIn(svc.app, token(rsa)), /does not list/);
    expect(provider.requests).toBe(3);
  });

  test('provider down: cached keys keep working; a key we do not have → 503 UNAVAILABLE, not 500', async () => {
    provider.behaviour = 'error';
    clock.advance(10 * 60_000 + 1); // the cache is old: a refetch is tried, fails, and the old keys serve
    expect((await signIn(svc.app, token(ec))).status).toBe(201);
    const fresh = rsaKey('rsa-3');
    provider.keys = [ec, rotated, fresh];
    const r = await signIn(svc.app, token(fresh));
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('UNAVAILABLE');
    expect(r.body.error.message).toContain('AUTH_JWKS_URL');
    expect(Number(r.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
    const tried = provider.requests;
    // While it is down, requests do not hammer it: one try per 5 s.
    for (let i = 0; i < 5; i++) expect((await signIn(svc.app, token(fresh))).status).toBe(503);
    expect(provider.requests).toBe(tried);
    provider.behaviour = 'ok';
    clock.advance(5_001);
    expect((await signIn(svc.app, token(fresh))).status).toBe(201);
  });

  test('a provider that never answers → 503 after AUTH_JWKS_TIMEOUT_MS', async () => {
    provider.behaviour = 'hang';
    clock.advance(30_001);
    const started = Date.now();
    const r = await signIn(svc.app, token(rsaKey('rsa-4')));
    expect(r.status).toBe(503);
    expect(r.body.error.message).toContain('no answer within 300 ms');
    expect(Date.now() - started).toBeLessThan(3000);
    provider.behaviour = 'ok';
  });

  test('an instance that starts while the provider is down answers 503, then recovers', async () => {
    provider.behaviour = 'error';
    const inst = svc.spawnInstance({ clock: clock.now });
    try {
      expect((await signIn(inst.app, token(rsa, { kid: 'ec-1' }))).status).toBe(503);
      provider.behaviour = 'ok';
      clock.advance(5_001);
      expect((await signIn(inst.app, token(ec))).status).toBe(201);
    } finally {
      inst.close();
      provider.behaviour = 'ok';
    }
  });
});
