import { Hono } from 'hono';
import type { AppContext } from '../../context.ts';
import { reservationView } from '../../modules/reservations/reservations.service.ts';
import type { AppEnv } from '../env.ts';
import { bearer } from '../middleware/auth.ts';
import { holdBody, idempotencyHeader, reservationParam } from '../schemas.ts';
import { validate } from '../validate.ts';

/** What the router uses of the service. */
export type ReservationsRouterDeps = Pick<AppContext, 'clock' | 'reservations' | 'tokens'>;

/** POST /v1/reservations, GET and DELETE /v1/reservations/:id */
export function reservationsRouter(ctx: ReservationsRouterDeps) {
  const auth = bearer({ tokens: ctx.tokens, clock: ctx.clock });
  return new Hono<AppEnv>()
    .post('/', auth, validate('header', idempotencyHeader), validate('json', holdBody), async (c) => {
      const { scheduleId, seatNumber } = c.req.valid('json');
      const key = c.req.valid('header')['idempotency-key'];
      const answer = await ctx.reservations.hold(c.get('principal'), scheduleId, seatNumber, key, ctx.clock());
      return c.json(answer.body, answer.status);
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

/** What the router uses of the service. */
export type MyReservationsRouterDeps = Pick<AppContext, 'clock' | 'reservations' | 'tokens'>;

/** GET /v1/me/reservations: the newest OWN_RESERVATIONS_LIMIT, newest first. */
export function myReservationsRouter(ctx: MyReservationsRouterDeps) {
  const auth = bearer({ tokens: ctx.tokens, clock: ctx.clock });
  return new Hono<AppEnv>()
    .get('/reservations', auth, async (c) => {
      const recs = await ctx.reservations.listOwn(c.get('principal'), ctx.clock());
      c.header('Cache-Control', 'no-store');
      return c.json({ reservations: recs.map((r) => reservationView(r, r.status)) });
    });
}
