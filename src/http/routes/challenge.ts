import { Hono } from 'hono';
import type { JoinProofService } from '../../modules/pow/join-proof.service.ts';
import type { AppEnv } from '../env.ts';

/** GET /v1/challenge: a proof-of-work challenge for one join (404 while JOIN_POW_BITS is 0). */
export interface ChallengeRouterDeps {
  joinProof: JoinProofService;
  clock: () => number;
}

export function challengeRouter({ joinProof, clock }: ChallengeRouterDeps) {
  return new Hono<AppEnv>().get('/', (c) => {
    const issued = joinProof.issue(clock());
    c.header('Cache-Control', 'no-store');
    return c.json({ challenge: issued.challenge, bits: issued.bits, expiresAt: new Date(issued.expiresAt).toISOString() });
  });
}
