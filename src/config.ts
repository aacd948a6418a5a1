import { randomBytes } from 'node:crypto';

export interface HostPort { host: string; port: number }

export interface Config {
  port: number;
  redis:
    | { mode: 'standalone'; url: string }
    | { mode: 'sentinel'; sentinels: HostPort[]; masterName: string }
    | { mode: 'cluster'; nodes: HostPort[] };
  databaseUrl: string;
  jwtSecret: string;
  jwtSecretGenerated: boolean;
  adminApiKey: string | undefined;
  userTokenTtlSeconds: number;
  queueTokenTtlSeconds: number;
  holdTtlSeconds: number;
  queueGraceSeconds: number;
  defaultMaxActive: number;
  defaultAdmitPerSecond: number;
  defaultActiveTtlSeconds: number;
  tokenRedisLimit: number;
  maxHoldsPerUser: number;
  /** Held + paid seats of one concert per user. */
  maxTicketsPerUser: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Admission ticker period; one tick admits up to admitPerSecond × period. */
  admissionTickMs: number;
  /** How long a Redis call may take before it counts as a failure. */
  redisTimeoutMs: number;
  /**
   * Replicas that must have a place, an admission or a sale's mirror before it is acknowledged
   * (`WAIT`), so that a failover does not take it back. 0 turns it off.
   */
  redisWaitReplicas: number;
  redisWaitTimeoutMs: number;
  /** Longest a SQL statement (lock waits included) or a wait for a pooled connection may take (PostgreSQL). */
  sqlTimeoutMs: number;
  /** Most write-behind entries a concert may have waiting for SQL; past it, joins and holds answer 503. */
  writeBehindMaxBacklog: number;
  rateLimit: { perSecond: number; burst: number; trustProxy: boolean };
}

export class ConfigError extends Error {
  constructor(readonly variable: string, reason: string) {
    super(`invalid configuration: ${variable} ${reason}`);
  }
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '') return fallback;
  if (raw === '1' || raw === 'true') return true;
  if (raw === '0' || raw === 'false') return false;
  throw new ConfigError(name, `must be true, false, 1 or 0, got "${env[name]}"`);
}

function hostPorts(env: Env, name: string): HostPort[] {
  const list = (env[name] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new ConfigError(name, 'must list at least one host:port');
  return list.map((item) => {
    const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(item);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) throw new ConfigError(name, `has "${item}", expected host:port`);
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
  });
}

function redisUrl(env: Env): string {
  const url = env.REDIS_URL || 'redis://127.0.0.1:6379';
  try {
    const u = new URL(url);
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error();
  } catch {
    throw new ConfigError('REDIS_URL', `must be a redis:// or rediss:// URL, got "${url}"`);
  }
  return url;
}

function databaseUrl(env: Env): string {
  const url = env.DATABASE_URL || 'sqlite:./data/ticketing.db';
  if (/^postgres(ql)?:\/\//.test(url)) return url;
  if (/^sqlite:.+/.test(url)) return url;
  throw new ConfigError('DATABASE_URL', `must be sqlite:<path>, sqlite::memory: or postgres://..., got "${url}"`);
}

export function loadConfig(env: Env = process.env): Config {
  let jwtSecret = env.JWT_SECRET ?? '';
  const jwtSecretGenerated = jwtSecret === '';
  if (jwtSecretGenerated) jwtSecret = randomBytes(32).toString('base64url');
  else if (Buffer.byteLength(jwtSecret) < 32) throw new ConfigError('JWT_SECRET', 'must be at least 32 bytes');

  const logLevel = (env.LOG_LEVEL || 'info') as Config['logLevel'];
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', 'must be one of debug, info, warn, error, silent');
  }

  let redis: Config['redis'];
  if (env.REDIS_CLUSTER_NODES) redis = { mode: 'cluster', nodes: hostPorts(env, 'REDIS_CLUSTER_NODES') };
  else if (env.REDIS_SENTINELS) {
    redis = { mode: 'sentinel', sentinels: hostPorts(env, 'REDIS_SENTINELS'), masterName: env.REDIS_MASTER_NAME || 'mymaster' };
  } else redis = { mode: 'standalone', url: redisUrl(env) };

  const day = 86_400;
  return {
    port: int(env, 'PORT', 3000, 0, 65535),
    redis,
    databaseUrl: databaseUrl(env),
    jwtSecret,
    jwtSecretGenerated,
    adminApiKey: env.ADMIN_API_KEY || undefined,
    userTokenTtlSeconds: int(env, 'USER_TOKEN_TTL_SECONDS', 1800, 1, 30 * day),
    queueTokenTtlSeconds: int(env, 'QUEUE_TOKEN_TTL_SECONDS', 3600, 1, 30 * day),
    holdTtlSeconds: int(env, 'HOLD_TTL_SECONDS', 300, 1, day),
    queueGraceSeconds: int(env, 'QUEUE_GRACE_SECONDS', 300, 1, day),
    defaultMaxActive: int(env, 'DEFAULT_MAX_ACTIVE', 1000, 1, 10_000_000),
    defaultAdmitPerSecond: int(env, 'DEFAULT_ADMIT_PER_SECOND', 100, 1, 1_000_000),
    defaultActiveTtlSeconds: int(env, 'DEFAULT_ACTIVE_TTL_SECONDS', 600, 1, day),
    tokenRedisLimit: int(env, 'TOKEN_REDIS_LIMIT', 100_000, 0, 1_000_000_000),
    maxHoldsPerUser: int(env, 'MAX_HOLDS_PER_USER', 4, 1, 1000),
    maxTicketsPerUser: int(env, 'MAX_TICKETS_PER_USER', 4, 1, 1000),
    logLevel,
    admissionTickMs: int(env, 'ADMISSION_TICK_MS', 1000, 50, 60_000),
    redisTimeoutMs: int(env, 'REDIS_TIMEOUT_MS', 1500, 50, 60_000),
    // Sentinel deployments have replicas to wait for; a standalone or cluster Redis has none by default.
    redisWaitReplicas: int(env, 'REDIS_WAIT_REPLICAS', redis.mode === 'sentinel' ? 1 : 0, 0, 100),
    redisWaitTimeoutMs: int(env, 'REDIS_WAIT_TIMEOUT_MS', 250, 1, 60_000),
    sqlTimeoutMs: int(env, 'SQL_TIMEOUT_MS', 5000, 100, 600_000),
    writeBehindMaxBacklog: int(env, 'WRITE_BEHIND_MAX_BACKLOG', 200_000, 1, 100_000_000),
    rateLimit: {
      perSecond: int(env, 'RATE_LIMIT_PER_SECOND', 20, 0, 1_000_000),
      burst: int(env, 'RATE_LIMIT_BURST', 40, 1, 1_000_000),
      trustProxy: bool(env, 'TRUST_PROXY', false),
    },
  };
}
