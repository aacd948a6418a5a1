import type { MiddlewareHandler } from 'hono';
import { errors } from '../../errors.ts';

const ALLOW_METHODS = 'GET, POST, DELETE';
const ALLOW_HEADERS = 'Authorization, Content-Type, Idempotency-Key, X-Request-Id';
const EXPOSE_HEADERS = 'X-Request-Id, Retry-After';

/**
 * CORS for the listed origins only (CORS_ORIGINS). Other origins get no CORS header at all, and
 * their preflight is refused. A preflight is answered here, before the rate limiter, the
 * Bearer check or the 404 of a route that has no OPTIONS; mount it in front of them.
 */
export function cors(opts: { origins: string[] }): MiddlewareHandler {
  const allowed = new Set(opts.origins);
  return async function corsMiddleware(c, next) {
    const origin = c.req.header('Origin');
    const listed = origin !== undefined && allowed.has(origin);
    if (c.req.method === 'OPTIONS' && c.req.header('Access-Control-Request-Method') !== undefined) {
      if (!listed) throw errors.forbidden(`origin ${origin ?? '(none)'} may not call this API from a browser (not in CORS_ORIGINS)`);
      return c.body(null, 204, {
        'Access-Control-Allow-Origin': origin,
        'Access-Control-Allow-Methods': ALLOW_METHODS,
        'Access-Control-Allow-Headers': ALLOW_HEADERS,
        'Access-Control-Max-Age': '600',
        Vary: 'Origin',
      });
    }
    await next();
    // The answer depends on Origin: caches must not hand one origin's answer to another.
    c.header('Vary', 'Origin', { append: true });
    if (listed) {
      c.header('Access-Control-Allow-Origin', origin);
      c.header('Access-Control-Expose-Headers', EXPOSE_HEADERS);
    }
  };
}
