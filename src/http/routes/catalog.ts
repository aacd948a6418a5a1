import { Hono } from 'hono';
import type { AppContext } from '../../context.ts';
import type { AppEnv } from '../env.ts';
import { bearer } from '../middleware/auth.ts';
import { concertParam, scheduleParams } from '../schemas.ts';
import { validate } from '../validate.ts';

/** What the router uses of the service. */
export type CatalogRouterDeps = Pick<AppContext, 'catalog' | 'clock' | 'queue' | 'sale' | 'tokens'>;

export function catalogRouter(ctx: CatalogRouterDeps) {
  const auth = bearer({ tokens: ctx.tokens, clock: ctx.clock });
  return new Hono<AppEnv>()
    .get('/', async (c) => c.json({ concerts: await ctx.catalog.list() }))
    .get('/:concertId', validate('param', concertParam), async (c) => {
      const { concertId } = c.req.valid('param');
      return c.json(await ctx.catalog.detail(concertId, ctx.clock(), (id, now) => ctx.sale.publicView(id, now)));
    })
    .get('/:concertId/draw', validate('param', concertParam), async (c) => {
      const { concertId } = c.req.valid('param');
      await ctx.catalog.concert(concertId);
      return c.json(await ctx.sale.published(concertId));
    })
    .get('/:concertId/schedules', validate('param', concertParam), auth, async (c) => {
      const { concertId } = c.req.valid('param');
      const now = ctx.clock();
      await ctx.catalog.concert(concertId);
      await ctx.queue.requireActive(c.get('principal'), concertId, now);
      return c.json({ schedules: await ctx.catalog.schedules(concertId, now) });
    })
    .get('/:concertId/schedules/:scheduleId/seats', validate('param', scheduleParams), auth, async (c) => {
      const { concertId, scheduleId } = c.req.valid('param');
      const now = ctx.clock();
      await ctx.catalog.concert(concertId);
      await ctx.queue.requireActive(c.get('principal'), concertId, now);
      return c.json({ seats: await ctx.catalog.seats(concertId, scheduleId, now) });
    });
}
