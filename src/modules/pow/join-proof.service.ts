import { AppError, errors } from '../../errors.ts';
import type { Backends } from '../../backend/backends.ts';
import { ChallengeCodec, hasLeadingZeroBits, powDigest, type IssuedChallenge } from './challenge.ts';

/**
 * Instances' clocks differ a little: a used challenge stays recorded this long past its expiry,
 * so an instance whose clock runs behind cannot take it for fresh once the record is gone.
 */
export const SPENT_RECORD_SLACK_MS = 60_000;

/** A solved challenge as the client sends it with a join. */
export interface PowAnswer { challenge: string; nonce: string }

/** The join a challenge is spent on: the token it is made with, and the concert. */
export interface JoinAttempt { srcJti: string; concertId: number }

/**
 * Proof of work on joins (JOIN_POW_BITS): every new place in a line costs its client about
 * 2^bits SHA-256 computations, so one machine cannot take thousands of places a second. Each
 * challenge is good for one join. The join that spent it may show it again (a retry after a
 * lost answer, a double-submit): it is the same join, and the queue answers it with the same
 * place. Joins that take no new place (joining again with the live queue token, a replay)
 * need no challenge at all: QueueService asks only before it takes a new place.
 */
export class JoinProofService {
  private readonly codec: ChallengeCodec;

  constructor(
    private readonly backends: Backends,
    readonly bits: number,
    jwtSecret: string,
  ) {
    this.codec = new ChallengeCodec(jwtSecret);
  }

  get required(): boolean {
    return this.bits > 0;
  }

  issue(now: number): IssuedChallenge {
    if (!this.required) throw new AppError(404, 'NOT_FOUND', 'joins need no proof of work on this service (JOIN_POW_BITS=0)');
    return this.codec.issue(this.bits, now);
  }

  /** Passes when JOIN_POW_BITS is 0, or the answer is right, live, and not spent by another join. */
  async assertSolved(answer: PowAnswer | undefined, join: JoinAttempt, now: number): Promise<void> {
    if (!this.required) return;
    if (!answer) throw errors.challengeRequired(this.bits);
    const opened = this.codec.open(answer.challenge);
    if (!opened) throw errors.challengeFailed('pow.challenge: is not a challenge this service issued; get one from GET /v1/challenge');
    if (now > opened.expiresAt) throw errors.challengeFailed('pow.challenge: has expired; get a new one from GET /v1/challenge');
    if (opened.bits < this.bits) {
      throw errors.challengeFailed(`pow.challenge: asks for ${opened.bits} bits, the service now requires ${this.bits}; get a new one`);
    }
    if (!hasLeadingZeroBits(powDigest(answer.challenge, answer.nonce), opened.bits)) {
      throw errors.challengeFailed(`pow.nonce: SHA-256 of challenge + ":" + nonce does not start with ${opened.bits} zero bits`);
    }
    const ours = await this.backends.current.spentChallenges.spend({
      id: opened.id, spentBy: `${join.srcJti}:${join.concertId}`, keepUntil: opened.expiresAt + SPENT_RECORD_SLACK_MS,
    }, now);
    if (!ours) throw errors.challengeFailed('pow.challenge: was already used for another join; get a new one from GET /v1/challenge');
  }
}
