/**
 * Configuration: the defaults operators rely on, one ConfigError naming the variable for
 * every bad value, and the process itself refusing to start with one clear line (bad value,
 * unreachable Redis).
 */
import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ConfigError, loadConfig } from '../src/config.ts';
import { freePort } from '../sentinel/topology.ts';

const SECRET = 'x'.repeat(32);

/** Bad values per variable; each must stop the start with an error naming the variable. */
const BAD: Record<string, string[]> = {
  PORT: ['abc', '-1', '65536', '1.5', '3000x', '0x10'],
  REDIS_URL: ['http://127.0.0.1:6379', 'not a url', 'redis://127.0.0.1:99999'],
  REDIS_SENTINELS: ['127.0.0.1', '127.0.0.1:0', 'host:abc', ',', 'a:1,b'],
  REDIS_CLUSTER_NODES: ['127.0.0.1', 'h:70000', ' , '],
  DATABASE_URL: ['mysql://x/y', 'sqlite:', 'postgres:/x', 'ticketing.db'],
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
  ADMISSION_TICK_MS: ['49', '60001', 'fast'],
  REDIS_TIMEOUT_MS: ['49', '60001'],
  REDIS_WAIT_REPLICAS: ['-1', '101', 'one'],
  REDIS_WAIT_TIMEOUT_MS: ['0', '60001'],
  WRITE_BEHIND_MAX_BACKLOG: ['0', '1.5'],
  SQL_TIMEOUT_MS: ['99', 'soon'],
  RATE_LIMIT_PER_SECOND: ['-1', 'x'],
  RATE_LIMIT_BURST: ['0', 'x'],
  TRUST_PROXY: ['yes', 'maybe', '2'],
};
/** Variables whose every value is acceptable. */
const FREE_FORM = ['ADMIN_API_KEY', 'REDIS_MASTER_NAME'];

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

  test('an unreachable Redis stops the start within a few seconds with a clear line', async () => {
    const port = await freePort();
    const dbFile = join(tmpdir(), `cfg-${process.pid}-b.db`);
    const r = await start({ REDIS_URL: `redis://127.0.0.1:${port}`, DATABASE_URL: `sqlite:${dbFile}`, REDIS_TIMEOUT_MS: '500' });
    for (const suffix of ['', '-wal', '-shm']) await Bun.file(dbFile + suffix).delete().catch(() => {});
    expect(r.code).not.toBe(0);
    expect(r.ms).toBeLessThan(10_000);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/redis/i);
    expect(lines[0]).toContain('reach');
  }, 20_000);
});
