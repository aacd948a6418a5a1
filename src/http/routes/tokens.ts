import { Hono } from 'hono';
import type { AppContext } from '../../context.ts';
import type { AppEnv } from '../env.ts';
import { tokenBody } from '../schemas.ts';
import { validate } from '../validate.ts';

export function tokensRouter(ctx: AppContext) {
  return new Hono<AppEnv>().post('/', validate('json', tokenBody), async (c) => {
    const { userId } = c.req.valid('json');
    const issued = await ctx.tokens.issueUserToken(userId, ctx.clock(), ctx.mode.useRedis());
    return c.json({ token: issued.token, expiresAt: new Date(issued.expiresAt).toISOString() }, 201);
  });
}
