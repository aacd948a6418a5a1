/**
 * A fake identity provider for AUTH_MODE=jwt tests: real RSA and P-256 key pairs, a JWKS served
 * on a loopback port (which the test can make fail or hang), and tokens signed here.
 */
import { createHmac, createSign, generateKeyPairSync, sign as signBytes, type KeyObject } from 'node:crypto';

export interface SigningKey { kid: string; alg: 'RS256' | 'ES256'; privateKey: KeyObject; publicKey: KeyObject }

export function rsaKey(kid: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg: 'RS256', privateKey, publicKey };
}

export function ecKey(kid: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg: 'ES256', privateKey, publicKey };
}

export const publicJwk = (k: SigningKey) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, alg: k.alg, use: 'sig' });

const part = (x: unknown) => Buffer.from(JSON.stringify(x)).toString('base64url');

export type Signer =
  | { alg: 'RS256' | 'ES256'; privateKey: KeyObject; kid?: string }
  | { alg: 'HS256'; secret: string; kid?: string }
  | { alg: 'none'; kid?: string };

/** A compact JWT with this header algorithm and signature; `header` adds or overrides fields. */
export function signJwt(payload: Record<string, unknown>, signer: Signer, header: Record<string, unknown> = {}): string {
  const h: Record<string, unknown> = { alg: signer.alg, typ: 'JWT', ...(signer.kid ? { kid: signer.kid } : {}), ...header };
  const input = `${part(h)}.${part(payload)}`;
  let sig = '';
  if (signer.alg === 'RS256') sig = createSign('RSA-SHA256').update(input).sign(signer.privateKey).toString('base64url');
  else if (signer.alg === 'ES256') {
    sig = signBytes('sha256', Buffer.from(input), { key: signer.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  } else if (signer.alg === 'HS256') sig = createHmac('sha256', signer.secret).update(input).digest('base64url');
  return `${input}.${sig}`;
}

export const signWith = (k: SigningKey, payload: Record<string, unknown>, header: Record<string, unknown> = {}) =>
  signJwt(payload, { alg: k.alg, privateKey: k.privateKey, kid: k.kid }, header);

export interface FakeIdp {
  url: string;
  /** JWKS requests answered (or refused) so far. */
  requests: number;
  /** What the JWKS endpoint does: serve the keys, answer 500, or never answer. */
  behaviour: 'ok' | 'error' | 'hang';
  keys: SigningKey[];
  stop(): void;
}

export function startIdp(keys: SigningKey[]): FakeIdp {
  const idp = { requests: 0, behaviour: 'ok', keys } as FakeIdp;
  const server = Bun.serve({
    port: 0, hostname: '127.0.0.1',
    fetch(req) {
      if (new URL(req.url).pathname !== '/jwks.json') return new Response('not found', { status: 404 });
      idp.requests++;
      if (idp.behaviour === 'error') return new Response('down', { status: 500 });
      if (idp.behaviour === 'hang') return new Promise<Response>(() => {});
      return Response.json({ keys: idp.keys.map(publicJwk) });
    },
  });
  idp.url = `http://127.0.0.1:${server.port}/jwks.json`;
  idp.stop = () => { server.stop(true); };
  return idp;
}
