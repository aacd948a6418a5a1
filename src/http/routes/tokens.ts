import { Hono } from 'hono';
import type { AppContext } from '../../context.ts';
import type { AppEnv } from '../env.ts';
import { idTokenBody, tokenBody } from '../schemas.ts';
import { validate } from '../validate.ts';

/** What the router uses of the service. */
export type TokensRouterDeps = Pick<AppContext, 'clock' | 'identity' | 'tokens'>;

/** POST /v1/tokens: who the user is comes from the body (open mode) or from an identity provider's token (jwt mode). */
export function tokensRouter(ctx: TokensRouterDeps) {
  const issue = async (userId: number) => {
    const issued = await ctx.tokens.issueUserToken(userId, ctx.clock());
    return { token: issued.token, expiresAt: new Date(issued.expiresAt).toISOString(), userId };
  };
  const identity = ctx.identity;
  if (identity) {
    return new Hono<AppEnv>().post('/', validate('json', idTokenBody), async (c) => {
      const userId = await identity.userIdFor(c.req.valid('json').idToken, ctx.clock());
      return c.json(await issue(userId), 201);
    });
  }
  return new Hono<AppEnv>().post('/', validate('json', tokenBody), async (c) => c.json(await issue(c.req.valid('json').userId), 201));
}
