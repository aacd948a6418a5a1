import type { Context, MiddlewareHandler, Next } from 'hono';
import { errors } from '../../errors.ts';
import type { Principal, TokenService } from '../../modules/tokens/tokens.service.ts';

export type AuthVariables = {
  principal: Principal;
  /**
   * The request's Bearer token checked once (see bearerPrincipal): false when there is no Bearer
   * token at all, null when it does not verify; a Promise while a verification is under way.
   */
  bearerChecked: Principal | null | false | Promise<Principal | null>;
};

const BEARER = /^Bearer\s+(\S+)$/i;

/** The token of an `Authorization: Bearer <token>` header, else null. */
function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  // The usual form, "Bearer " and a token with no blanks, without running the pattern.
  if (header.startsWith('Bearer ') && header.length > 7 && header.charCodeAt(7) > 32 && !/\s/.test(header)) return header.slice(7);
  const m = BEARER.exec(header);
  return m ? m[1]! : null;
}

/** The check of the request's Bearer token, made on first use and kept on the context. */
function checkBearer(c: Context<{ Variables: AuthVariables }>, tokens: TokenService, clock: () => number): AuthVariables['bearerChecked'] {
  let checked = c.get('bearerChecked');
  if (checked === undefined) {
    const token = bearerToken(c.req.header('Authorization'));
    if (token === null) checked = false;
    else {
      const now = clock();
      // A token verified before answers from the cache without a Promise (the poll's usual case).
      checked = tokens.verified.get(token, now) ?? tokens.decode(token, now);
    }
    c.set('bearerChecked', checked);
  }
  return checked;
}

/**
 * The principal of the request's Bearer token if its signature and expiry hold (no I/O), else
 * null. Checked once per request: the rate limiter and the route's bearer() share the answer
 * through the context, so a request never pays for the same verification twice. A Promise only
 * while the token is being verified; a token found in the verified-token cache answers at once.
 */
export function bearerPrincipal(c: Context<{ Variables: AuthVariables }>, tokens: TokenService, clock: () => number):
  Principal | null | Promise<Principal | null> {
  const checked = checkBearer(c, tokens, clock);
  return checked === false ? null : checked;
}

/** The user id of the request's verified Bearer token, else null (for the rate limiter): no Promise on a cache hit. */
export function verifiedUserOf(tokens: TokenService, clock: () => number) {
  return (c: Context): number | null | Promise<number | null> => {
    const p = bearerPrincipal(c, tokens, clock);
    return p instanceof Promise ? p.then((v) => v?.userId ?? null) : p?.userId ?? null;
  };
}

/**
 * Checks the Bearer token's signature and expiry (no I/O). Whether the server still knows
 * the token is checked by the feature's store, in the same round trip as its own work.
 */
export function bearer(opts: { tokens: TokenService; clock: () => number; accept?: ('user' | 'queue')[] }):
  MiddlewareHandler<{ Variables: AuthVariables }> {
  const accept = opts.accept ?? ['user', 'queue'];
  const wrongType = `a ${accept.join(' or ')} token is required`;
  const admit = (c: Context<{ Variables: AuthVariables }>, next: Next, p: Principal | null) => {
    if (!p) throw errors.unauthenticated('invalid or expired token');
    if (!accept.includes(p.typ)) throw errors.unauthenticated(wrongType);
    c.set('principal', p);
    return next();
  };
  // Not async: a token from the cache goes straight on to next() (refusals throw, as Hono expects).
  return function bearerAuth(c, next) {
    const checked = checkBearer(c, opts.tokens, opts.clock);
    if (checked === false) throw errors.unauthenticated('Authorization: Bearer <token> is required');
    return checked instanceof Promise ? checked.then((p) => admit(c, next, p)) : admit(c, next, checked);
  };
}
