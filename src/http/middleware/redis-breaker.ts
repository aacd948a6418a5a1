import type { MiddlewareHandler } from 'hono';
import { BrokenCircuitError } from 'cockatiel';
import { errors } from '../../errors.ts';
import type { ModeCoordinator } from '../../resilience/coordinator.ts';
import { isRedisFailure } from '../../resilience/failures.ts';
import type { ModeController } from '../../resilience/mode.ts';

/**
 * In Redis mode every request runs through the Redis circuit breaker: a request that failed
 * on Redis counts as a failure, and while the breaker is open nothing is sent to Redis
 * (503 until the service has moved to SQL mode, which happens as the breaker opens).
 */
export function redisBreaker(opts: { mode: ModeController; coordinator: ModeCoordinator }): MiddlewareHandler {
  return async function redisBreakerMiddleware(c, next) {
    if (!opts.mode.useRedis()) return next();
    try {
      await opts.coordinator.breaker.execute(async () => {
        await next();
        if (c.error && isRedisFailure(c.error)) throw c.error;
      });
    } catch (err) {
      if (err instanceof BrokenCircuitError) throw errors.unavailable('switching to the fallback store; retry shortly', 1);
      // Otherwise the failure has already been answered (503) by the error handler.
    }
  };
}
