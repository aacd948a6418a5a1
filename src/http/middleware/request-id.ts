import type { MiddlewareHandler } from 'hono';
import { randomUUID } from 'node:crypto';

export type RequestIdVariables = { requestId: string };

const VALID = /^[\w.:-]{1,128}$/;

/** Echoes a sane client X-Request-Id, otherwise makes one. */
export function requestId(): MiddlewareHandler<{ Variables: RequestIdVariables }> {
  // Not async: it hands back next()'s Promise instead of wrapping it in one more (every request runs this).
  return function requestIdMiddleware(c, next) {
    const given = c.req.header('X-Request-Id');
    const id = given && VALID.test(given) ? given : randomUUID();
    c.set('requestId', id);
    c.header('X-Request-Id', id);
    return next();
  };
}
