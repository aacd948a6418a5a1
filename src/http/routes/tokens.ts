import { Hono } from 'hono';
import type { IdentityService } from '../../modules/identity/identity.service.ts';
import type { TokenService } from '../../modules/tokens/tokens.service.ts';
import type { AppEnv } from '../env.ts';
import { idTokenBody, tokenBody } from '../schemas.ts';
import { validate } from '../validate.ts';

/** POST /v1/tokens: who the user is comes from the body (open mode) or from an identity provider's token (jwt mode). */
export interface TokensRouterDeps {
  tokens: TokenService;
  /** Set in AUTH_MODE=jwt: the body then carries the identity provider's token, not a user id. */
  identity: IdentityService | null;
  clock: () => number;
}

export function tokensRouter({ tokens, identity, clock }: TokensRouterDeps) {
  const issue = async (userId: number) => {
    const issued = await tokens.issueUserToken(userId, clock());
    return { token: issued.token, expiresAt: new Date(issued.expiresAt).toISOString(), userId };
  };
  if (identity) {
    return new Hono<AppEnv>().post('/', validate('json', idTokenBody), async (c) => {
      const userId = await identity.userIdFor(c.req.valid('json').idToken, clock());
      return c.json(await issue(userId), 201);
    });
  }
  return new Hono<AppEnv>().post('/', validate('json', tokenBody), async (c) => c.json(await issue(c.req.valid('json').userId), 201));
}
