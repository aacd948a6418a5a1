import { loadConfig, type Config } from '../../src/config.ts';
import { createContext, type AppContext, type ContextOptions } from '../../src/context.ts';
import { createApp } from '../../src/http/app.ts';
import { createRedis, type RedisClient } from '../../src/redis/connection.ts';
import { startRedis, type RedisProc } from '../../sentinel/topology.ts';
import { createTestDatabase, type SqlTarget, type TestDatabase } from './sql.ts';

export const ADMIN_KEY = 'test-admin-key';
export const JWT_SECRET = 'test-secret-that-is-at-least-32-bytes-long!!';

export interface TestService {
  ctx: AppContext;
  app: ReturnType<typeof createApp>;
  config: Config;
  redis: RedisClient;
  redisProc: RedisProc;
  database: TestDatabase;
  /** Another instance of the service on the same Redis and SQL. */
  spawnInstance(opts?: ContextOptions): { ctx: AppContext; app: ReturnType<typeof createApp>; close(): void };
  stop(): Promise<void>;
}

export interface TestServiceOptions extends ContextOptions {
  sql?: SqlTarget;
  env?: Record<string, string>;
  redisProc?: RedisProc;
  database?: TestDatabase;
}

/** A real service: its own redis-server on a free loopback port and its own database. */
export async function startService(opts: TestServiceOptions = {}): Promise<TestService> {
  const redisProc = opts.redisProc ?? (await startRedis());
  const database = opts.database ?? (await createTestDatabase(opts.sql ?? 'sqlite'));
  const config = loadConfig({
    // Tests drive many requests per token; the limiter has its own test.
    JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'error', RATE_LIMIT_PER_SECOND: '0', TOKEN_RATE_LIMIT_PER_MINUTE: '0',
    REDIS_URL: redisProc.url, DATABASE_URL: database.url,
    // TEST_JOIN_POW_BITS=n runs a suite with proof of work on joins (helpers' join() solves it).
    ...(process.env.TEST_JOIN_POW_BITS ? { JOIN_POW_BITS: process.env.TEST_JOIN_POW_BITS } : {}),
    ...opts.env,
  });
  const clients: RedisClient[] = [];
  const make = (o: ContextOptions) => {
    const redis = createRedis(config.redis, { timeoutMs: config.redisTimeoutMs });
    clients.push(redis);
    const ctx = createContext(config, { db: database.db, redis }, o);
    return { ctx, app: createApp(ctx), redis };
  };
  const main = make(opts);
  const contexts = [main.ctx];
  return {
    ...main,
    config, redisProc, database,
    spawnInstance(o = {}) {
      const inst = make({ ...opts, ...o });
      contexts.push(inst.ctx);
      return { ctx: inst.ctx, app: inst.app, close: () => { inst.ctx.stopJobs(); inst.redis.disconnect(); } };
    },
    async stop() {
      for (const c of contexts) c.stopJobs();
      for (const c of clients) c.disconnect();
      if (!opts.database) await database.drop();
      if (!opts.redisProc) await redisProc.stop();
    },
  };
}
