import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * HS256 JWTs with a synchronous node:crypto HMAC. Measured here at about twice the speed of
 * WebCrypto verification (hono/jwt), and the poll path verifies one token per request.
 */
export interface TokenClaims {
  typ: 'user' | 'queue';
  sub: string;
  jti: string;
  iat: number;
  exp: number;
  cid?: number;
  seq?: number;
}

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

export class JwtCodec {
  constructor(private readonly secret: string) {}

  sign(claims: TokenClaims): string {
    const body = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${body}.${this.mac(body)}`;
  }

  /** Returns the claims of a well-formed, correctly signed, unexpired token; otherwise null. */
  verify(token: string, nowSeconds = Math.floor(Date.now() / 1000)): TokenClaims | null {
    const first = token.indexOf('.');
    const last = token.lastIndexOf('.');
    if (first <= 0 || last === first || token.slice(0, first) !== HEADER) return null;
    const body = token.slice(0, last);
    const given = Buffer.from(token.slice(last + 1), 'base64url');
    const expected = Buffer.from(this.mac(body), 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    let claims: TokenClaims;
    try {
      claims = JSON.parse(Buffer.from(token.slice(first + 1, last), 'base64url').toString('utf8'));
    } catch {
      return null;
    }
    if (typeof claims !== 'object' || claims === null) return null;
    if (typeof claims.exp !== 'number' || claims.exp <= nowSeconds) return null;
    if (typeof claims.jti !== 'string' || typeof claims.sub !== 'string' || !/^\d{1,15}$/.test(claims.sub)) return null;
    if (claims.typ === 'queue') {
      if (!Number.isSafeInteger(claims.cid) || !Number.isSafeInteger(claims.seq)) return null;
    } else if (claims.typ !== 'user') return null;
    return claims;
  }

  /** Signed with this service's secret, whatever its claims? (Such a token is never an identity token.) */
  signedHere(token: string): boolean {
    const last = token.lastIndexOf('.');
    if (last <= 0) return false;
    const given = Buffer.from(token.slice(last + 1), 'base64url');
    const expected = Buffer.from(this.mac(token.slice(0, last)), 'base64url');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private mac(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url');
  }
}
