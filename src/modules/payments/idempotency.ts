import { createHash } from 'node:crypto';
import type { Transaction } from 'kysely';
import { errors } from '../../errors.ts';
import type { Db } from '../../store/connect.ts';
import type { Database } from '../../store/schema.ts';
import { claimKey, completeKey, findKey, type KeyRef, type StoredKey } from './idempotency.repo.ts';

/** Keys are kept, and honoured, for a day. */
export const IDEMPOTENCY_TTL_MS = 86_400_000;

/** 1 to 200 printable ASCII characters. */
export const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,200}$/;

export interface Answer<T> { status: 200 | 201; body: T }

/** A money request that carries an Idempotency-Key: who, which endpoint, which key, which body. */
export interface IdempotentRequest extends KeyRef { requestHash: string }

export function idempotentRequest(userId: number, scope: string, key: string, body: unknown): IdempotentRequest {
  const requestHash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
  return { userId, scope, key, requestHash };
}

function answerOf<T>(req: IdempotentRequest, stored: StoredKey): Answer<T> {
  if (stored.requestHash !== req.requestHash) throw errors.idempotencyKeyReused();
  return { status: stored.statusCode as 200 | 201, body: JSON.parse(stored.responseBody) as T };
}

/** The first answer to this key, if there was one (422 when the key came with another body). */
export async function priorAnswer<T>(db: Db, req: IdempotentRequest | null, now: number): Promise<Answer<T> | null> {
  if (!req) return null;
  const stored = await findKey(db, req, now - IDEMPOTENCY_TTL_MS);
  return stored ? answerOf<T>(req, stored) : null;
}

/** PostgreSQL deadlock or serialisation failure, SQLite busy: the whole transaction may run again. */
function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === '40P01' || code === '40001' || code === 'SQLITE_BUSY';
}

/**
 * Runs a money change in one transaction, with the key row taken first inside it, so the key
 * and the money commit together or not at all. Only successful answers are stored: a refused
 * request changed nothing, and its retry is judged afresh.
 */
export async function runIdempotent<T>(db: Db, req: IdempotentRequest | null, now: number,
  work: (trx: Transaction<Database>) => Promise<Answer<T>>): Promise<{ answer: Answer<T>; replayed: boolean }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(async (trx) => {
        if (req && !(await claimKey(trx, req, req.requestHash, now, now - IDEMPOTENCY_TTL_MS))) {
          const stored = await findKey(trx, req, now - IDEMPOTENCY_TTL_MS);
          if (!stored) throw errors.unavailable('this Idempotency-Key is in use by another request', 1);
          return { answer: answerOf<T>(req, stored), replayed: true };
        }
        const answer = await work(trx);
        if (req) await completeKey(trx, req, answer.status, JSON.stringify(answer.body));
        return { answer, replayed: false };
      });
    } catch (err) {
      if (attempt >= 3 || !isRetryable(err)) throw err;
    }
  }
}
