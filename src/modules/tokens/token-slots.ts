import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';

/**
 * Where a user token lives in Redis. The first two hex digits of its id name its hash tag
 * (`{tok:<hh>}`, keys.userToken), so user tokens spread over up to 256 Cluster slots instead of
 * one. Each tag counts its own live tokens (`{tok:<hh>}:live`) against its share of
 * TOKEN_REDIS_LIMIT, so issueToken still writes the token and its count in one slot.
 *
 * How many tags are in use follows from the limit: one per TOKEN_SHARE tokens, at most 256. A small
 * limit is one tag counted exactly; a large one is split in equal shares, and the first share to
 * fill sends new tokens to SQL a little before the sum reaches the limit (ids are random, so the
 * shares fill evenly: at the default 100,000 in 25 shares of 4,000, about 3 % early).
 *
 * The tag is read from the id, never from the configuration, so a token is found under the same key
 * by every instance, whatever limit each runs with.
 */
export const TOKEN_SHARE = 4096;
export const TOKEN_TAGS_MAX = 256;

/** The number of tags that new tokens are spread over for a given TOKEN_REDIS_LIMIT. */
export function tokenTags(limit: number): number {
  return Math.min(TOKEN_TAGS_MAX, Math.max(1, Math.ceil(limit / TOKEN_SHARE)));
}

/** Tag i's share of the limit (the remainder goes to the first tags, so the shares sum to the limit). */
export function tagLimit(limit: number, i: number): number {
  const n = tokenTags(limit);
  return Math.floor(limit / n) + (i < limit % n ? 1 : 0);
}

/** The tag (0–255) a token id belongs to. */
export function tagOf(jti: string): number {
  return Number.parseInt(jti.slice(0, 2), 16);
}

/** A new user token id: a random UUID whose first byte names one of the tags in use, chosen at random. */
export function newUserTokenId(limit: number): string {
  return randomInt(tokenTags(limit)).toString(16).padStart(2, '0') + randomUUID().slice(2);
}

/**
 * A new queue token id: 10 base64url characters, 60 random bits. A waiting fan's record in the
 * concert's queue token hash is this id and the entry number in 14 bytes (queueTokenRecord in
 * src/redis/codecs.ts), the most Redis keeps in its smallest hash entry. Two of ten million such
 * ids are the same with a chance of about 1 in 23,000; the tokens table's key then refuses the
 * second, whose join answers 503 and is made again under a new id.
 */
export function newQueueTokenId(): string {
  return randomBytes(8).toString('base64url').slice(0, 10);
}

/**
 * The value a user token's key holds once a join spent it, until SQL surely has its revocation
 * (written behind with the join's record): while it is there the token is refused without asking
 * SQL, whose row may still say live. A live token's key holds its user id (issueToken).
 */
export const SPENT_USER_TOKEN = '-';

/**
 * Marks a user token spent (SPENT_USER_TOKEN for `ttlMs`) and takes it out of its tag's live
 * count: one pipeline, one slot.
 */
export async function markUserTokenSpent(redis: RedisClient, jti: string, ttlMs: number): Promise<void> {
  const res = await redis.pipeline().set(keys.userToken(jti), SPENT_USER_TOKEN, 'PX', ttlMs).zrem(keys.liveUserTokens(jti), jti).exec();
  const failed = res?.find(([err]) => err);
  if (failed) throw failed[0];
}

/**
 * Drops user tokens' Redis records and their places in the live counts: one pipeline per tag
 * (on Cluster a pipeline must stay on one node, and tags spread over nodes).
 */
export async function forgetUserTokens(redis: RedisClient, jtis: string[]): Promise<void> {
  const byTag = new Map<string, string[]>();
  for (const j of jtis) byTag.set(j.slice(0, 2), [...(byTag.get(j.slice(0, 2)) ?? []), j]);
  await Promise.all([...byTag.values()].map(async (js) => {
    const res = await redis.pipeline().del(...js.map((j) => keys.userToken(j))).zrem(keys.liveUserTokens(js[0]!), ...js).exec();
    const failed = res?.find(([err]) => err);
    if (failed) throw failed[0];
  }));
}
