import { Hono } from 'hono';
import type { BalanceService } from '../../modules/payments/balance.service.ts';
import type { PaymentService } from '../../modules/payments/payments.service.ts';
import type { TokenService } from '../../modules/tokens/tokens.service.ts';
import type { AppEnv } from '../env.ts';
import { bearer } from '../middleware/auth.ts';
import { chargeBody, idempotencyHeader, paymentBody } from '../schemas.ts';
import { validate } from '../validate.ts';

export interface BalanceRouterDeps {
  balance: BalanceService;
  tokens: TokenService;
  clock: () => number;
}

/** GET /v1/me/balance, POST /v1/me/balance/charge */
export function balanceRouter({ balance, tokens, clock }: BalanceRouterDeps) {
  const auth = bearer({ tokens, clock });
  return new Hono<AppEnv>()
    .get('/balance', auth, async (c) => {
      c.header('Cache-Control', 'no-store');
      return c.json(await balance.get(c.get('principal'), clock()));
    })
    .post('/balance/charge', auth, validate('header', idempotencyHeader), validate('json', chargeBody), async (c) => {
      const key = c.req.valid('header')['idempotency-key'];
      const answer = await balance.charge(c.get('principal'), c.req.valid('json').amount, key, clock());
      return c.json(answer.body, answer.status);
    });
}

export interface PaymentsRouterDeps {
  payments: PaymentService;
  tokens: TokenService;
  clock: () => number;
  /** MAX_HOLDS_PER_USER: the most reservations one payment may name. */
  maxHoldsPerUser: number;
}

/** POST /v1/payments */
export function paymentsRouter({ payments, tokens, clock, maxHoldsPerUser }: PaymentsRouterDeps) {
  const auth = bearer({ tokens, clock });
  const body = paymentBody(maxHoldsPerUser);
  return new Hono<AppEnv>()
    .post('/', auth, validate('header', idempotencyHeader), validate('json', body), async (c) => {
      const key = c.req.valid('header')['idempotency-key'];
      const answer = await payments.pay(c.get('principal'), c.req.valid('json'), key, clock());
      return c.json(answer.body, answer.status);
    });
}
