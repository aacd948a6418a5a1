import { sign, verify } from 'hono/jwt';

/**
 * This service's own tokens (user and queue tokens): HS256 JWTs signed with JWT_SECRET through
 * hono/jwt (WebCrypto). WebCrypto verification is asynchronous and measured here at about half the
 * rate of a synchronous node:crypto HMAC; TokenService keeps a bounded cache of verified tokens so
 * that a poll does not pay it every time (see VerifiedTokens).
 *
 * The tokens are byte for byte those of the node:crypto codec this replaced (same header, same
 * claims JSON, unpadded base64url), so tokens given out before an upgrade stay valid after it.
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

/** The only algorithm this service signs with or accepts for its own tokens. */
export const TOKEN_ALG = 'HS256';

/**
 * Instances' clocks may differ by this much: a token is still accepted this many seconds past its
 * exp, and its iat may lie this far in the future (issued by an instance whose clock is ahead).
 * Small next to every token lifetime (USER/QUEUE_TOKEN_TTL_SECONDS are at least a minute in
 * practice); the server-side record, checked by the stores on every use, is not extended by it.
 */
export const TOKEN_LEEWAY_SECONDS = 5;

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export class JwtCodec {
  /** Imported once: hono/jwt would import a string secret again on every call. */
  private readonly key: Promise<CryptoKey>;

  constructor(secret: string) {
    this.key = crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  }

  async sign(claims: TokenClaims): Promise<string> {
    return sign({ ...claims }, await this.key, TOKEN_ALG);
  }

  /**
   * The claims of a token that is correctly signed with HS256 (the algorithm is never taken from
   * the token), has a JWT header, an exp that has not passed (give or take TOKEN_LEEWAY_SECONDS)
   * and the claims of a user or a queue token; otherwise null.
   */
  async verify(token: string, nowSeconds = Math.floor(Date.now() / 1000)): Promise<TokenClaims | null> {
    let payload: Record<string, unknown>;
    try {
      // hono/jwt judges time claims with Date.now() and no leeway, and accepts a token without exp:
      // they are judged below with the service's clock instead.
      payload = await verify(token, await this.key, { alg: TOKEN_ALG, exp: false, nbf: false, iat: false }) as Record<string, unknown>;
    } catch {
      return null; // malformed, another alg (none included), another header typ, bad signature
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return null;
    const { typ, sub, jti, iat, exp, nbf, cid, seq } = payload;
    if (!isFiniteNumber(exp) || exp + TOKEN_LEEWAY_SECONDS <= nowSeconds) return null;
    if (!isFiniteNumber(iat) || iat > nowSeconds + TOKEN_LEEWAY_SECONDS) return null;
    if (nbf !== undefined && (!isFiniteNumber(nbf) || nbf > nowSeconds + TOKEN_LEEWAY_SECONDS)) return null;
    if (typeof jti !== 'string' || typeof sub !== 'string' || !/^\d{1,15}$/.test(sub)) return null;
    if (typ === 'queue') {
      if (!Number.isSafeInteger(cid) || !Number.isSafeInteger(seq)) return null;
    } else if (typ !== 'user') return null;
    return payload as unknown as TokenClaims;
  }

  /**
   * Signed with this service's secret, whatever its header and claims? (Such a token is never an
   * identity token.) Checks the HS256 MAC over the first two parts, as the service signs them.
   */
  async signedHere(token: string): Promise<boolean> {
    const last = token.lastIndexOf('.');
    if (last <= 0 || !/^[A-Za-z0-9_-]+$/.test(token.slice(last + 1))) return false;
    const mac = Buffer.from(token.slice(last + 1), 'base64url');
    return crypto.subtle.verify('HMAC', await this.key, mac, new TextEncoder().encode(token.slice(0, last)));
  }
}
