import type { MiddlewareHandler } from 'hono';
import { errors } from '../../errors.ts';
import type { Principal, TokenService } from '../../modules/tokens/tokens.service.ts';

export type AuthVariables = { principal: Principal };

/**
 * Checks the Bearer token's signature and expiry (no I/O). Whether the server still knows
 * the token is checked by the feature's store, in the same round trip as its own work.
 */
export function bearer(opts: { tokens: TokenService; clock: () => number; accept?: ('user' | 'queue')[] }):
  MiddlewareHandler<{ Variables: AuthVariables }> {
  const accept = opts.accept ?? ['user', 'queue'];
  return async function bearerAuth(c, next) {
    const header = c.req.header('Authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw errors.unauthenticated('Authorization: Bearer <token> is required');
    const principal = opts.tokens.decode(m[1]!, opts.clock());
    if (!principal) throw errors.unauthenticated('invalid or expired token');
    if (!accept.includes(principal.typ)) throw errors.unauthenticated(`a ${accept.join(' or ')} token is required`);
    c.set('principal', principal);
    await next();
  };
}
