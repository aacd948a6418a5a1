import { Hono } from 'hono';
import type { AppContext } from '../../context.ts';
import type { AppEnv } from '../env.ts';
import { bearer } from '../middleware/auth.ts';
import { concertParam, joinBody } from '../schemas.ts';
import { validate, validateOptionalJson } from '../validate.ts';

/** What the router uses of the service. */
export type JoinRouterDeps = Pick<AppContext, 'clock' | 'joinProof' | 'queue' | 'tokens'>;

/** POST /v1/concerts/:concertId/queue */
export function joinRouter(ctx: JoinRouterDeps) {
  return new Hono<AppEnv>().post('/:concertId/queue', validate('param', concertParam), bearer({ tokens: ctx.tokens, clock: ctx.clock }),
    validateOptionalJson(joinBody),
    async (c) => {
      const { concertId } = c.req.valid('param');
      const { pow, drawNonce } = c.req.valid('json');
      const principal = c.get('principal');
      const now = ctx.clock();
      const r = await ctx.queue.join(principal, concertId, now, {
        drawNonce,
        beforeNewPlace: () => ctx.joinProof.assertSolved(pow, { srcJti: principal.jti, concertId }, now),
      });
      const { status, position, ahead, estimatedWaitSeconds, paused, pollAfterSeconds, activeUntil, opensAt, drawTicket } = r.place;
      return c.json({
        token: r.token, expiresAt: new Date(r.expiresAt).toISOString(), status, concertId, position, ahead,
        estimatedWaitSeconds, paused, pollAfterSeconds, activeUntil, ...(opensAt ? { opensAt, drawTicket } : {}),
      }, r.created ? 201 : 200);
    });
}

/** What the router uses of the service. */
export type QueueMeRouterDeps = Pick<AppContext, 'clock' | 'queue' | 'tokens'>;

/** GET and DELETE /v1/queue/me */
export function queueMeRouter(ctx: QueueMeRouterDeps) {
  const auth = bearer({ tokens: ctx.tokens, clock: ctx.clock, accept: ['queue'] });
  return new Hono<AppEnv>()
    .get('/me', auth, async (c) => {
      const view = await ctx.queue.poll(c.get('principal'), ctx.clock());
      c.header('Cache-Control', 'no-store');
      return c.json(view);
    })
    .delete('/me', auth, async (c) => {
      await ctx.queue.leave(c.get('principal'), ctx.clock());
      return c.body(null, 204);
    });
}
