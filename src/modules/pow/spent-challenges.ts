import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import type { Db } from '../../store/connect.ts';
import { spendChallenge } from './spent-challenges.repo.ts';

/** One use of a challenge: which join spent it, and how long the record must outlive the challenge. */
export interface ChallengeUse { id: string; spentBy: string; keepUntil: number }

/** Where used challenges are recorded; true when the challenge is this join's (new, or its own retry). */
export interface SpentChallenges {
  spend(use: ChallengeUse, now: number): Promise<boolean>;
}

export class SqlSpentChallenges implements SpentChallenges {
  constructor(private readonly db: Db) {}

  async spend(use: ChallengeUse): Promise<boolean> {
    return (await this.spender(use)) === use.spentBy;
  }

  /** Records the use unless another join's is recorded; answers the join of record. */
  spender(use: ChallengeUse): Promise<string> {
    return spendChallenge(this.db, use);
  }
}

/**
 * Redis mode: one `SET NX GET` with the record's life as TTL refuses a replayed challenge
 * without touching SQL, so a flood of copies of one solved challenge costs one Redis command
 * each. A challenge new to Redis is recorded in SQL as well, and SQL's answer decides: the
 * record then survives a switch to SQL mode (and a rebuild, which does not copy these keys),
 * and a challenge spent while the service ran on SQL alone is refused here too. Only answers
 * that cost their sender the full proof of work reach SQL. When SQL names another join (the
 * challenge was spent while the service ran on SQL alone), the key is set to that join, so that
 * Redis goes on answering like SQL: the join that spent it may still show it again.
 */
export class RedisSpentChallenges implements SpentChallenges {
  constructor(private readonly redis: RedisClient, private readonly sql: SqlSpentChallenges) {}

  async spend(use: ChallengeUse, now: number): Promise<boolean> {
    const key = keys.spentChallenge(use.id);
    const ttlMs = Math.max(1, use.keepUntil - now);
    const previous = await this.redis.set(key, use.spentBy, 'PX', ttlMs, 'NX', 'GET');
    if (previous !== null && previous !== use.spentBy) return false;
    const spender = await this.sql.spender(use);
    if (spender === use.spentBy) return true;
    if (spender) await this.redis.set(key, spender, 'PX', ttlMs);
    return false;
  }
}
