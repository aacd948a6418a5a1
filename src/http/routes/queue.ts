import { Hono } from 'hono';
import type { JoinProofService } from '../../modules/pow/join-proof.service.ts';
import type { QueueService } from '../../modules/queue/queue.service.ts';
import type { TokenService } from '../../modules/tokens/tokens.service.ts';
import type { AppEnv } from '../env.ts';
import { bearer } from '../middleware/auth.ts';
import { concertParam, joinBody } from '../schemas.ts';
import { validate, validateOptionalJson } from '../validate.ts';

export interface JoinRouterDeps {
  queue: QueueService;
  /** Checks the join's proof of work before a new place is made. */
  joinProof: JoinProofService;
  tokens: TokenService;
  clock: () => number;
}

/** POST /v1/concerts/:concertId/queue */
export function joinRouter({ queue, joinProof, tokens, clock }: JoinRouterDeps) {
  return new Hono<AppEnv>().post('/:concertId/queue', validate('param', concertParam), bearer({ tokens, clock }),
    validateOptionalJson(joinBody),
    async (c) => {
      const { concertId } = c.req.valid('param');
      const { pow, drawNonce } = c.req.valid('json');
      const principal = c.get('principal');
      const now = clock();
      const r = await queue.join(principal, concertId, now, {
        drawNonce,
        beforeNewPlace: () => joinProof.assertSolved(pow, { srcJti: principal.jti, concertId }, now),
      });
      const { status, position, ahead, estimatedWaitSeconds, paused, pollAfterSeconds, activeUntil, opensAt, drawTicket } = r.place;
      return c.json({
        token: r.token, expiresAt: new Date(r.expiresAt).toISOString(), status, concertId, position, ahead,
        estimatedWaitSeconds, paused, pollAfterSeconds, activeUntil, ...(opensAt ? { opensAt, drawTicket } : {}),
      }, r.created ? 201 : 200);
    });
}

export interface QueueMeRouterDeps {
  queue: QueueService;
  tokens: TokenService;
  clock: () => number;
}

/** GET and DELETE /v1/queue/me */
export function queueMeRouter({ queue, tokens, clock }: QueueMeRouterDeps) {
  const auth = bearer({ tokens, clock, accept: ['queue'] });
  return new Hono<AppEnv>()
    .get('/me', auth, async (c) => {
      const view = await queue.poll(c.get('principal'), clock());
      c.header('Cache-Control', 'no-store');
      return c.json(view);
    })
    .delete('/me', auth, async (c) => {
      await queue.leave(c.get('principal'), clock());
      return c.body(null, 204);
    });
}
