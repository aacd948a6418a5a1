import type { MiddlewareHandler } from 'hono';
import { timingSafeEqual } from 'node:crypto';
import { errors } from '../../errors.ts';

/** X-Admin-Key: missing → 401, wrong → 403; with no key configured every call is refused. */
export function adminKey(opts: { key: string | undefined }): MiddlewareHandler {
  const expected = opts.key ? Buffer.from(opts.key) : null;
  return async function adminKeyMiddleware(c, next) {
    const given = c.req.header('X-Admin-Key');
    if (!given) throw errors.unauthenticated('X-Admin-Key is required');
    const g = Buffer.from(given);
    if (!expected || g.length !== expected.length || !timingSafeEqual(g, expected)) throw errors.forbidden('wrong admin key');
    await next();
  };
}
