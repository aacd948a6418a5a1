import type { MiddlewareHandler } from 'hono';
import { timingSafeEqual } from 'node:crypto';
import { errors } from '../../errors.ts';

/** The header that carries ADMIN_API_KEY (the OpenAPI document names it too). */
export const ADMIN_KEY_HEADER = 'X-Admin-Key';

/** X-Admin-Key: missing → 401, wrong → 403; with no key configured every call is refused. */
export function adminKey(opts: { key: string | undefined }): MiddlewareHandler {
  const expected = opts.key ? Buffer.from(opts.key) : null;
  return async function adminKeyMiddleware(c, next) {
    const given = c.req.header(ADMIN_KEY_HEADER);
    if (!given) throw errors.unauthenticated(`${ADMIN_KEY_HEADER} is required`);
    const g = Buffer.from(given);
    if (!expected || g.length !== expected.length || !timingSafeEqual(g, expected)) throw errors.forbidden('wrong admin key');
    await next();
  };
}
