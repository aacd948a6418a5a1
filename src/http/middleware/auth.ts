import type { Context, MiddlewareHandler } from 'hono';
import { errors } from '../../errors.ts';
import type { Principal, TokenService } from '../../modules/tokens/tokens.service.ts';

export type AuthVariables = {
  principal: Principal;
  /** The request's Bearer token checked once (see bearerPrincipal); null: none, or not valid. */
  bearerChecked: Promise<Principal | null>;
};

const BEARER = /^Bearer\s+(\S+)$/i;

/**
 * The principal of the request's Bearer token if its signature and expiry hold (no I/O), else
 * null. Checked once per request: the rate limiter and the route's bearer() share the answer
 * through the context, so a request never pays for the same verification twice.
 */
export function bearerPrincipal(c: Context<{ Variables: AuthVariables }>, tokens: TokenService, clock: () => number): Promise<Principal | null> {
  let checked = c.get('bearerChecked');
  if (checked === undefined) {
    const m = BEARER.exec(c.req.header('Authorization') ?? '');
    checked = m ? tokens.decode(m[1]!, clock()) : Promise.resolve(null);
    c.set('bearerChecked', checked);
  }
  return checked;
}

/**
 * Checks the Bearer token's signature and expiry (no I/O). Whether the server still knows
 * the token is checked by the feature's store, in the same round trip as its own work.
 */
export function bearer(opts: { tokens: TokenService; clock: () => number; accept?: ('user' | 'queue')[] }):
  MiddlewareHandler<{ Variables: AuthVariables }> {
  const accept = opts.accept ?? ['user', 'queue'];
  return async function bearerAuth(c, next) {
    if (!BEARER.test(c.req.header('Authorization') ?? '')) throw errors.unauthenticated('Authorization: Bearer <token> is required');
    const principal = await bearerPrincipal(c, opts.tokens, opts.clock);
    if (!principal) throw errors.unauthenticated('invalid or expired token');
    if (!accept.includes(principal.typ)) throw errors.unauthenticated(`a ${accept.join(' or ')} token is required`);
    c.set('principal', principal);
    await next();
  };
}
