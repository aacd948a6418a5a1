import { Hono } from 'hono';
import type { AppContext } from '../context.ts';
import type { AppEnv } from './env.ts';
import { errorBody, onError } from './errors.ts';
import { observe } from './middleware/observe.ts';
import { rateLimit } from './middleware/rate-limit.ts';
import { redisBreaker } from './middleware/redis-breaker.ts';
import { requestId } from './middleware/request-id.ts';
import { adminRouter } from './routes/admin.ts';
import { catalogRouter } from './routes/catalog.ts';
import { opsRouter } from './routes/ops.ts';
import { balanceRouter, paymentsRouter } from './routes/payments.ts';
import { joinRouter, queueMeRouter } from './routes/queue.ts';
import { myReservationsRouter, reservationsRouter } from './routes/reservations.ts';
import { tokensRouter } from './routes/tokens.ts';

/** Builds the whole HTTP app from its dependencies; the server and the tests both use it. */
export function createApp(ctx: AppContext, opts: { logRequests?: boolean } = {}) {
  const app = new Hono<AppEnv>();
  app.use('*', requestId());
  app.use('*', observe({ metrics: ctx.metrics, log: ctx.log, logRequests: opts.logRequests ?? false }));
  app.use('/v1/*', rateLimit(ctx.config.rateLimit));
  app.use('/v1/*', redisBreaker({ mode: ctx.mode, coordinator: ctx.coordinator }));
  app.onError(onError(ctx.log));
  app.notFound((c) => c.json(errorBody('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`), 404));

  app.route('/', opsRouter(ctx));
  app.route('/v1/tokens', tokensRouter(ctx));
  app.route('/v1/concerts', joinRouter(ctx));
  app.route('/v1/concerts', catalogRouter(ctx));
  app.route('/v1/queue', queueMeRouter(ctx));
  app.route('/v1/reservations', reservationsRouter(ctx));
  app.route('/v1/me', balanceRouter(ctx));
  app.route('/v1/me', myReservationsRouter(ctx));
  app.route('/v1/payments', paymentsRouter(ctx));
  app.route('/admin', adminRouter(ctx));
  return app;
}
