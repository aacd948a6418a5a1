import { randomUUID } from 'node:crypto';
import type { Db } from '../../store/connect.ts';
import type { QueueService } from '../queue/queue.service.ts';
import type { Principal } from '../tokens/tokens.service.ts';
import { idempotentRequest, priorAnswer, runIdempotent, type Answer } from './idempotency.ts';
import { credit, findBalance } from './ledger.repo.ts';

export interface BalanceView { userId: number; balance: number }

/** Balances live in SQL only (both modes); the ledger always sums to the balance. */
export class BalanceService {
  constructor(private readonly db: Db, private readonly queue: QueueService) {}

  async get(principal: Principal, now: number): Promise<BalanceView> {
    await this.queue.assertLive(principal, now);
    return { userId: principal.userId, balance: await findBalance(this.db, principal.userId) };
  }

  /**
   * A retry with the same Idempotency-Key and body gets the first answer back, even if the
   * token has been revoked since (a payment revokes the queue token): the signed token still
   * proves who asks, and nothing is done twice.
   */
  async charge(principal: Principal, amount: number, idempotencyKey: string | undefined, now: number): Promise<Answer<BalanceView>> {
    const req = idempotencyKey === undefined ? null : idempotentRequest(principal.userId, 'charge', idempotencyKey, { amount });
    const prior = await priorAnswer<BalanceView>(this.db, req, now);
    if (prior) return prior;
    try {
      await this.queue.assertLive(principal, now);
    } catch (err) {
      // A concurrent retry of this key may have been answered while the token was being revoked.
      const late = await priorAnswer<BalanceView>(this.db, req, now);
      if (late) return late;
      throw err;
    }
    const { answer } = await runIdempotent<BalanceView>(this.db, req, now, async (trx) => {
      const balance = await credit(trx, principal.userId, amount, `charge:${randomUUID()}`, now);
      return { status: 200, body: { userId: principal.userId, balance } };
    });
    return answer;
  }
}
