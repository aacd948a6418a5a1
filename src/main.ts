import { ConfigError, loadConfig } from './config.ts';
import { createContext } from './context.ts';
import { createApp } from './http/app.ts';
import { createLogger } from './logger.ts';
import { createRedis } from './redis/connection.ts';
import { runtime } from './runtime/index.ts';
import { gracefulShutdown } from './shutdown.ts';
import { openDatabase } from './store/connect.ts';
import { migrateToLatest } from './store/migrate.ts';

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const log = createLogger(config.logLevel);
  if (config.jwtSecretGenerated) {
    log.warn('JWT_SECRET is not set: a random secret was generated; tokens will not survive a restart or work across instances');
  }
  if (config.auth.mode === 'open') {
    log.warn('AUTH_MODE=open: anyone can act as any user by naming a userId; set AUTH_MODE=jwt with an identity provider for real sales');
  }
  if (!config.adminApiKey) log.warn('ADMIN_API_KEY is not set: admin endpoints refuse every call');

  const db = openDatabase(config.databaseUrl, { timeoutMs: config.sqlTimeoutMs });
  try {
    await migrateToLatest(db);
  } catch (err) {
    fail(`cannot prepare the database (DATABASE_URL): ${(err as Error).message}`);
  }

  const redis = createRedis(config.redis, { timeoutMs: config.redisTimeoutMs });
  try {
    await redis.ping();
  } catch (err) {
    fail(`cannot reach Redis (${config.redis.mode}): ${(err as Error).message}`);
  }

  const ctx = createContext(config, { db, redis }, { log });
  const app = createApp(ctx, { logRequests: config.logLevel === 'debug' });
  // Serve in the fleet's mode from the first request: an instance that starts while the others
  // serve from SQL or rebuild Redis must not answer from a Redis that is behind.
  try {
    await ctx.coordinator.sync();
  } catch (err) {
    fail(`cannot read the service mode from the database (DATABASE_URL): ${(err as Error).message}`);
  }
  ctx.startJobs();
  const server = await runtime.serve({ port: config.port, hostname: process.env.HOST || '0.0.0.0', fetch: ctx.drain.serve(app.fetch) });
  log.info('listening', { port: server.port, runtime: runtime.name, redis: config.redis.mode, database: config.databaseUrl.split(':')[0] });

  const shutdown = gracefulShutdown({
    drain: ctx.drain,
    drainSeconds: config.shutdownDrainSeconds,
    log,
    stopListening: () => server.stop(),
    stopJobs: () => ctx.stopJobs(),
    // In SQL mode the streams are not written, and the rebuild drains them before Redis returns.
    flush: async () => { if (ctx.mode.useRedis()) await ctx.writeBehind.drainOnce(Date.now()); },
    close: async () => {
      redis.disconnect();
      await db.destroy();
    },
  });
  const onSignal = (signal: string) => void shutdown(signal).then((code) => process.exit(code));
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
}

await main();
