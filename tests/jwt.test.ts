/**
 * The service's own tokens through hono/jwt: HS256 only, exp required and judged with the
 * service's clock and a small leeway, the claims of a user or a queue token; the cache of verified
 * tokens never answers for a token past its exp and stays within its cap; a request verifies its
 * token once even with the rate limiter keying on it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createHmac, randomUUID } from 'node:crypto';
import { JwtCodec, TOKEN_LEEWAY_SECONDS, type TokenClaims } from '../src/modules/tokens/jwt.ts';
import type { Principal } from '../src/modules/tokens/tokens.service.ts';
import { VerifiedTokens } from '../src/modules/tokens/verified-tokens.ts';
import { newUserId } from './helpers/harness.ts';
import { call, createConcert, join, userToken } from './helpers/http.ts';
import { signJwt } from './helpers/idp.ts';
import { startService, type TestService } from './helpers/service.ts';

const SECRET = 'jwt-test-secret-that-is-at-least-32-bytes!';
const codec = new JwtCodec(SECRET);
const NOW_S = 1_900_000_000;
const userClaims = (over: Partial<TokenClaims> = {}): TokenClaims =>
  ({ typ: 'user', sub: '42', jti: randomUUID(), iat: NOW_S - 10, exp: NOW_S + 600, ...over });
const queueClaims = (over: Partial<TokenClaims> = {}): TokenClaims =>
  ({ typ: 'queue', sub: '42', jti: randomUUID(), cid: 7, seq: 3, iat: NOW_S - 10, exp: NOW_S + 600, ...over });
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
/** A token with any header, signed with HMAC over whatever hash, independently of the codec. */
function hmacToken(header: object, payload: object, hash: 'sha256' | 'sha384' | 'sha512' = 'sha256', secret = SECRET): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`;
}

describe('JwtCodec (hono/jwt, HS256)', () => {
  test('sign → verify round trip, user and queue tokens', async () => {
    for (const claims of [userClaims(), queueClaims()]) {
      const token = await codec.sign(claims);
      expect(await codec.verify(token, NOW_S)).toEqual(claims);
    }
  });

  test('the tokens are those of the node:crypto codec it replaced: tokens issued before an upgrade stay valid', async () => {
    const claims = queueClaims();
    const token = await codec.sign(claims);
    expect(token).toBe(signJwt(claims as unknown as Record<string, unknown>, { alg: 'HS256', secret: SECRET }));
    expect(token.split('.')[0]).toBe(b64({ alg: 'HS256', typ: 'JWT' }));
  });

  test('refused: alg none, another algorithm with the same secret, a wrong secret, a tampered payload, a header typ other than JWT', async () => {
    const claims = userClaims();
    const refused = {
      none: `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
      noneSigned: hmacToken({ alg: 'none', typ: 'JWT' }, claims),
      hs384: hmacToken({ alg: 'HS384', typ: 'JWT' }, claims, 'sha384'),
      hs512: hmacToken({ alg: 'HS512', typ: 'JWT' }, claims, 'sha512'),
      rs256Header: hmacToken({ alg: 'RS256', typ: 'JWT' }, claims),
      noAlg: hmacToken({ typ: 'JWT' }, claims),
      wrongSecret: await new JwtCodec(`${SECRET}-other`).sign(claims),
      tampered: (() => {
        const [h, , s] = hmacToken({ alg: 'HS256', typ: 'JWT' }, claims).split('.');
        return `${h}.${b64({ ...claims, sub: '43' })}.${s}`;
      })(),
      headerTyp: hmacToken({ alg: 'HS256', typ: 'at+jwt' }, claims),
      crit: hmacToken({ alg: 'HS256', typ: 'JWT', crit: ['x'] }, claims),
      twoParts: `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`,
      garbage: 'not.a.jwt',
    };
    // The control: the same claims, well signed, pass.
    expect(await codec.verify(hmacToken({ alg: 'HS256', typ: 'JWT' }, claims), NOW_S)).toEqual(claims);
    for (const [name, token] of Object.entries(refused)) expect([name, await codec.verify(token, NOW_S)]).toEqual([name, null]);
  });

  test('exp is required and judged with the caller\'s clock and a leeway of TOKEN_LEEWAY_SECONDS', async () => {
    const { exp: _, ...noExp } = userClaims();
    expect(await codec.verify(hmacToken({ alg: 'HS256', typ: 'JWT' }, noExp), NOW_S)).toBeNull();
    expect(await codec.verify(await codec.sign(userClaims({ exp: String(NOW_S + 60) as unknown as number })), NOW_S)).toBeNull();
    const token = await codec.sign(userClaims({ exp: NOW_S }));
    expect(await codec.verify(token, NOW_S - 1)).not.toBeNull();
    expect(await codec.verify(token, NOW_S)).not.toBeNull(); // at exp: within the leeway
    expect(await codec.verify(token, NOW_S + TOKEN_LEEWAY_SECONDS - 1)).not.toBeNull();
    expect(await codec.verify(token, NOW_S + TOKEN_LEEWAY_SECONDS)).toBeNull();
    expect(await codec.verify(token, NOW_S + 3600)).toBeNull();
    // Not Date.now(): a token long expired by the wall clock is judged by the clock it is given.
    expect(await codec.verify(await codec.sign(userClaims({ iat: 1000, exp: 2000 })), 1500)).not.toBeNull();
  });

  test('iat (and nbf if present) may lie at most the leeway in the future', async () => {
    expect(await codec.verify(await codec.sign(userClaims({ iat: NOW_S + TOKEN_LEEWAY_SECONDS })), NOW_S)).not.toBeNull();
    expect(await codec.verify(await codec.sign(userClaims({ iat: NOW_S + TOKEN_LEEWAY_SECONDS + 1 })), NOW_S)).toBeNull();
    const { iat: _, ...noIat } = userClaims();
    expect(await codec.verify(hmacToken({ alg: 'HS256', typ: 'JWT' }, noIat), NOW_S)).toBeNull();
    expect(await codec.verify(hmacToken({ alg: 'HS256', typ: 'JWT' }, { ...userClaims(), nbf: NOW_S + 60 }), NOW_S)).toBeNull();
    expect(await codec.verify(hmacToken({ alg: 'HS256', typ: 'JWT' }, { ...userClaims(), nbf: NOW_S - 60 }), NOW_S)).not.toBeNull();
  });

  test('the typ claim must be user or queue; a queue token needs cid and seq; sub is a user id', async () => {
    const bad: Record<string, unknown>[] = [
      { ...userClaims(), typ: 'admin' },
      { ...userClaims(), typ: 'USER' },
      (({ typ: _, ...c }) => c)(userClaims()),
      (({ cid: _, ...c }) => c)(queueClaims()),
      (({ seq: _, ...c }) => c)(queueClaims()),
      { ...queueClaims(), seq: 1.5 },
      { ...userClaims(), sub: 'alice' },
      { ...userClaims(), sub: 42 },
      (({ jti: _, ...c }) => c)(userClaims()),
    ];
    for (const claims of bad) expect([claims, await codec.verify(hmacToken({ alg: 'HS256', typ: 'JWT' }, claims), NOW_S)]).toEqual([claims, null]);
  });

  test('signedHere: any token signed with this secret, whatever its claims or age; nothing else', async () => {
    expect(await codec.signedHere(await codec.sign(userClaims({ exp: 1, iat: 0 })))).toBe(true);
    expect(await codec.signedHere(hmacToken({ alg: 'HS256', typ: 'JWT' }, { sub: 'fan@idp' }))).toBe(true);
    expect(await codec.signedHere(await new JwtCodec(`${SECRET}-other`).sign(userClaims()))).toBe(false);
    expect(await codec.signedHere(hmacToken({ alg: 'HS512', typ: 'JWT' }, userClaims(), 'sha512'))).toBe(false);
    for (const junk of ['', '.', 'a.b.', 'a.b.c', 'x.y.!!', 'no-dots']) expect(await codec.signedHere(junk)).toBe(false);
  });
});

describe('VerifiedTokens', () => {
  const entry = (exp: number) => ({ exp });

  test('never answers for a token at or past its exp, and forgets it', () => {
    const cache = new VerifiedTokens<{ exp: number }>(10);
    cache.set('t', entry(100), 99_000);
    expect(cache.get('t', 99_999)).toEqual(entry(100));
    expect(cache.get('t', 100_000)).toBeUndefined();
    expect(cache.size).toBe(0);
    cache.set('late', entry(100), 100_000); // already expired: not kept
    expect(cache.size).toBe(0);
  });

  test('bounded: past the cap the least recently used goes first', () => {
    const cache = new VerifiedTokens<{ exp: number }>(3);
    for (const t of ['a', 'b', 'c']) cache.set(t, entry(100), 0);
    expect(cache.get('a', 0)).toBeDefined(); // a is now the most recent; b the least
    cache.set('d', entry(100), 0);
    expect(cache.size).toBe(3);
    expect(['a', 'b', 'c', 'd'].map((t) => cache.get(t, 0) !== undefined)).toEqual([true, false, true, true]);
    for (let i = 0; i < 1000; i++) cache.set(`x${i}`, entry(100), 0);
    expect(cache.size).toBe(3);
    expect(['x997', 'x998', 'x999'].every((t) => cache.get(t, 0) !== undefined)).toBe(true);
    cache.set('x998', entry(200), 0); // a re-set replaces, it does not grow
    expect(cache.size).toBe(3);
  });

  test('a hit keeps its entry through at least cap / 2 further additions, wherever the entry was', () => {
    const cap = 10;
    for (let hitAt = 0; hitAt < cap; hitAt++) {
      const cache = new VerifiedTokens<{ exp: number }>(cap);
      for (let i = 0; i < cap; i++) cache.set(`t${i}`, entry(100), 0);
      expect(cache.get(`t${hitAt}`, 0)).toBeDefined();
      for (let i = 0; i < cap / 2; i++) cache.set(`x${i}`, entry(100), 0);
      expect(cache.size).toBe(cap);
      expect(cache.get(`t${hitAt}`, 0)).toBeDefined();
    }
  });

  test('a cap of 0 keeps nothing; a cap that is not a whole number is refused', () => {
    const cache = new VerifiedTokens<{ exp: number }>(0);
    cache.set('a', entry(100), 0);
    expect(cache.get('a', 0)).toBeUndefined();
    expect(() => new VerifiedTokens(-1)).toThrow();
    expect(() => new VerifiedTokens(1.5)).toThrow();
  });
});

describe('TokenService.decode and the bearer middleware', () => {
  let svc: TestService;
  beforeAll(async () => {
    // The limiter on (generous), so that it keys on the token too.
    svc = await startService({ env: { RATE_LIMIT_PER_SECOND: '100000', RATE_LIMIT_BURST: '100000' } });
  });
  afterAll(async () => { await svc.stop(); });

  test('a cached token is not answered past its exp: within the leeway it is verified again, beyond it refused', async () => {
    const tokens = svc.ctx.tokens;
    const nowS = Math.floor(Date.now() / 1000);
    const token = await tokens.jwt.sign({ typ: 'user', sub: '5', jti: randomUUID(), iat: nowS, exp: nowS + 10 });
    const first = (await tokens.decode(token, nowS * 1000))!;
    expect(first).toMatchObject({ typ: 'user', userId: 5, exp: nowS + 10, token });
    expect(tokens.verified.get(token, nowS * 1000)).toBe(first);
    expect(await tokens.decode(token, nowS * 1000 + 500)).toBe(first); // the cache's answer: the same object
    expect(Object.isFrozen(first)).toBe(true);
    // At exp the cache lets go; the verification's leeway still accepts, without caching it again.
    const atExp = await tokens.decode(token, (nowS + 10) * 1000);
    expect(atExp).toEqual(first);
    expect(atExp).not.toBe(first);
    expect(tokens.verified.get(token, (nowS + 10) * 1000)).toBeUndefined();
    expect(await tokens.decode(token, (nowS + 10 + TOKEN_LEEWAY_SECONDS) * 1000)).toBeNull();
    // Going back in time (another caller's clock) finds the cache empty for it: verified afresh.
    expect(await tokens.decode(token, nowS * 1000)).toEqual(first);
  });

  test('a refused token is not cached: made-up strings cannot fill the cache', async () => {
    const tokens = svc.ctx.tokens;
    const before = tokens.verified.size;
    for (let i = 0; i < 50; i++) expect(await tokens.decode(`junk.${i}.x`, Date.now())).toBeNull();
    const forged = await new JwtCodec('another-secret-that-is-at-least-32-bytes!!')
      .sign({ typ: 'user', sub: '5', jti: randomUUID(), iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60 });
    expect(await tokens.decode(forged, Date.now())).toBeNull();
    expect(tokens.verified.size).toBe(before);
  });

  test('one verification per request, with the rate limiter keying on the same token', async () => {
    const tokens = svc.ctx.tokens;
    const concert = await createConcert(svc.app);
    const queueToken = (await join(svc.app, concert.id, await userToken(svc.app, newUserId()))).body.token as string;
    const decode = tokens.decode.bind(tokens);
    const seen: string[] = [];
    tokens.decode = (token: string, now: number): Promise<Principal | null> => {
      seen.push(token);
      return decode(token, now);
    };
    try {
      const r = await call(svc.app, 'GET', '/v1/queue/me', { token: queueToken });
      expect(r.status).toBe(200);
      expect(seen).toEqual([queueToken]);
      // A bad token: one check too, and the route refuses it.
      seen.length = 0;
      expect((await call(svc.app, 'GET', '/v1/queue/me', { token: 'made.up.token' })).status).toBe(401);
      expect(seen).toEqual(['made.up.token']);
      // A user token where a queue token is needed: verified once, refused by the route's accept list.
      seen.length = 0;
      const user = await userToken(svc.app, newUserId());
      seen.length = 0;
      expect((await call(svc.app, 'GET', '/v1/queue/me', { token: user })).status).toBe(401);
      expect(seen).toEqual([user]);
    } finally {
      tokens.decode = decode;
    }
  });
});
