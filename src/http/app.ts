import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { errors } from '../errors.ts';
import type { AppContext } from '../context.ts';
import type { AppEnv } from './env.ts';
import { errorBody, onError } from './errors.ts';
import { verifiedUserOf } from './middleware/auth.ts';
import { observe } from './middleware/observe.ts';
import { cors } from './middleware/cors.ts';
import { byAddress, byVerifiedUserElseAddress, rateLimit } from './middleware/rate-limit.ts';
import { redisBreaker } from './middleware/redis-breaker.ts';
import { requestId } from './middleware/request-id.ts';
import { adminRouter } from './routes/admin.ts';
import { catalogRouter } from './routes/catalog.ts';
import { challengeRouter } from './routes/challenge.ts';
import { opsRouter } from './routes/ops.ts';
import { balanceRouter, paymentsRouter } from './routes/payments.ts';
import { joinRouter, queueMeRouter } from './routes/queue.ts';
import { myReservationsRouter, reservationsRouter } from './routes/reservations.ts';
import { tokensRouter } from './routes/tokens.ts';
import { docsRouter } from '../pages/docs.ts';
import { pagesRouter } from '../pages/pages.ts';

const MAX_BODY_BYTES = 16 * 1024;

/** Builds the whole HTTP app from its dependencies; the server and the tests both use it. */
export function createApp(ctx: AppContext, opts: { logRequests?: boolean } = {}) {
  const app = new Hono<AppEnv>();
  app.use('*', requestId());
  app.use('*', observe({ metrics: ctx.metrics, log: ctx.log, logRequests: opts.logRequests ?? false }));
  if (ctx.config.corsOrigins.length > 0) app.use('/v1/*', cors({ origins: ctx.config.corsOrigins }));
  const { perSecond, burst, trustProxy } = ctx.config.rateLimit;
  app.use('/v1/*', rateLimit({
    perSecond, burst,
    clientOf: byVerifiedUserElseAddress({ trustProxy, userOf: verifiedUserOf(ctx.tokens, ctx.clock) }),
  }));
  // Minting a token costs a SQL write (and, in jwt mode, a signature check or a key fetch).
  app.use('/v1/tokens', rateLimit({
    perSecond: ctx.config.tokenRateLimit.perMinute / 60, burst: ctx.config.tokenRateLimit.burst, clientOf: byAddress({ trustProxy }),
  }));
  // Every JSON body this API takes is far smaller; chunked bodies are counted as they arrive.
  const limitBody = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => c.json(errorBody('PAYLOAD_TOO_LARGE', `request body is larger than ${MAX_BODY_BYTES / 1024} KiB`), 413),
  });
  // A GET or HEAD body is never read. Asking for one is not free on Node: @hono/node-server
  // then builds a full WHATWG Request for the call (a quarter of a poll's CPU there).
  app.use('*', (c, next) => (c.req.method === 'GET' || c.req.method === 'HEAD' ? next() : limitBody(c, next)));
  app.use('/v1/*', redisBreaker({ mode: ctx.mode, coordinator: ctx.coordinator }));
  app.onError(onError(ctx.log));
  app.notFound((c) => c.json(errorBody('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`), 404));

  const { tokens, clock, mode } = ctx;
  app.route('/', opsRouter({
    db: ctx.db, mode, coordinator: ctx.coordinator, drain: ctx.drain, admin: ctx.admin, metrics: ctx.metrics,
  }));
  app.route('/v1/tokens', tokensRouter({ tokens, identity: ctx.identity, clock }));
  app.route('/v1/challenge', challengeRouter({ joinProof: ctx.joinProof, clock }));
  app.route('/v1/concerts', joinRouter({ queue: ctx.queue, joinProof: ctx.joinProof, tokens, clock }));
  app.route('/v1/concerts', catalogRouter({ catalog: ctx.catalog, sale: ctx.sale, queue: ctx.queue, tokens, clock }));
  app.route('/v1/queue', queueMeRouter({ queue: ctx.queue, tokens, clock }));
  app.route('/v1/reservations', reservationsRouter({ reservations: ctx.reservations, tokens, clock }));
  app.route('/v1/me', balanceRouter({ balance: ctx.balance, tokens, clock }));
  app.route('/v1/me', myReservationsRouter({ reservations: ctx.reservations, tokens, clock }));
  app.route('/v1/payments', paymentsRouter({
    payments: ctx.payments, tokens, clock, maxHoldsPerUser: ctx.config.maxHoldsPerUser,
  }));
  // Admin endpoints never answer a browser on another origin: refuse its preflight.
  app.options('/admin/*', () => { throw errors.forbidden('admin endpoints do not answer cross-origin requests'); });
  // The console page at GET /admin is a public shell (its script asks for the key): it goes
  // before the admin router, whose key check covers /admin itself.
  app.route('/', pagesRouter());
  app.route('/admin', adminRouter({
    adminApiKey: ctx.config.adminApiKey, catalog: ctx.catalog, sale: ctx.sale, admin: ctx.admin, console: ctx.console, clock,
  }));
  app.route('/', docsRouter({ config: ctx.config }));
  return app;
}
