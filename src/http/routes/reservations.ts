import { Hono } from 'hono';
import type { TokenService } from '../../modules/tokens/tokens.service.ts';
import { reservationView, type ReservationService } from '../../modules/reservations/reservations.service.ts';
import type { AppEnv } from '../env.ts';
import { bearer } from '../middleware/auth.ts';
import { holdBody, idempotencyHeader, reservationParam } from '../schemas.ts';
import { validate } from '../validate.ts';

export interface ReservationsRouterDeps {
  reservations: ReservationService;
  tokens: TokenService;
  clock: () => number;
}

/** POST /v1/reservations, GET and DELETE /v1/reservations/:id */
export function reservationsRouter({ reservations, tokens, clock }: ReservationsRouterDeps) {
  const auth = bearer({ tokens, clock });
  return new Hono<AppEnv>()
    .post('/', auth, validate('header', idempotencyHeader), validate('json', holdBody), async (c) => {
      const { scheduleId, seatNumber } = c.req.valid('json');
      const key = c.req.valid('header')['idempotency-key'];
      const answer = await reservations.hold(c.get('principal'), scheduleId, seatNumber, key, clock());
      return c.json(answer.body, answer.status);
    })
    .get('/:id', validate('param', reservationParam), auth, async (c) => {
      const rec = await reservations.get(c.get('principal'), c.req.valid('param').id, clock());
      c.header('Cache-Control', 'no-store');
      return c.json(reservationView(rec, rec.status));
    })
    .delete('/:id', validate('param', reservationParam), auth, async (c) => {
      await reservations.release(c.get('principal'), c.req.valid('param').id, clock());
      return c.body(null, 204);
    });
}

/** GET /v1/me/reservations: the newest OWN_RESERVATIONS_LIMIT, newest first. */
export function myReservationsRouter({ reservations, tokens, clock }: ReservationsRouterDeps) {
  const auth = bearer({ tokens, clock });
  return new Hono<AppEnv>()
    .get('/reservations', auth, async (c) => {
      const recs = await reservations.listOwn(c.get('principal'), clock());
      c.header('Cache-Control', 'no-store');
      return c.json({ reservations: recs.map((r) => reservationView(r, r.status)) });
    });
}
