import { randomUUID } from 'node:crypto';
import type { RedisClient } from './connection.ts';

const RELEASE_OWN = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
const EXTEND_OWN = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";

/**
 * Runs `fn` holding a Redis lease (SET NX PX), renewed every third of its time while `fn`
 * runs, so that a long job keeps it and a holder that dies frees it within `ttlMs`. Returns
 * null without running `fn` when another holds it.
 */
export async function withLease<T>(redis: RedisClient, key: string, ttlMs: number, fn: () => Promise<T>): Promise<T | null> {
  const owner = randomUUID();
  if ((await redis.set(key, owner, 'PX', ttlMs, 'NX')) !== 'OK') return null;
  const renew = setInterval(() => { void redis.eval(EXTEND_OWN, 1, key, owner, ttlMs).catch(() => {}); }, Math.max(100, Math.floor(ttlMs / 3)));
  try {
    return await fn();
  } finally {
    clearInterval(renew);
    await redis.eval(RELEASE_OWN, 1, key, owner).catch(() => {});
  }
}
