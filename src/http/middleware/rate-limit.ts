import type { MiddlewareHandler } from 'hono';
import { getConnInfo } from 'hono/bun';
import { errors } from '../../errors.ts';

export interface RateLimitOptions {
  /** Sustained requests a second per client; 0 turns limiting off. */
  perSecond: number;
  burst: number;
  /** Trust X-Forwarded-For (the service runs behind a load balancer). */
  trustProxy: boolean;
}

interface Bucket { tokens: number; at: number }

/**
 * A token bucket per client, in process memory: no round trip on the hot path. A client is
 * its bearer token when it sends one, otherwise its address. With N instances behind a load
 * balancer the effective limit is up to N times higher; it exists to stop floods from one
 * client, not to meter fairly (the waiting room does that).
 */
export function rateLimit(opts: RateLimitOptions): MiddlewareHandler {
  const buckets = new Map<string, Bucket>();
  let sweptAt = Date.now();
  const clientOf = (c: Parameters<MiddlewareHandler>[0]): string | null => {
    const auth = c.req.header('Authorization');
    if (auth) return `t:${auth.slice(-24)}`;
    if (opts.trustProxy) {
      const fwd = c.req.header('X-Forwarded-For')?.split(',')[0]?.trim();
      if (fwd) return `a:${fwd}`;
    }
    try {
      const addr = getConnInfo(c).remote.address;
      return addr ? `a:${addr}` : null;
    } catch {
      return null; // not served by Bun.serve (in-process requests): nothing to key on
    }
  };
  return async function rateLimitMiddleware(c, next) {
    if (opts.perSecond <= 0) return next();
    const client = clientOf(c);
    if (!client) return next();
    const now = Date.now();
    if (now - sweptAt > 60_000) {
      for (const [k, b] of buckets) if (now - b.at > 60_000) buckets.delete(k);
      sweptAt = now;
    }
    const b = buckets.get(client) ?? { tokens: opts.burst, at: now };
    b.tokens = Math.min(opts.burst, b.tokens + ((now - b.at) / 1000) * opts.perSecond);
    b.at = now;
    buckets.set(client, b);
    if (b.tokens < 1) throw errors.rateLimited(Math.max(1, Math.ceil((1 - b.tokens) / opts.perSecond)));
    b.tokens -= 1;
    await next();
  };
}
