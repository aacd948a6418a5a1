import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { RequestIdVariables } from './request-id.ts';

/** Request count and latency by route pattern (never by raw path), and one log line per request. */
export function observe(opts: { metrics: Metrics; log: Logger; logRequests: boolean }): MiddlewareHandler<{ Variables: RequestIdVariables }> {
  return async function observeMiddleware(c, next) {
    const start = performance.now();
    await next();
    const route = routePath(c, -1) || 'unmatched';
    const seconds = (performance.now() - start) / 1000;
    opts.metrics.requests.inc({ route, method: c.req.method, status: String(c.res.status) });
    opts.metrics.latency.observe({ route, method: c.req.method }, seconds);
    if (opts.logRequests) {
      opts.log.info('request', {
        requestId: c.get('requestId'), method: c.req.method, route, status: c.res.status, ms: Math.round(seconds * 1000),
      });
    }
  };
}
