import { Hono } from 'hono';
import type { AppContext } from '../../context.ts';
import type { AppEnv } from '../env.ts';
import { bearer } from '../middleware/auth.ts';
import { chargeBody, idempotencyHeader, paymentBody } from '../schemas.ts';
import { validate } from '../validate.ts';

/** What the router uses of the service. */
export type BalanceRouterDeps = Pick<AppContext, 'balance' | 'clock' | 'tokens'>;

/** GET /v1/me/balance, POST /v1/me/balance/charge */
export function balanceRouter(ctx: BalanceRouterDeps) {
  const auth = bearer({ tokens: ctx.tokens, clock: ctx.clock });
  return new Hono<AppEnv>()
    .get('/balance', auth, async (c) => {
      c.header('Cache-Control', 'no-store');
      return c.json(await ctx.balance.get(c.get('principal'), ctx.clock()));
    })
    .post('/balance/charge', auth, validate('header', idempotencyHeader), validate('json', chargeBody), async (c) => {
      const key = c.req.valid('header')['idempotency-key'];
      const answer = await ctx.balance.charge(c.get('principal'), c.req.valid('json').amount, key, ctx.clock());
      return c.json(answer.body, answer.status);
    });
}

/** What the router uses of the service. */
export type PaymentsRouterDeps = Pick<AppContext, 'clock' | 'config' | 'payments' | 'tokens'>;

/** POST /v1/payments */
export function paymentsRouter(ctx: PaymentsRouterDeps) {
  const auth = bearer({ tokens: ctx.tokens, clock: ctx.clock });
  const body = paymentBody(ctx.config.maxHoldsPerUser);
  return new Hono<AppEnv>()
    .post('/', auth, validate('header', idempotencyHeader), validate('json', body), async (c) => {
      const key = c.req.valid('header')['idempotency-key'];
      const answer = await ctx.payments.pay(c.get('principal'), c.req.valid('json'), key, ctx.clock());
      return c.json(answer.body, answer.status);
    });
}
