import type { Logger } from '../logger.ts';
import { IDEMPOTENCY_TTL_MS } from '../modules/payments/idempotency.ts';
import { purgeKeys } from '../modules/payments/idempotency.repo.ts';
import { expireHolds } from '../modules/reservations/reservations.repo.ts';
import { purgeSpentChallenges } from '../modules/pow/spent-challenges.repo.ts';
import { purgeJoinReplays } from '../modules/tokens/join-replays.repo.ts';
import type { Db } from '../store/connect.ts';

/**
 * Reconciliation only: holds are correct without it (their keys and SQL rows carry the expiry,
 * and every reader compares with now). It marks SQL reservations whose hold lapsed as
 * `expired`, frees their seat rows, drops Idempotency-Keys older than a day, drops join
 * claims (join_replays) once no token could still replay them, and drops the records of spent
 * join challenges once the challenges could not be accepted anyway.
 */
export class HoldSweeper {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private pass: Promise<void> | null = null;

  constructor(private readonly db: Db, private readonly log: Logger,
    private readonly opts: { intervalMs?: number; clock: () => number; joinReplayKeepMs?: number }) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = async () => {
      if (!this.running) return;
      this.pass = this.sweepOnce().then(() => {}, (err) => this.log.warn('hold sweep failed', { err }));
      await this.pass;
      this.pass = null;
      if (this.running) this.timer = setTimeout(loop, this.opts.intervalMs ?? 30_000);
    };
    this.timer = setTimeout(loop, 0);
  }

  /** Stops the loop; the promise resolves when a sweep that was under way has ended. */
  stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    return this.pass ?? Promise.resolve();
  }

  async sweepOnce(now = this.opts.clock()):
    Promise<{ reservations: number; seats: number; idempotencyKeys: number; joinClaims: number; spentChallenges: number }> {
    const expired = await expireHolds(this.db, now);
    const idempotencyKeys = await purgeKeys(this.db, now - IDEMPOTENCY_TTL_MS);
    const joinClaims = this.opts.joinReplayKeepMs === undefined ? 0 : await purgeJoinReplays(this.db, now - this.opts.joinReplayKeepMs);
    const spentChallenges = await purgeSpentChallenges(this.db, now);
    if (expired.reservations || expired.seats) this.log.debug('expired holds swept', { ...expired });
    return { ...expired, idempotencyKeys, joinClaims, spentChallenges };
  }
}
