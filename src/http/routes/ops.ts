import { Hono } from 'hono';
import { sql } from 'kysely';
import type { AdminService } from '../../modules/admin/admin.service.ts';
import type { Metrics } from '../../metrics.ts';
import type { ModeCoordinator } from '../../resilience/coordinator.ts';
import type { ModeController } from '../../resilience/mode.ts';
import type { Db } from '../../store/connect.ts';
import type { DrainState } from '../drain.ts';
import type { AppEnv } from '../env.ts';
import { sleep } from '../../runtime/index.ts';

export interface OpsRouterDeps {
  db: Db;
  mode: ModeController;
  coordinator: Pick<ModeCoordinator, 'breakerState' | 'cutOff'>;
  drain: DrainState;
  /** Refreshes the gauges before each scrape. */
  admin: AdminService;
  metrics: Metrics;
}

/** GET /healthz, /readyz and /metrics. */
export function opsRouter({ db, mode, coordinator, drain, admin, metrics }: OpsRouterDeps) {
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      // Shutting down: out of rotation at once, though every request is still served.
      if (drain.draining) {
        return c.json({ status: 'draining', mode: mode.current }, 503);
      }
      // Bounded: a load balancer must get an answer even from a hung database.
      const sqlOk = await Promise.race([
        sql`select 1`.execute(db).then(() => true, () => false),
        sleep(1000).then(() => false),
      ]);
      const redisOk = mode.useRedis() && coordinator.breakerState() !== 'open';
      // Ready when this instance serves the waiting room as well as any other could: in Redis
      // mode polls need only Redis (joins, holds and money answer 503 while SQL is away, and the
      // heartbeats must go on); in the SQL modes everything needs SQL.
      // An instance that started without Redis and has not reached it since, while the fleet
      // serves from Redis, serves nothing the others would agree with (see ModeCoordinator).
      const ready = (redisOk || sqlOk) && !coordinator.cutOff();
      return c.json({ status: ready ? 'ready' : 'unavailable', mode: mode.current, sql: sqlOk, redis: redisOk },
        ready ? 200 : 503);
    })
    .get('/metrics', async (c) => {
      await admin.refreshGauges().catch(() => {});
      c.header('Content-Type', metrics.registry.contentType);
      return c.body(await metrics.registry.metrics());
    });
}
