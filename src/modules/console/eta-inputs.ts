import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import type { Db } from '../../store/connect.ts';

/** The wait estimate's measured inputs (see eta.ts), as the admission tick last stored them. */
export interface EtaInputs { meanHoldSeconds: number | null; spread: number }

export async function etaInputsInSql(db: Db, concertId: number): Promise<EtaInputs> {
  const row = await db.selectFrom('queue_state').select(['eta_mean_hold', 'eta_spread'])
    .where('concert_id', '=', concertId).executeTakeFirst();
  return { meanHoldSeconds: row?.eta_mean_hold == null ? null : Number(row.eta_mean_hold), spread: Number(row?.eta_spread ?? 1) };
}

export async function etaInputsInRedis(redis: RedisClient, concertId: number): Promise<EtaInputs> {
  const [hold, spread] = await redis.hmget(keys.queueMeta(concertId), 'etaMeanHold', 'etaSpread');
  return { meanHoldSeconds: hold ? Number(hold) : null, spread: spread ? Number(spread) : 1 };
}
