/**
 * `npm start` on a machine without Redis: the service starts in `sql` mode with one warning
 * naming REDIS_URL and the address it tried, serves everything from SQL (/readyz 200), and
 * moves to `redis` through the rebuild once a Redis answers there, with what was made in SQL
 * mode (a concert, places, a paid seat) served from Redis afterwards. An instance that starts
 * without Redis while the rest of the fleet serves from it moves the fleet to SQL once, and
 * when the others have rebuilt without it, it stays out (503, /readyz 503) instead of
 * knocking them back to SQL again and again.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { loadConfig } from '../src/config.ts';
import { createContext, type AppContext } from '../src/context.ts';
import { createApp } from '../src/http/app.ts';
import { createRedis } from '../src/redis/connection.ts';
import { freePort, startRedis, type RedisProc } from '../sentinel/topology.ts';
import { call, eventually, futureIso, userToken } from './helpers/http.ts';
import { ADMIN_KEY, JWT_SECRET, startService, type TestService } from './helpers/service.ts';
import { fetchJson, spawnLines, type Spawned } from './helpers/spawn.ts';
import { createTestDatabase, SQL_TARGETS, type TestDatabase } from './helpers/sql.ts';

for (const target of SQL_TARGETS) {
  describe(`bun src/main.ts with no Redis at start (${target})`, () => {
    let database: TestDatabase;
    let redisPort: number;
    let redis: RedisProc | undefined;
    let svc: Spawned | undefined;
    beforeAll(async () => {
      database = await createTestDatabase(target);
      redisPort = await freePort();
    });
    afterAll(async () => {
      if (svc) await svc.stop('SIGKILL');
      await redis?.stop();
      await database?.drop();
    });

    test('serves from SQL with one warning, then moves to redis through the rebuild, keeping what SQL mode made', async () => {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      svc = spawnLines([process.execPath, 'src/main.ts'], {
        JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'info', HOST: '127.0.0.1', PORT: String(port),
        REDIS_URL: `redis://127.0.0.1:${redisPort}`, DATABASE_URL: database.url, SHUTDOWN_DRAIN_SECONDS: '0',
        ADMISSION_TICK_MS: '100', RATE_LIMIT_PER_SECOND: '0', TOKEN_RATE_LIMIT_PER_MINUTE: '0',
      });
      await svc.waitForLine((l) => l.includes('"listening"'));
      const logs = () => svc!.lines.map((l) => JSON.parse(l) as { level: string; msg: string; mode?: string });
      const redisWarnings = logs().filter((l) => l.level === 'warn' && l.msg.includes('REDIS_URL'));
      expect(redisWarnings).toHaveLength(1);
      expect(redisWarnings[0]!.msg).toContain(`127.0.0.1:${redisPort}`);
      expect(redisWarnings[0]!.msg).toContain(`REDIS_URL=redis://127.0.0.1:${redisPort}`);
      expect(logs().find((l) => l.msg === 'listening')?.mode).toBe('sql');

      const ready = await fetchJson(base, 'GET', '/readyz');
      expect(ready).toEqual({ status: 200, body: { status: 'ready', mode: 'sql', sql: true, redis: false } });
      expect((await fetchJson(base, 'GET', '/admin/status', { adminKey: ADMIN_KEY })).body.mode).toBe('sql');

      // A sale in SQL mode: a concert, a fan admitted, a seat held and paid, another fan waiting.
      const created = await fetchJson(base, 'POST', '/admin/concerts', {
        adminKey: ADMIN_KEY, body: { title: 'No Redis yet', schedules: [{ date: futureIso(), seats: 5, price: 1000 }] },
      });
      expect(created.status).toBe(201);
      const concertId = created.body.id as number;
      const scheduleId = created.body.schedules[0].id as number;
      expect((await fetchJson(base, 'PATCH', `/admin/concerts/${concertId}/queue`, { adminKey: ADMIN_KEY, body: { maxActive: 1 } })).status).toBe(200);
      const tokenOf = async (userId: number) => (await fetchJson(base, 'POST', '/v1/tokens', { body: { userId } })).body.token as string;
      const buyer = await eventually(async () => {
        const r = await fetchJson(base, 'POST', `/v1/concerts/${concertId}/queue`, { token: await tokenOf(9101) });
        return r.status === 201 && (r.body.token as string);
      });
      await eventually(async () => (await fetchJson(base, 'GET', '/v1/queue/me', { token: buyer })).body.status === 'active', 10_000);
      const waiter = (await fetchJson(base, 'POST', `/v1/concerts/${concertId}/queue`, { token: await tokenOf(9102) })).body.token as string;
      expect((await fetchJson(base, 'POST', '/v1/me/balance/charge', { token: buyer, body: { amount: 5000 } })).status).toBe(200);
      const hold = await fetchJson(base, 'POST', '/v1/reservations', { token: buyer, body: { scheduleId, seatNumber: 2 } });
      expect(hold.status).toBe(201);
      const paid = await fetchJson(base, 'POST', '/v1/payments', { token: buyer, body: { reservationId: hold.body.reservationId } });
      expect(paid.status).toBe(201);
      expect((await fetchJson(base, 'GET', '/admin/status', { adminKey: ADMIN_KEY })).body.mode).toBe('sql');

      // Redis comes up where REDIS_URL points: the service rebuilds it and moves to redis.
      redis = await startRedis({ port: redisPort });
      await eventually(async () => (await fetchJson(base, 'GET', '/readyz')).body.mode === 'redis', 20_000, 100);
      expect(logs().some((l) => l.msg === 'mode changed' && (l as { to?: string }).to === 'rebuilding')).toBe(true);
      expect(await fetchJson(base, 'GET', '/readyz')).toEqual({ status: 200, body: { status: 'ready', mode: 'redis', sql: true, redis: true } });

      // What SQL mode made is served from Redis now.
      const queue = await fetchJson(base, 'GET', `/admin/concerts/${concertId}/queue`, { adminKey: ADMIN_KEY });
      expect(queue.status).toBe(200);
      expect(queue.body.waiting + queue.body.active).toBeGreaterThanOrEqual(1);
      const waiting = await fetchJson(base, 'GET', '/v1/queue/me', { token: waiter });
      expect(waiting.status).toBe(200);
      expect(['waiting', 'active']).toContain(waiting.body.status);
      expect(waiting.body.concertId).toBe(concertId);
      const reservation = await fetchJson(base, 'GET', `/v1/reservations/${hold.body.reservationId}`, { token: await tokenOf(9101) });
      expect(reservation.body.status).toBe('paid');
      // The seat reads sold from Redis: the waiting fan, once admitted, cannot hold it.
      await eventually(async () => (await fetchJson(base, 'GET', '/v1/queue/me', { token: waiter })).body.status === 'active', 15_000, 100);
      const seats = await fetchJson(base, 'GET', `/v1/concerts/${concertId}/schedules/${scheduleId}/seats`, { token: waiter });
      expect(seats.body.seats.find((s: { seatNumber: number }) => s.seatNumber === 2).status).toBe('sold');
      expect((await fetchJson(base, 'POST', '/v1/reservations', { token: waiter, body: { scheduleId, seatNumber: 2 } })).status).toBe(409);

      // Nothing on stderr (no unhandled rejections, no stack traces) while Redis was away.
      expect(await svc.stop('SIGTERM')).toBe(0);
      expect(await svc.stderr()).toBe('');
      svc = undefined;
    }, 90_000);
  });
}

describe('bun src/main.ts with Sentinel or Cluster addresses where nothing answers', () => {
  test.each([
    ['REDIS_SENTINELS', 'sentinels'],
    ['REDIS_CLUSTER_NODES', 'cluster nodes'],
  ])('%s: starts in sql mode with one warning naming the variable and the addresses', async (variable, words) => {
    const database = await createTestDatabase('sqlite');
    const [a, b] = [await freePort(), await freePort()];
    const port = await freePort();
    const svc = spawnLines([process.execPath, 'src/main.ts'], {
      JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: String(port),
      [variable]: `127.0.0.1:${a},127.0.0.1:${b}`, DATABASE_URL: database.url, SHUTDOWN_DRAIN_SECONDS: '0', REDIS_TIMEOUT_MS: '500',
    });
    try {
      const warning = await svc.waitForLine((l) => l.includes(variable), 20_000);
      expect(JSON.parse(warning).msg).toContain(`${words} 127.0.0.1:${a},127.0.0.1:${b}`);
      const ready = await eventually(async () => {
        const r = await fetchJson(`http://127.0.0.1:${port}`, 'GET', '/readyz').catch(() => null);
        return r?.status === 200 && r;
      }, 15_000, 100);
      expect(ready.body.mode).toBe('sql');
      expect(svc.lines.filter((l) => l.includes(variable))).toHaveLength(1);
      expect(await svc.stop('SIGTERM')).toBe(0);
      expect(await svc.stderr()).toBe('');
    } finally {
      if (svc.proc.exitCode === null) await svc.stop('SIGKILL');
      await database.drop();
    }
  }, 40_000);
});

describe('an instance that starts without Redis while the fleet serves from it', () => {
  let a: TestService;
  let b: { ctx: AppContext; app: ReturnType<typeof createApp>; close(): void } | undefined;
  beforeAll(async () => {
    a = await startService();
  });
  afterAll(async () => {
    b?.close();
    await a?.stop();
  });

  test('moves the fleet to SQL once, then stays out (503, /readyz 503) while the others rebuild and serve from Redis', async () => {
    const db = a.database.db;
    const modeRow = () => db.selectFrom('service_mode').select(['mode', 'epoch', 'owner']).where('id', '=', 1).executeTakeFirstOrThrow();
    a.ctx.startJobs();
    const concert = await call(a.app, 'POST', '/admin/concerts', { admin: true, body: { title: 'Fleet', schedules: [{ date: futureIso(), seats: 3, price: 10 }] } });
    expect(concert.status).toBe(201);

    // B: same database, a REDIS_URL where nothing answers (a wrong address, a partition).
    const config = loadConfig({
      JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'silent', RATE_LIMIT_PER_SECOND: '0', TOKEN_RATE_LIMIT_PER_MINUTE: '0',
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`, DATABASE_URL: a.database.url,
    });
    const redisB = createRedis(config.redis, { timeoutMs: config.redisTimeoutMs });
    const ctxB = createContext(config, { db, redis: redisB }, { instanceId: 'instance-b' });
    b = { ctx: ctxB, app: createApp(ctxB), close: () => { void ctxB.stopJobs(); redisB.disconnect(); } };
    await ctxB.coordinator.startWithoutRedis('redis unreachable at start');
    expect(ctxB.mode.current).toBe('sql');
    expect(await modeRow()).toMatchObject({ mode: 'sql', owner: 'instance-b' });
    ctxB.startJobs();

    // A reaches Redis: it rebuilds and brings the fleet back; B follows the row but cannot serve.
    await eventually(async () => (await modeRow()).mode === 'redis' && a.ctx.mode.current === 'redis', 20_000, 50);
    await eventually(() => ctxB.mode.current === 'redis' && ctxB.coordinator.breakerState() === 'open', 10_000, 50);
    const settled = await modeRow();
    expect(settled.owner).not.toBe('instance-b');
    const readyB = await call(b.app, 'GET', '/readyz');
    expect(readyB.status).toBe(503);
    expect((await call(a.app, 'GET', '/readyz')).status).toBe(200);
    expect((await call(b.app, 'POST', '/v1/tokens', { body: { userId: 77 } })).status).toBe(503);

    // Several breaker cycles of B later (half-open after 1 s), the fleet is still on Redis: B
    // did not move it to SQL again. A serves all along.
    const until = Date.now() + 3500;
    while (Date.now() < until) {
      expect(await modeRow()).toEqual(settled);
      expect(a.ctx.mode.current).toBe('redis');
      await Bun.sleep(100);
    }
    const token = await userToken(a.app, 78);
    expect((await call(a.app, 'POST', `/v1/concerts/${concert.body.id}/queue`, { token })).status).toBe(201);
  }, 60_000);
});
