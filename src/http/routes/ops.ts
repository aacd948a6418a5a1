import { Hono } from 'hono';
import { sql } from 'kysely';
import type { AppContext } from '../../context.ts';
import type { AppEnv } from '../env.ts';

export function opsRouter(ctx: AppContext) {
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      let sqlOk = false;
      try {
        await sql`select 1`.execute(ctx.db);
        sqlOk = true;
      } catch { /* reported below */ }
      // Redis mode needs Redis; the SQL fallback modes need only SQL.
      const ready = sqlOk;
      return c.json({ status: ready ? 'ready' : 'unavailable', mode: ctx.mode.current, sql: sqlOk }, ready ? 200 : 503);
    })
    .get('/metrics', async (c) => {
      await ctx.admin.refreshGauges().catch(() => {});
      c.header('Content-Type', ctx.metrics.registry.contentType);
      return c.body(await ctx.metrics.registry.metrics());
    });
}
