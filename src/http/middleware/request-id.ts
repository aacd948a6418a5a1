import type { MiddlewareHandler } from 'hono';
import { randomUUID } from 'node:crypto';

export type RequestIdVariables = { requestId: string };

const VALID = /^[\w.:-]{1,128}$/;

/** Echoes a sane client X-Request-Id, otherwise makes one. */
export function requestId(): MiddlewareHandler<{ Variables: RequestIdVariables }> {
  return async function requestIdMiddleware(c, next) {
    const given = c.req.header('X-Request-Id');
    const id = given && VALID.test(given) ? given : randomUUID();
    c.set('requestId', id);
    c.header('X-Request-Id', id);
    await next();
  };
}
