import { Hono } from 'hono';
import { sql } from 'kysely';
import type { AppContext } from '../../context.ts';
import type { AppEnv } from '../env.ts';
import { sleep } from '../../runtime/index.ts';

/** What the router uses of the service. */
export type OpsRouterDeps = Pick<AppContext, 'admin' | 'coordinator' | 'db' | 'drain' | 'metrics' | 'mode'>;

export function opsRouter(ctx: OpsRouterDeps) {
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      // Shutting down: out of rotation at once, though every request is still served.
      if (ctx.drain.draining) {
        return c.json({ status: 'draining', mode: ctx.mode.current }, 503);
      }
      // Bounded: a load balancer must get an answer even from a hung database.
      const sqlOk = await Promise.race([
        sql`select 1`.execute(ctx.db).then(() => true, () => false),
        sleep(1000).then(() => false),
      ]);
      const redisOk = ctx.mode.useRedis() && ctx.coordinator.breakerState() !== 'open';
      // Ready when this instance serves the waiting room as well as any other could: in Redis
      // mode polls need only Redis (joins, holds and money answer 503 while SQL is away, and the
      // heartbeats must go on); in the SQL modes everything needs SQL.
      // An instance that started without Redis and has not reached it since, while the fleet
      // serves from Redis, serves nothing the others would agree with (see ModeCoordinator).
      const ready = (redisOk || sqlOk) && !ctx.coordinator.cutOff();
      return c.json({ status: ready ? 'ready' : 'unavailable', mode: ctx.mode.current, sql: sqlOk, redis: redisOk },
        ready ? 200 : 503);
    })
    .get('/metrics', async (c) => {
      await ctx.admin.refreshGauges().catch(() => {});
      c.header('Content-Type', ctx.metrics.registry.contentType);
      return c.body(await ctx.metrics.registry.metrics());
    });
}
