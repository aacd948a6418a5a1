import type { Context, MiddlewareHandler, Next } from 'hono';
import { errors } from '../../errors.ts';
import { runtime } from '../../runtime/index.ts';

export interface RateLimitOptions {
  /** Sustained requests a second per client; 0 turns limiting off. */
  perSecond: number;
  burst: number;
  /** Who the client is; null when there is nothing to key on (an in-process request). */
  clientOf: (c: Context) => string | null | Promise<string | null>;
}

interface Bucket { tokens: number; at: number }

/** The client's address: the socket's, or the first X-Forwarded-For hop behind a trusted proxy. */
export function clientAddress(c: Context, trustProxy: boolean): string | null {
  if (trustProxy) {
    const fwd = c.req.header('X-Forwarded-For')?.split(',')[0]?.trim();
    if (fwd) return fwd;
  }
  return runtime.remoteAddress(c);
}

/**
 * The user of a bearer token whose signature and expiry hold (no I/O), else the address. Only a
 * verified token gets a bucket of its own: keyed on the raw header, every made-up value would
 * be a fresh client with a full burst. `userOf` verifies the request's token (once per request:
 * see bearerPrincipal); null when there is none or it does not verify.
 */
export function byVerifiedUserElseAddress(opts: { trustProxy: boolean; userOf: (c: Context) => number | null | Promise<number | null> }) {
  const key = (c: Context, userId: number | null): string | null => {
    if (userId !== null) return `u:${userId}`;
    const addr = clientAddress(c, opts.trustProxy);
    return addr ? `a:${addr}` : null;
  };
  // No Promise when the user is known at once (a token in the verified-token cache).
  return (c: Context): string | null | Promise<string | null> => {
    const userId = opts.userOf(c);
    return userId instanceof Promise ? userId.then((u) => key(c, u)) : key(c, userId);
  };
}

export function byAddress(opts: { trustProxy: boolean }) {
  return (c: Context): string | null => {
    const addr = clientAddress(c, opts.trustProxy);
    return addr ? `a:${addr}` : null;
  };
}

/**
 * A token bucket per client, in process memory: no round trip on the hot path. With N instances
 * behind a load balancer the effective limit is up to N times higher; it exists to stop floods
 * from one client, not to meter fairly (the waiting room does that).
 */
export function rateLimit(opts: RateLimitOptions): MiddlewareHandler {
  const buckets = new Map<string, Bucket>();
  // A bucket idle this long is full again, so forgetting it changes nothing.
  const forgetAfterMs = Math.max(60_000, opts.perSecond > 0 ? (opts.burst / opts.perSecond) * 1000 : 0);
  let sweptAt = Date.now();
  const take = (client: string | null, next: Next) => {
    if (!client) return next();
    const now = Date.now();
    if (now - sweptAt > 60_000) {
      for (const [k, b] of buckets) if (now - b.at > forgetAfterMs) buckets.delete(k);
      sweptAt = now;
    }
    let b = buckets.get(client);
    if (b === undefined) {
      b = { tokens: opts.burst, at: now };
      buckets.set(client, b);
    }
    b.tokens = Math.min(opts.burst, b.tokens + ((now - b.at) / 1000) * opts.perSecond);
    b.at = now;
    if (b.tokens < 1) throw errors.rateLimited(Math.max(1, Math.ceil((1 - b.tokens) / opts.perSecond)));
    b.tokens -= 1;
    return next();
  };
  // Not async: a client known at once (a cached token, an address) goes straight on to next().
  return function rateLimitMiddleware(c, next) {
    if (opts.perSecond <= 0) return next();
    const client = opts.clientOf(c);
    return client instanceof Promise ? client.then((k) => take(k, next)) : take(client, next);
  };
}
