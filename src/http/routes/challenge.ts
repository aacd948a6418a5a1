import { Hono } from 'hono';
import type { AppContext } from '../../context.ts';
import type { AppEnv } from '../env.ts';

/** What the router uses of the service. */
export type ChallengeRouterDeps = Pick<AppContext, 'clock' | 'joinProof'>;

/** GET /v1/challenge: a proof-of-work challenge for one join (404 while JOIN_POW_BITS is 0). */
export function challengeRouter(ctx: ChallengeRouterDeps) {
  return new Hono<AppEnv>().get('/', (c) => {
    const issued = ctx.joinProof.issue(ctx.clock());
    c.header('Cache-Control', 'no-store');
    return c.json({ challenge: issued.challenge, bits: issued.bits, expiresAt: new Date(issued.expiresAt).toISOString() });
  });
}
