import { Hono } from 'hono';
import type { AppContext } from '../../context.ts';
import { reservationView } from '../../modules/reservations/reservations.service.ts';
import type { AppEnv } from '../env.ts';
import { bearer } from '../middleware/auth.ts';
import { holdBody, reservationParam } from '../schemas.ts';
import { validate } from '../validate.ts';

/** POST /v1/reservations, GET and DELETE /v1/reservations/:id */
export function reservationsRouter(ctx: AppContext) {
  const auth = bearer({ tokens: ctx.tokens, clock: ctx.clock });
  return new Hono<AppEnv>()
    .post('/', auth, validate('json', holdBody), async (c) => {
      const { scheduleId, seatNumber } = c.req.valid('json');
      const hold = await ctx.reservations.hold(c.get('principal'), scheduleId, seatNumber, ctx.clock());
      return c.json(reservationView(hold, 'held'), 201);
    })
    .get('/:id', validate('param', reservationParam), auth, async (c) => {
      const rec = await ctx.reservations.get(c.get('principal'), c.req.valid('param').id, ctx.clock());
      c.header('Cache-Control', 'no-store');
      return c.json(reservationView(rec, rec.status));
    })
    .delete('/:id', validate('param', reservationParam), auth, async (c) => {
      await ctx.reservations.release(c.get('principal'), c.req.valid('param').id, ctx.clock());
      return c.body(null, 204);
    });
}
