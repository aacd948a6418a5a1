import { Hono } from 'hono';
import type { AppContext } from '../../context.ts';
import type { AppEnv } from '../env.ts';
import { adminKey } from '../middleware/admin-key.ts';
import { concertParam, createConcertBody, queueConfigBody, samplesQuery } from '../schemas.ts';
import { validate } from '../validate.ts';

export function adminRouter(ctx: AppContext) {
  return new Hono<AppEnv>()
    .use('*', adminKey({ key: ctx.config.adminApiKey }))
    .post('/concerts', validate('json', createConcertBody), async (c) => {
      const body = c.req.valid('json');
      const { concert, schedules } = await ctx.catalog.create({
        title: body.title,
        schedules: body.schedules.map((s) => ({ date: Date.parse(s.date), seats: s.seats, price: s.price })),
      }, ctx.clock(), ctx.mode.useRedis());
      return c.json({
        id: concert.id, title: concert.title,
        startsAt: new Date(concert.starts_at).toISOString(), endsAt: new Date(concert.ends_at).toISOString(),
        schedules: schedules.map((s) => ({ id: s.id, date: new Date(s.date).toISOString(), capacity: s.capacity, price: s.price })),
      }, 201);
    })
    .get('/concerts/:concertId/queue', validate('param', concertParam), async (c) => {
      const { concertId } = c.req.valid('param');
      return c.json(await ctx.admin.queueStats(concertId, ctx.clock()));
    })
    .patch('/concerts/:concertId/queue', validate('param', concertParam), validate('json', queueConfigBody), async (c) => {
      const { concertId } = c.req.valid('param');
      return c.json(await ctx.admin.updateQueueConfig(concertId, c.req.valid('json')));
    })
    .get('/overview', async (c) => c.json(await ctx.console.overview()))
    .get('/concerts/:concertId/samples', validate('param', concertParam), validate('query', samplesQuery), async (c) => {
      const { concertId } = c.req.valid('param');
      return c.json(await ctx.console.concertSamples(concertId, c.req.valid('query').minutes ?? 60));
    })
    .get('/status', async (c) => c.json(await ctx.admin.status()))
    .post('/cache/rebuild', async (c) => {
      const started = ctx.admin.requestRebuild();
      return c.json({ accepted: true, started }, 202);
    });
}
