import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { AppEnv } from './env.ts';

export function errorBody(code: string, message: string, details?: unknown) {
  return details === undefined ? { error: { code, message } } : { error: { code, message, details } };
}

/** Is this a Redis or SQL connection failure rather than a bug? */
export function isBackendUnavailable(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string };
  const msg = e?.message ?? '';
  return e?.name === 'BrokenCircuitError' || e?.name === 'TaskCancelledError' || e?.name === 'MaxRetriesPerRequestError' ||
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P03', '08006', '08001', 'SQLITE_BUSY'].includes(e?.code ?? '') ||
    /Connection is closed|Stream isn't writeable|connect ECONNREFUSED|Command timed out|Socket timeout|READONLY|NOREPLICAS|LOADING|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|database is locked|Connection terminated/i
      .test(msg);
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
