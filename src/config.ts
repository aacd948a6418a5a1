import { createPublicKey, randomBytes, type webcrypto } from 'node:crypto';

type JsonWebKey = webcrypto.JsonWebKey;

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
  /** How long a join can be retried with the token it replaced (its answer was lost) and get the same answer. */
  joinReplaySeconds: number;
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
  /** After SIGTERM: how long the instance keeps serving (with /readyz failing) before it stops accepting. */
  shutdownDrainSeconds: number;
  /** POST /v1/tokens per client address: minting a token writes SQL (and, in jwt mode, verifies a signature). */
  tokenRateLimit: { perMinute: number; burst: number };
  auth: AuthConfig;
  /** Origins allowed to call /v1 from a browser (exact `scheme://host[:port]`); empty: no CORS. */
  corsOrigins: string[];
  /** How often one instance of the fleet records each live concert's queue for the operator console. */
  consoleSampleSeconds: number;
  /** Leading zero bits a join's proof of work must show (GET /v1/challenge); 0: joins need none. */
  joinPowBits: number;
}

/** Where identity tokens' keys come from in `jwt` mode; exactly one source. */
export type IdentityKeySource =
  | { kind: 'jwks'; url: string; timeoutMs: number }
  | { kind: 'publicKey'; jwk: JsonWebKey; alg: 'RS256' | 'ES256' }
  | { kind: 'sharedSecret'; secret: string };

export type AuthConfig =
  | { mode: 'open' }
  | { mode: 'jwt'; keys: IdentityKeySource; issuer: string | undefined; audience: string | undefined };

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

/** A URL's password replaced by `***`, for messages and logs. */
export function maskPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*:)[^@/?#]*@/i, '$1***@');
}

function databaseUrl(env: Env): string {
  const url = env.DATABASE_URL || 'sqlite:./data/ticketing.db';
  if (/^postgres(ql)?:\/\//.test(url)) {
    // pg would only fail at the first query, with "Invalid URL" and no hint of which variable.
    try {
      new URL(url);
    } catch {
      throw new ConfigError('DATABASE_URL', `is not a valid postgres:// URL (check the port and escape special characters in the password as %XX), got "${maskPassword(url)}"`);
    }
    return url;
  }
  if (/^sqlite:.+/.test(url)) return url;
  throw new ConfigError('DATABASE_URL', `must be sqlite:<path>, sqlite::memory: or postgres://..., got "${maskPassword(url)}"`);
}

function jwksUrl(env: Env): string {
  const raw = (env.AUTH_JWKS_URL ?? '').trim();
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError('AUTH_JWKS_URL', `must be an https:// URL, got "${raw}"`);
  }
  // Keys fetched over plain HTTP could be swapped on the way: allowed only on this machine.
  const local = ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && local)) {
    throw new ConfigError('AUTH_JWKS_URL', `must be an https:// URL (http:// only for localhost), got "${raw}"`);
  }
  return u.href;
}

function publicKey(env: Env): { jwk: JsonWebKey; alg: 'RS256' | 'ES256' } {
  // Environment files often carry a PEM on one line with literal \n.
  const pem = (env.AUTH_PUBLIC_KEY ?? '').replace(/\\n/g, '\n').trim();
  if (/PRIVATE KEY/.test(pem)) throw new ConfigError('AUTH_PUBLIC_KEY', 'is a private key; give the public key only');
  let key;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new ConfigError('AUTH_PUBLIC_KEY', 'must be a PEM public key (-----BEGIN PUBLIC KEY-----...)');
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= 2048) return { jwk: key.export({ format: 'jwk' }) as JsonWebKey, alg: 'RS256' };
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return { jwk: key.export({ format: 'jwk' }) as JsonWebKey, alg: 'ES256' };
  throw new ConfigError('AUTH_PUBLIC_KEY', 'must be an RSA key of at least 2048 bits (RS256) or a P-256 EC key (ES256)');
}

function auth(env: Env, jwtSecret: string): AuthConfig {
  const mode = (env.AUTH_MODE || 'open').trim();
  if (mode !== 'open' && mode !== 'jwt') throw new ConfigError('AUTH_MODE', `must be open or jwt, got "${env.AUTH_MODE}"`);
  const timeoutMs = int(env, 'AUTH_JWKS_TIMEOUT_MS', 3000, 100, 60_000);
  const sources: IdentityKeySource[] = [];
  if (env.AUTH_JWKS_URL) sources.push({ kind: 'jwks', url: jwksUrl(env), timeoutMs });
  if (env.AUTH_PUBLIC_KEY) sources.push({ kind: 'publicKey', ...publicKey(env) });
  if (env.AUTH_SHARED_SECRET) {
    const secret = env.AUTH_SHARED_SECRET;
    if (Buffer.byteLength(secret) < 32) throw new ConfigError('AUTH_SHARED_SECRET', 'must be at least 32 bytes');
    // With the service's own secret, the service's own tokens would pass as identity tokens.
    if (secret === jwtSecret) throw new ConfigError('AUTH_SHARED_SECRET', 'must differ from JWT_SECRET');
    sources.push({ kind: 'sharedSecret', secret });
  }
  const names = { jwks: 'AUTH_JWKS_URL', publicKey: 'AUTH_PUBLIC_KEY', sharedSecret: 'AUTH_SHARED_SECRET' };
  if (mode === 'open') {
    // A key source without jwt mode is a forgotten AUTH_MODE, and open mode lets anyone be anyone.
    if (sources.length > 0) {
      throw new ConfigError('AUTH_MODE', `is open (anyone can act as any user) but ${names[sources[0]!.kind]} is set; set AUTH_MODE=jwt or unset it`);
    }
    return { mode: 'open' };
  }
  if (sources.length === 0) throw new ConfigError('AUTH_MODE', 'jwt needs one of AUTH_JWKS_URL, AUTH_PUBLIC_KEY or AUTH_SHARED_SECRET');
  if (sources.length > 1) throw new ConfigError(names[sources[1]!.kind], `cannot be combined with ${names[sources[0]!.kind]}; set one key source`);
  return { mode: 'jwt', keys: sources[0]!, issuer: env.AUTH_ISSUER || undefined, audience: env.AUTH_AUDIENCE || undefined };
}

function corsOrigins(env: Env): string[] {
  const list = (env.CORS_ORIGINS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return list.map((item) => {
    let origin = '';
    try {
      const u = new URL(item);
      if ((u.protocol === 'http:' || u.protocol === 'https:') && u.pathname === '/' && !u.search && !u.hash && !u.username) origin = u.origin;
    } catch { /* refused below */ }
    // A browser sends the origin without a path or trailing slash; compare against that form.
    if (!origin || item.replace(/\/$/, '').toLowerCase() !== origin) {
      throw new ConfigError('CORS_ORIGINS', `has "${item}", expected origins like https://tickets.example.com (no path, no *)`);
    }
    return origin;
  });
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
    joinReplaySeconds: int(env, 'JOIN_REPLAY_SECONDS', 120, 0, day),
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
    shutdownDrainSeconds: int(env, 'SHUTDOWN_DRAIN_SECONDS', 5, 0, 3600),
    tokenRateLimit: {
      perMinute: int(env, 'TOKEN_RATE_LIMIT_PER_MINUTE', 60, 0, 1_000_000),
      burst: int(env, 'TOKEN_RATE_LIMIT_BURST', 20, 1, 1_000_000),
    },
    auth: auth(env, jwtSecret),
    corsOrigins: corsOrigins(env),
    consoleSampleSeconds: int(env, 'CONSOLE_SAMPLE_SECONDS', 5, 1, 60),
    joinPowBits: int(env, 'JOIN_POW_BITS', 0, 0, 32),
  };
}
