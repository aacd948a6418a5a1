/**
 * Configuration: the defaults operators rely on, one ConfigError naming the variable for
 * every bad value, and the process itself refusing to start with one clear line for a bad
 * value (an unreachable Redis no longer stops the start: see startup-anywhere.test.ts; an
 * unreachable database or a busy port: startup-errors.test.ts).
 */
import { describe, expect, test } from 'bun:test';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ConfigError, loadConfig } from '../src/config.ts';
import { freePort, startRedis } from '../sentinel/topology.ts';

const SECRET = 'x'.repeat(32);
const RSA_KEYS = generateKeyPairSync('rsa', { modulusLength: 2048 });
const RSA_PEM = RSA_KEYS.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const EC_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const SMALL_RSA_PEM = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const PRIVATE_PEM = RSA_KEYS.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

/** Bad values per variable; each must stop the start with an error naming the variable. */
const BAD: Record<string, string[]> = {
  PORT: ['abc', '-1', '65536', '1.5', '3000x', '0x10'],
  REDIS_URL: ['http://127.0.0.1:6379', 'not a url', 'redis://127.0.0.1:99999'],
  REDIS_SENTINELS: ['127.0.0.1', '127.0.0.1:0', 'host:abc', ',', 'a:1,b'],
  REDIS_CLUSTER_NODES: ['127.0.0.1', 'h:70000', ' , '],
  DATABASE_URL: ['mysql://x/y', 'sqlite:', 'postgres:/x', 'ticketing.db', 'postgres://u:secret@h:abc/db', 'postgres://u:secret@h:99999/db'],
  JWT_SECRET: ['short', 'x'.repeat(31)],
  LOG_LEVEL: ['verbose', 'INFO'],
  USER_TOKEN_TTL_SECONDS: ['0', 'abc', '2592001', '-5'],
  QUEUE_TOKEN_TTL_SECONDS: ['0', '1h'],
  JOIN_REPLAY_SECONDS: ['-1', '86401', '2m', '1.5'],
  HOLD_TTL_SECONDS: ['0', '86401', '5m'],
  QUEUE_GRACE_SECONDS: ['0', '86401'],
  DEFAULT_MAX_ACTIVE: ['0', '10000001', 'many'],
  DEFAULT_ADMIT_PER_SECOND: ['0', '1000001', '0.5'],
  DEFAULT_ACTIVE_TTL_SECONDS: ['0', '86401'],
  TOKEN_REDIS_LIMIT: ['-1', '1000000001', 'lots'],
  MAX_HOLDS_PER_USER: ['0', '1001'],
  MAX_TICKETS_PER_USER: ['0', '1001', 'four', '2.5'],
  ADMISSION_TICK_MS: ['49', '60001', 'fast'],
  CONSOLE_SAMPLE_SECONDS: ['0', '61', '2.5', 'often'],
  REDIS_TIMEOUT_MS: ['49', '60001'],
  REDIS_WAIT_REPLICAS: ['-1', '101', 'one'],
  REDIS_WAIT_TIMEOUT_MS: ['0', '60001'],
  WRITE_BEHIND_MAX_BACKLOG: ['0', '1.5'],
  SQL_TIMEOUT_MS: ['99', 'soon'],
  RATE_LIMIT_PER_SECOND: ['-1', 'x'],
  RATE_LIMIT_BURST: ['0', 'x'],
  TRUST_PROXY: ['yes', 'maybe', '2'],
  SHUTDOWN_DRAIN_SECONDS: ['-1', '2.5', 'soon', '3601'],
  TOKEN_RATE_LIMIT_PER_MINUTE: ['-1', 'x', '1000001'],
  TOKEN_RATE_LIMIT_BURST: ['0', 'x'],
  // jwt mode without a key source; open mode with one is refused too (see below).
  AUTH_MODE: ['oauth', 'JWT', 'jwt'],
  AUTH_JWKS_URL: ['not a url', 'ftp://idp.example/jwks', 'http://idp.example/jwks.json'],
  AUTH_JWKS_TIMEOUT_MS: ['0', '99', '60001', 'soon'],
  AUTH_PUBLIC_KEY: ['not a pem', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----', SMALL_RSA_PEM, PRIVATE_PEM],
  AUTH_SHARED_SECRET: ['short', 'x'.repeat(31)],
  CORS_ORIGINS: ['*', 'tickets.example.com', 'https://tickets.example.com/app', 'ftp://x.example', 'https://a.example,https://b.example/x',
    'https://user@a.example', 'https://a.example?x=1'],
  JOIN_POW_BITS: ['-1', '33', '1.5', 'hard'],
};
/** Variables whose every value is acceptable. */
const FREE_FORM = ['ADMIN_API_KEY', 'REDIS_MASTER_NAME', 'AUTH_ISSUER', 'AUTH_AUDIENCE'];

describe('loadConfig', () => {
  test('the defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      redis: { mode: 'standalone', url: 'redis://127.0.0.1:6379' },
      databaseUrl: 'sqlite:./data/ticketing.db',
      jwtSecretGenerated: true,
      adminApiKey: undefined,
      userTokenTtlSeconds: 1800,
      queueTokenTtlSeconds: 3600, joinReplaySeconds: 120,
      holdTtlSeconds: 300,
      queueGraceSeconds: 300,
      defaultMaxActive: 1000,
      defaultAdmitPerSecond: 100,
      defaultActiveTtlSeconds: 600,
      tokenRedisLimit: 100_000,
      maxHoldsPerUser: 4,
      logLevel: 'info',
      admissionTickMs: 1000,
      redisTimeoutMs: 1500,
    });
    // A generated secret is strong, and different on every start.
    expect(Buffer.byteLength(c.jwtSecret)).toBeGreaterThanOrEqual(32);
    expect(loadConfig({}).jwtSecret).not.toBe(c.jwtSecret);
    // Empty means unset.
    expect(loadConfig({ PORT: '', JWT_SECRET: '', LOG_LEVEL: '', ADMIN_API_KEY: '' })).toMatchObject({ port: 3000, jwtSecretGenerated: true, logLevel: 'info', adminApiKey: undefined });
  });

  test('good values are read', () => {
    const c = loadConfig({
      PORT: ' 8080 ', JWT_SECRET: SECRET, ADMIN_API_KEY: 'k', DATABASE_URL: 'postgres://u@h:5432/db', LOG_LEVEL: 'warn',
      USER_TOKEN_TTL_SECONDS: '60', QUEUE_TOKEN_TTL_SECONDS: '120', JOIN_REPLAY_SECONDS: '0', HOLD_TTL_SECONDS: '30', QUEUE_GRACE_SECONDS: '10',
      DEFAULT_MAX_ACTIVE: '5', DEFAULT_ADMIT_PER_SECOND: '2', DEFAULT_ACTIVE_TTL_SECONDS: '90', TOKEN_REDIS_LIMIT: '0',
      MAX_HOLDS_PER_USER: '2', ADMISSION_TICK_MS: '50', REDIS_TIMEOUT_MS: '200', TRUST_PROXY: 'true',
    });
    expect(c).toMatchObject({
      port: 8080, jwtSecret: SECRET, jwtSecretGenerated: false, adminApiKey: 'k', databaseUrl: 'postgres://u@h:5432/db',
      logLevel: 'warn', userTokenTtlSeconds: 60, queueTokenTtlSeconds: 120, joinReplaySeconds: 0, holdTtlSeconds: 30, queueGraceSeconds: 10,
      defaultMaxActive: 5, defaultAdmitPerSecond: 2, defaultActiveTtlSeconds: 90, tokenRedisLimit: 0, maxHoldsPerUser: 2,
      admissionTickMs: 50, redisTimeoutMs: 200, rateLimit: { trustProxy: true },
    });
    expect(loadConfig({ DATABASE_URL: 'sqlite::memory:' }).databaseUrl).toBe('sqlite::memory:');
    expect(loadConfig({ TRUST_PROXY: '0' }).rateLimit.trustProxy).toBe(false);
    expect(loadConfig({}).shutdownDrainSeconds).toBe(5);
    expect(loadConfig({ SHUTDOWN_DRAIN_SECONDS: '0' }).shutdownDrainSeconds).toBe(0);
    expect(loadConfig({}).consoleSampleSeconds).toBe(5);
    expect(loadConfig({ CONSOLE_SAMPLE_SECONDS: '60' }).consoleSampleSeconds).toBe(60);
    expect(loadConfig({}).joinPowBits).toBe(0);
    expect(loadConfig({ JOIN_POW_BITS: '32' }).joinPowBits).toBe(32);
    expect(loadConfig({ JOIN_POW_BITS: ' 18 ' }).joinPowBits).toBe(18);
  });

  test('auth: open by default; jwt with one key source, issuer and audience', () => {
    const c = loadConfig({});
    expect(c.auth).toEqual({ mode: 'open' });
    expect(c.corsOrigins).toEqual([]);
    expect(c.tokenRateLimit).toEqual({ perMinute: 60, burst: 20 });
    expect(loadConfig({ AUTH_MODE: 'jwt', AUTH_JWKS_URL: 'https://idp.example/.well-known/jwks.json', AUTH_ISSUER: 'https://idp.example', AUTH_AUDIENCE: 'web' }).auth)
      .toEqual({ mode: 'jwt', keys: { kind: 'jwks', url: 'https://idp.example/.well-known/jwks.json', timeoutMs: 3000 }, issuer: 'https://idp.example', audience: 'web' });
    // Plain HTTP only on this machine.
    expect(loadConfig({ AUTH_MODE: 'jwt', AUTH_JWKS_URL: 'http://127.0.0.1:8080/jwks', AUTH_JWKS_TIMEOUT_MS: '500' }).auth)
      .toMatchObject({ keys: { kind: 'jwks', url: 'http://127.0.0.1:8080/jwks', timeoutMs: 500 } });
    expect(loadConfig({ AUTH_MODE: 'jwt', AUTH_PUBLIC_KEY: RSA_PEM }).auth).toMatchObject({ keys: { kind: 'publicKey', alg: 'RS256', jwk: { kty: 'RSA' } } });
    // A PEM on one line with literal \n, as environment files carry it.
    expect(loadConfig({ AUTH_MODE: 'jwt', AUTH_PUBLIC_KEY: EC_PEM.replace(/\n/g, '\\n') }).auth)
      .toMatchObject({ keys: { kind: 'publicKey', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256' } } });
    expect(loadConfig({ AUTH_MODE: 'jwt', AUTH_SHARED_SECRET: 'y'.repeat(32) }).auth)
      .toEqual({ mode: 'jwt', keys: { kind: 'sharedSecret', secret: 'y'.repeat(32) }, issuer: undefined, audience: undefined });
    expect(loadConfig({ CORS_ORIGINS: ' https://Tickets.example.com , http://localhost:5173/ ' }).corsOrigins)
      .toEqual(['https://tickets.example.com', 'http://localhost:5173']);
    expect(loadConfig({ TOKEN_RATE_LIMIT_PER_MINUTE: '0', TOKEN_RATE_LIMIT_BURST: '5' }).tokenRateLimit).toEqual({ perMinute: 0, burst: 5 });
  });

  test.each([
    ['jwt without a key source', { AUTH_MODE: 'jwt' }, 'AUTH_MODE'],
    ['open mode with a key source (a forgotten AUTH_MODE=jwt)', { AUTH_JWKS_URL: 'https://idp.example/jwks' }, 'AUTH_MODE'],
    ['open mode with a shared secret', { AUTH_SHARED_SECRET: 'y'.repeat(32) }, 'AUTH_MODE'],
    ['two key sources', { AUTH_MODE: 'jwt', AUTH_JWKS_URL: 'https://idp.example/jwks', AUTH_SHARED_SECRET: 'y'.repeat(32) }, 'AUTH_SHARED_SECRET'],
    ['a shared secret equal to JWT_SECRET', { AUTH_MODE: 'jwt', JWT_SECRET: SECRET, AUTH_SHARED_SECRET: SECRET }, 'AUTH_SHARED_SECRET'],
    ['a short shared secret in jwt mode', { AUTH_MODE: 'jwt', AUTH_SHARED_SECRET: 'short' }, 'AUTH_SHARED_SECRET'],
    ['a JWKS URL that is not a URL in jwt mode', { AUTH_MODE: 'jwt', AUTH_JWKS_URL: '::' }, 'AUTH_JWKS_URL'],
  ])('auth: %s is refused naming the variable', (_what, env, variable) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as ConfigError).message).not.toContain('\n');
  });

  test('Sentinel and Cluster addresses, Cluster first when both are given', () => {
    expect(loadConfig({ REDIS_SENTINELS: 'a:26379, [::1]:26380', REDIS_MASTER_NAME: 'm' }).redis).toEqual({
      mode: 'sentinel', masterName: 'm', sentinels: [{ host: 'a', port: 26379 }, { host: '::1', port: 26380 }],
    });
    expect(loadConfig({ REDIS_SENTINELS: 'a:1' }).redis).toMatchObject({ masterName: 'mymaster' });
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'c:7000,c:7001', REDIS_SENTINELS: 'a:1' }).redis).toEqual({
      mode: 'cluster', nodes: [{ host: 'c', port: 7000 }, { host: 'c', port: 7001 }],
    });
  });

  for (const [name, values] of Object.entries(BAD)) {
    test(`a bad ${name} is refused with an error naming it`, () => {
      for (const value of values) {
        let err: unknown;
        try {
          loadConfig({ [name]: value });
        } catch (e) {
          err = e;
        }
        expect(err, `${name}=${JSON.stringify(value)} was accepted`).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).variable).toBe(name);
        expect((err as ConfigError).message).toContain(name);
        expect((err as ConfigError).message).not.toContain('\n');
      }
    });
  }

  test('every variable config.ts reads is covered above', () => {
    const source = readFileSync(join(import.meta.dir, '../src/config.ts'), 'utf8');
    const read = new Set([...source.matchAll(/env(?:\.|, ')([A-Z][A-Z0-9_]+)/g)].map((m) => m[1]!));
    expect([...read].sort()).toEqual([...Object.keys(BAD), ...FREE_FORM].sort());
  });
});

describe('bun src/main.ts', () => {
  const root = join(import.meta.dir, '..');
  async function start(env: Record<string, string>) {
    const started = Date.now();
    const proc = Bun.spawn([process.execPath, 'src/main.ts'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', JWT_SECRET: SECRET, LOG_LEVEL: 'error', ...env },
      stdout: 'pipe', stderr: 'pipe',
    });
    const killer = setTimeout(() => proc.kill(), 15_000);
    const code = await proc.exited;
    clearTimeout(killer);
    const stderr = await new Response(proc.stderr).text();
    return { code, stderr, ms: Date.now() - started };
  }

  test('a bad variable stops the start with one line naming it', async () => {
    const r = await start({ PORT: 'abc', DATABASE_URL: `sqlite:${join(tmpdir(), `cfg-${process.pid}-a.db`)}` });
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('PORT');
    expect(lines[0]).toContain('abc');
  }, 20_000);

  test('AUTH_MODE=jwt without a key source stops the start with one line naming AUTH_MODE', async () => {
    const r = await start({ AUTH_MODE: 'jwt', DATABASE_URL: `sqlite:${join(tmpdir(), `cfg-${process.pid}-c.db`)}` });
    expect(r.code).not.toBe(0);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('AUTH_MODE');
    expect(lines[0]).toContain('AUTH_JWKS_URL');
  }, 20_000);

  test('open auth and a missing ADMIN_API_KEY are warned about at start', async () => {
    const redis = await startRedis();
    const dbFile = join(tmpdir(), `cfg-${process.pid}-d.db`);
    const proc = Bun.spawn([process.execPath, 'src/main.ts'], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', JWT_SECRET: SECRET, LOG_LEVEL: 'warn',
        PORT: String(await freePort()), HOST: '127.0.0.1', REDIS_URL: redis.url, DATABASE_URL: `sqlite:${dbFile}`,
      },
      stdout: 'pipe', stderr: 'pipe',
    });
    let out = '';
    try {
      const reader = proc.stdout.getReader();
      const deadline = Date.now() + 15_000;
      while (!(out.includes('AUTH_MODE=open') && out.includes('ADMIN_API_KEY') && out.endsWith('\n')) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        out += new TextDecoder().decode(value);
      }
    } finally {
      proc.kill();
      await proc.exited;
      await redis.stop();
      for (const suffix of ['', '-wal', '-shm']) await Bun.file(dbFile + suffix).delete().catch(() => {});
    }
    const warnings = out.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.level === 'warn').map((l) => l.msg as string);
    expect(warnings.some((m) => m.startsWith('AUTH_MODE=open: anyone can act as any user'))).toBe(true);
    expect(warnings.some((m) => m.startsWith('ADMIN_API_KEY is not set'))).toBe(true);
  }, 30_000);
});
