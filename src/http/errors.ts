import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { isRedisFailure, isSqlFailure } from '../resilience/failures.ts';
import type { AppEnv } from './env.ts';

export function errorBody(code: string, message: string, details?: unknown) {
  return details === undefined ? { error: { code, message } } : { error: { code, message, details } };
}

/** Is this a Redis or SQL outage rather than a bug? */
export function isBackendUnavailable(err: unknown): boolean {
  return isRedisFailure(err) || isSqlFailure(err);
}

/** The one place where errors become HTTP answers. Unknown errors leak nothing. */
export function onError(log: Logger) {
  return (err: Error, c: Context<AppEnv>) => {
    if (err instanceof AppError) {
      if (err.retryAfterSeconds !== undefined) c.header('Retry-After', String(err.retryAfterSeconds));
      return c.json(errorBody(err.code, err.message, err.details), err.status);
    }
    if (err instanceof HTTPException && err.status < 500) {
      // Hono's own parsing failures: malformed JSON, wrong content type.
      return c.json(errorBody('VALIDATION_FAILED', err.message || 'invalid request', [{ field: 'body', problem: err.message }]), 400);
    }
    if (isBackendUnavailable(err)) {
      log.warn('backend unavailable', { requestId: c.get('requestId'), err: String(err.message) });
      c.header('Retry-After', '2');
      return c.json(errorBody('UNAVAILABLE', 'the service cannot serve this request right now'), 503);
    }
    log.error('unhandled error', { requestId: c.get('requestId'), err });
    return c.json(errorBody('INTERNAL', 'internal error'), 500);
  };
}
