import { sql } from 'kysely';
import { ConfigError, loadConfig, maskPassword, type Config } from './config.ts';
import { createContext } from './context.ts';
import { createApp } from './http/app.ts';
import { createLogger } from './logger.ts';
import { createRedis } from './redis/connection.ts';
import { runtime, sleep } from './runtime/index.ts';
import { gracefulShutdown } from './shutdown.ts';
import { openDatabase, sqlKind, type Db } from './store/connect.ts';
import { migrateToLatest } from './store/migrate.ts';

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/** The variable an operator sets for this Redis, its value (password masked), and the addresses tried. */
function redisTarget(redis: Config['redis']): { variable: string; value: string; address: string } {
  if (redis.mode === 'standalone') {
    const u = new URL(redis.url);
    return { variable: 'REDIS_URL', value: maskPassword(redis.url), address: `${u.hostname}:${u.port || 6379}` };
  }
  const list = (redis.mode === 'sentinel' ? redis.sentinels : redis.nodes).map((n) => `${n.host}:${n.port}`).join(',');
  if (redis.mode === 'sentinel') return { variable: 'REDIS_SENTINELS', value: list, address: `sentinels ${list} (master ${redis.masterName})` };
  return { variable: 'REDIS_CLUSTER_NODES', value: list, address: `cluster nodes ${list}` };
}

/** Why a connection failed, in words: a socket error's code, else the first line of the message. */
function reasonOf(err: unknown): string {
  const e = err as { code?: string; message?: string; errors?: unknown[] };
  // Node's happy-eyeballs connect reports every address tried in an AggregateError with no message.
  if (!e?.message && e?.errors?.length) return reasonOf(e.errors[0]);
  const words: Record<string, string> = {
    ECONNREFUSED: 'connection refused (nothing listens there)', ENOTFOUND: 'host not found', EAI_AGAIN: 'host name lookup failed',
    ETIMEDOUT: 'connection timed out', EHOSTUNREACH: 'host unreachable', ENETUNREACH: 'network unreachable',
  };
  const line = (e?.message ?? String(err)).split('\n')[0]!;
  return e?.code && words[e.code] ? `${words[e.code]}, ${e.code}` : line;
}

/** PostgreSQL must answer before anything else runs; SQLite needs its directory. One line when not. */
async function openAndCheckDatabase(config: Config): Promise<Db> {
  const shown = `DATABASE_URL=${maskPassword(config.databaseUrl)}`;
  let db: Db;
  try {
    db = openDatabase(config.databaseUrl, { timeoutMs: config.sqlTimeoutMs });
  } catch (err) {
    // SQLite: its directory cannot be created (a file in the way, no permission).
    fail(`cannot open the database (${shown}): ${reasonOf(err)}`);
  }
  if (sqlKind(config.databaseUrl) === 'postgres') {
    try {
      await sql`select 1`.execute(db);
    } catch (err) {
      const u = new URL(config.databaseUrl);
      fail(`cannot connect to PostgreSQL at ${u.hostname || 'localhost'}:${u.port || 5432} (${shown}): ${reasonOf(err)}`);
    }
  }
  try {
    await migrateToLatest(db);
  } catch (err) {
    fail(`cannot prepare the database (${shown}): ${reasonOf(err)}`);
  }
  return db;
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

  const db = await openAndCheckDatabase(config);

  const redis = createRedis(config.redis, { timeoutMs: config.redisTimeoutMs });
  // The command fails with "max retries"; the connection's own error says why (refused, not found).
  let connectError: unknown = null;
  const noteError = (err: unknown) => { connectError ??= err; };
  redis.on('error', noteError);
  // Bounded: a Cluster or Sentinel client without a reachable node may wait longer than one command.
  const redisDown = await Promise.race([
    redis.ping().then(() => null, (err: unknown) => reasonOf(connectError ?? err)),
    sleep(Math.max(2 * config.redisTimeoutMs, 3000)).then(() => reasonOf(connectError ?? new Error('no answer in time'))),
  ]);
  redis.off('error', noteError);

  const ctx = createContext(config, { db, redis }, { log });
  const app = createApp(ctx, { logRequests: config.logLevel === 'debug' });
  // Serve in the fleet's mode from the first request: an instance that starts while the others
  // serve from SQL or rebuild Redis must not answer from a Redis that is behind.
  try {
    if (redisDown) {
      const t = redisTarget(config.redis);
      log.warn(`Redis is unreachable at ${t.address} (${t.variable}=${t.value}): serving from SQL (sql mode); moves to redis once it answers`,
        { reason: redisDown });
      await ctx.coordinator.startWithoutRedis(`redis unreachable at start: ${redisDown}`);
    } else {
      await ctx.coordinator.sync();
    }
  } catch (err) {
    fail(`cannot read the service mode from the database (DATABASE_URL=${maskPassword(config.databaseUrl)}): ${reasonOf(err)}`);
  }

  let server: Awaited<ReturnType<typeof runtime.serve>>;
  const hostname = process.env.HOST || '0.0.0.0';
  try {
    server = await runtime.serve({ port: config.port, hostname, fetch: ctx.drain.serve(app.fetch) });
  } catch (err) {
    const e = err as { code?: string };
    if (e?.code === 'EADDRINUSE') fail(`cannot listen on PORT=${config.port}: port ${config.port} is already in use on ${hostname}`);
    fail(`cannot listen on PORT=${config.port} (${hostname}): ${reasonOf(err)}`);
  }
  ctx.startJobs();
  log.info('listening', { port: server.port, runtime: runtime.name, mode: ctx.mode.current, redis: config.redis.mode, database: config.databaseUrl.split(':')[0] });

  const shutdown = gracefulShutdown({
    drain: ctx.drain,
    drainSeconds: config.shutdownDrainSeconds,
    log,
    stopListening: () => server.stop(),
    stopJobs: () => ctx.stopJobs(),
    flush: () => ctx.backends.current.writeBehind.flush(),
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
