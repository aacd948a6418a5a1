import { decode, verify } from 'hono/jwt';
import type { AuthConfig } from '../../config.ts';
import { errors } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { JwtCodec } from '../tokens/jwt.ts';
import { JwksKeys, type Jwk } from './jwks.ts';

type JwtAuth = Extract<AuthConfig, { mode: 'jwt' }>;
type Alg = 'RS256' | 'ES256' | 'HS256';
type VerifyKey = Parameters<typeof verify>[1];

export interface Identity { iss: string; sub: string }

/** Clocks of the provider and of this service may differ by this much. */
const LEEWAY_SECONDS = 30;

const refuse = (why: string) => errors.unauthenticated(`identity token ${why}`);

/** Does a JWKS key fit one of the algorithms we accept from a JWKS? */
function usableJwk(k: Jwk): boolean {
  if (k.use !== undefined && k.use !== 'sig') return false;
  if (k.kty === 'RSA') return k.alg === undefined || k.alg === 'RS256';
  if (k.kty === 'EC') return k.crv === 'P-256' && (k.alg === undefined || k.alg === 'ES256');
  return false;
}

/**
 * Checks an identity provider's token (AUTH_MODE=jwt): an algorithm from an explicit list (never
 * `none`), the signature with the configured key, `exp` (required), `nbf`, and `iss`/`aud` when
 * configured. Every refusal says why; claims are judged only once the signature holds, so a
 * forger learns nothing about the configuration.
 */
export class IdentityVerifier {
  private readonly jwks: JwksKeys | null;
  private readonly algs: Alg[];

  constructor(private readonly auth: JwtAuth, private readonly own: JwtCodec, clock: () => number, log: Logger) {
    const keys = auth.keys;
    this.jwks = keys.kind === 'jwks' ? new JwksKeys(keys.url, keys.timeoutMs, clock, log, usableJwk) : null;
    this.algs = keys.kind === 'jwks' ? ['RS256', 'ES256'] : keys.kind === 'publicKey' ? [keys.alg] : ['HS256'];
  }

  /** Fetches of AUTH_JWKS_URL so far (tests). */
  get jwksFetches(): number {
    return this.jwks?.fetches ?? 0;
  }

  async verify(idToken: string, now: number): Promise<Identity> {
    let header: { alg?: unknown; kid?: unknown };
    let payload: Record<string, unknown>;
    try {
      ({ header, payload } = decode(idToken));
    } catch {
      throw refuse('is not a JWT (three base64url parts, the first two JSON)');
    }
    const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (!isObject(header)) throw refuse('has a header that is not a JSON object');
    if (!isObject(payload)) throw refuse('has claims that are not a JSON object');
    if (await this.own.signedHere(idToken)) throw refuse("is one of this service's own tokens; send the identity provider's token");
    const alg = header.alg as Alg;
    if (!this.algs.includes(alg)) throw refuse(`is signed with ${JSON.stringify(header.alg)}; accepted: ${this.algs.join(', ')}`);

    const key = await this.keyFor(header.kid, alg);
    try {
      // Time claims are checked below with the service's clock and a leeway.
      await verify(idToken, key, { alg, exp: false, nbf: false, iat: false });
    } catch (err) {
      const name = (err as Error).name;
      if (name === 'JwtTokenSignatureMismatched') throw refuse('has a signature that does not match the key');
      if (name === 'JwtHeaderInvalid') throw refuse('has a header this service does not accept (typ other than JWT, or crit)');
      if (name === 'JwtTokenInvalid') throw refuse('has a signature that is not base64url');
      throw refuse('cannot be checked with the configured key');
    }

    const nowS = Math.floor(now / 1000);
    const { exp, nbf, iss, aud, sub } = payload;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) throw refuse('has no exp claim; identity tokens must expire');
    if (exp <= nowS - LEEWAY_SECONDS) throw refuse('has expired');
    if (nbf !== undefined && (typeof nbf !== 'number' || nbf > nowS + LEEWAY_SECONDS)) throw refuse('is not valid yet (nbf)');
    if (iss !== undefined && (typeof iss !== 'string' || iss.length > 255)) throw refuse('has an iss claim that is not a short string');
    if (this.auth.issuer !== undefined && iss !== this.auth.issuer) throw refuse('was issued by another issuer (iss does not match AUTH_ISSUER)');
    if (this.auth.audience !== undefined) {
      const auds = Array.isArray(aud) ? aud : [aud];
      if (!auds.includes(this.auth.audience)) throw refuse('is meant for another audience (aud does not include AUTH_AUDIENCE)');
    }
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > 255) throw refuse('has no sub claim (a string of 1 to 255 characters)');
    return { iss: (iss as string | undefined) ?? '', sub };
  }

  private async keyFor(kid: unknown, alg: Alg): Promise<VerifyKey> {
    const keys = this.auth.keys;
    if (keys.kind === 'sharedSecret') return keys.secret;
    if (keys.kind === 'publicKey') return keys.jwk as VerifyKey;
    if (typeof kid !== 'string' || kid === '') throw refuse('has no kid header; keys from AUTH_JWKS_URL are picked by kid');
    const key = await this.jwks!.keyFor(kid);
    if (!key) throw refuse(`names key ${JSON.stringify(kid)}, which AUTH_JWKS_URL does not list`);
    if ((alg === 'RS256') !== (key.kty === 'RSA')) throw refuse(`is signed with ${alg} but key ${JSON.stringify(kid)} is not a key for it`);
    return key as VerifyKey;
  }
}
