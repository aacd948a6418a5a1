/**
 * Admin endpoints: creating concerts, reading and changing a queue's configuration, the
 * status report and the cache rebuild; and the admin key rule (none → 401, wrong → 403).
 */
import { expect, test } from 'bun:test';
import { loadConfig } from '../src/config.ts';
import { createContext } from '../src/context.ts';
import { createApp } from '../src/http/app.ts';
import { readLine } from '../src/modules/queue/line.ts';
import { keys } from '../src/redis/keys.ts';
import { describeEach, enterMode, newConcert, newUserId, queueStats, type Harness } from './helpers/harness.ts';
import { call, eventually, futureIso, join, userToken } from './helpers/http.ts';
import { JWT_SECRET } from './helpers/service.ts';

const concertCount = async (h: Harness) =>
  Number((await h.svc.database.db.selectFrom('concerts').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

const ADMIN_CALLS: [string, string, unknown?][] = [
  ['POST', '/admin/concerts', { title: 'x', schedules: [{ date: futureIso(), seats: 1, price: 1 }] }],
  ['GET', '/admin/concerts/1/queue'],
  ['PATCH', '/admin/concerts/1/queue', { paused: true }],
  ['GET', '/admin/status'],
  ['POST', '/admin/cache/rebuild'],
];

describeEach('admin', {}, (h) => {
  test('POST /admin/concerts creates the concert, its schedules, numbered seats and a queue', async () => {
    const d1 = futureIso(40);
    const d2 = futureIso(41);
    const r = await call(h.app, 'POST', '/admin/concerts', {
      admin: true, body: { title: '  Spring tour ', schedules: [{ date: d2, seats: 3, price: 99_000 }, { date: d1, seats: 2, price: 0 }] },
    });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({
      id: expect.any(Number), title: 'Spring tour', startsAt: d1, endsAt: d2, saleStartsAt: null, draw: null,
      schedules: [
        { id: expect.any(Number), date: d2, capacity: 3, price: 99_000 },
        { id: expect.any(Number), date: d1, capacity: 2, price: 0 },
      ],
    });
    const db = h.svc.database.db;
    const seats = await db.selectFrom('seats').select(['schedule_id', 'seat_number', 'price', 'status'])
      .where('concert_id', '=', r.body.id).orderBy('schedule_id').orderBy('seat_number').execute();
    const [s1, s2] = r.body.schedules;
    expect(seats).toEqual([
      ...[1, 2, 3].map((n) => ({ schedule_id: s1.id, seat_number: n, price: 99_000, status: 'available' as const })),
      ...[1, 2].map((n) => ({ schedule_id: s2.id, seat_number: n, price: 0, status: 'available' as const })),
    ]);
    expect(await queueStats(h.app, r.body.id)).toEqual({
      concertId: r.body.id, waiting: 0, active: 0, admittedTotal: 0, lastEntry: 0, lastAdmittedEntry: 0,
      config: { maxActive: 1000, admitPerSecond: 100, activeTtlSeconds: 600, paused: false },
    });
    // In Redis mode the concert is loaded at once (the hash goes last: it means "fully loaded").
    expect(await h.svc.redis.exists(keys.concert(r.body.id))).toBe(h.mode === 'redis' ? 1 : 0);
  });

  test.each([
    ['malformed JSON', '{"title": "x", ', 'body'],
    ['no title', JSON.stringify({ schedules: [{ date: futureIso(), seats: 1, price: 1 }] }), 'title'],
    ['a blank title', JSON.stringify({ title: '  ', schedules: [{ date: futureIso(), seats: 1, price: 1 }] }), 'title'],
    ['no schedules', JSON.stringify({ title: 'x', schedules: [] }), 'schedules'],
    ['zero seats', JSON.stringify({ title: 'x', schedules: [{ date: futureIso(), seats: 0, price: 1 }] }), 'schedules.0.seats'],
    ['too many seats', JSON.stringify({ title: 'x', schedules: [{ date: futureIso(), seats: 10_001, price: 1 }] }), 'schedules.0.seats'],
    ['a fractional price', JSON.stringify({ title: 'x', schedules: [{ date: futureIso(), seats: 1, price: 1.5 }] }), 'schedules.0.price'],
    ['a negative price', JSON.stringify({ title: 'x', schedules: [{ date: futureIso(), seats: 1, price: -1 }] }), 'schedules.0.price'],
    ['a date that is not a date', JSON.stringify({ title: 'x', schedules: [{ date: '2026-02-30T00:00:00Z', seats: 1, price: 1 }] }), 'schedules.0.date'],
    ['a date without a zone', JSON.stringify({ title: 'x', schedules: [{ date: '2030-01-01 20:00', seats: 1, price: 1 }] }), 'schedules.0.date'],
    ['an unknown schedule field', JSON.stringify({ title: 'x', schedules: [{ date: futureIso(), seats: 1, price: 1, vip: true }] }), 'schedules.0.vip'],
    ['seats as a string', JSON.stringify({ title: 'x', schedules: [{ date: futureIso(), seats: '10', price: 1 }] }), 'schedules.0.seats'],
  ])('POST /admin/concerts with %s → 400 naming the field, nothing created', async (_what, raw, field) => {
    const before = await concertCount(h);
    const r = await call(h.app, 'POST', '/admin/concerts', { admin: true, raw });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_FAILED');
    expect(r.body.error.details.map((d: { field: string }) => d.field)).toContain(field);
    expect(await concertCount(h)).toBe(before);
  });

  test('POST /admin/concerts with an unknown top-level field → 400 naming it', async () => {
    const r = await call(h.app, 'POST', '/admin/concerts', {
      admin: true, body: { title: 'x', schedules: [{ date: futureIso(), seats: 1, price: 1 }], venue: 'Seoul' },
    });
    expect(r.status).toBe(400);
    expect(JSON.stringify(r.body.error.details)).toContain('venue');
  });

  test('GET and PATCH /admin/concerts/:id/queue read and change the configuration', async () => {
    const concert = await newConcert(h);
    const patched = await call(h.app, 'PATCH', `/admin/concerts/${concert.id}/queue`, { admin: true, body: { maxActive: 1, activeTtlSeconds: 30 } });
    expect(patched.status).toBe(200);
    expect(patched.body).toEqual({ maxActive: 1, admitPerSecond: 100, activeTtlSeconds: 30, paused: false });
    const again = await call(h.app, 'PATCH', `/admin/concerts/${concert.id}/queue`, { admin: true, body: { admitPerSecond: 5, paused: false } });
    expect(again.body).toEqual({ maxActive: 1, admitPerSecond: 5, activeTtlSeconds: 30, paused: false });

    const tokens = [];
    for (let i = 0; i < 3; i++) tokens.push((await join(h.app, concert.id, await userToken(h.app, newUserId()))).body.token);
    await h.tick();
    expect(await queueStats(h.app, concert.id)).toMatchObject({
      waiting: 2, active: 1, admittedTotal: 1, lastEntry: 3, lastAdmittedEntry: 1,
      config: { maxActive: 1, admitPerSecond: 5, activeTtlSeconds: 30, paused: false },
    });
    // The new active time applies to the admission.
    const me = await call(h.app, 'GET', '/v1/queue/me', { token: tokens[0] });
    expect(Date.parse(me.body.activeUntil) - h.clock.now()).toBeGreaterThan(25_000);
    expect(Date.parse(me.body.activeUntil) - h.clock.now()).toBeLessThanOrEqual(30_000);
  });

  test.each([
    ['an empty object', {}],
    ['maxActive 0', { maxActive: 0 }],
    ['a fractional rate', { admitPerSecond: 1.5 }],
    ['a negative active time', { activeTtlSeconds: -1 }],
    ['an active time over a day', { activeTtlSeconds: 86_401 }],
    ['paused as a string', { paused: 'yes' }],
    ['an unknown field', { maxActive: 5, priority: 1 }],
    ['null', null],
  ])('PATCH /admin/concerts/:id/queue with %s → 400, configuration unchanged', async (_what, body) => {
    const concert = await newConcert(h);
    const before = (await queueStats(h.app, concert.id)).config;
    const r = await call(h.app, 'PATCH', `/admin/concerts/${concert.id}/queue`, { admin: true, raw: JSON.stringify(body) });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_FAILED');
    expect(r.body.error.details.length).toBeGreaterThan(0);
    expect((await queueStats(h.app, concert.id)).config).toEqual(before);
  });

  test('queue endpoints: an unknown concert → 404, a bad id → 400', async () => {
    for (const method of ['GET', 'PATCH']) {
      const missing = await call(h.app, method, '/admin/concerts/987654321/queue', { admin: true, body: method === 'PATCH' ? { paused: true } : undefined });
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe('NOT_FOUND');
      const bad = await call(h.app, method, '/admin/concerts/x1/queue', { admin: true, body: method === 'PATCH' ? { paused: true } : undefined });
      expect(bad.status).toBe(400);
      expect(bad.body.error.details).toContainEqual({ field: 'concertId', problem: expect.any(String) });
    }
  });

  test('GET /admin/status reports the mode, the breaker, the Redis role and the write-behind backlog', async () => {
    const r = await call(h.app, 'GET', '/admin/status', { admin: true });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      mode: h.mode, breaker: expect.any(String),
      redis: { role: 'master', master: expect.stringMatching(/^127\.0\.0\.1:\d+$/) },
      writeBehind: { pending: expect.any(Number), lagSeconds: expect.any(Number) },
    });
  });

  test('POST /admin/cache/rebuild answers 202 and reloads Redis from SQL', async () => {
    const concert = await newConcert(h);
    const a = await join(h.app, concert.id, await userToken(h.app, newUserId()));
    const b = await join(h.app, concert.id, await userToken(h.app, newUserId()));
    // Their records have reached SQL (written behind: a place lost before that comes back from its
    // token instead, tests/place-adoption.test.ts).
    await h.svc.ctx.writeBehind.drainConcertFully(concert.id);
    await h.svc.redis.flushall();
    const r = await call(h.app, 'POST', '/admin/cache/rebuild', { admin: true });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ accepted: true });
    await eventually(async () => (await h.svc.redis.exists(keys.concert(concert.id))) === 1);
    // Places come back from the queue tokens SQL recorded, in entry order.
    expect((await readLine(h.svc.redis, concert.id)).map((p) => p.userId)).toEqual(
      await Promise.all([a, b].map(async (j) => (await h.svc.ctx.tokens.decode(j.body.token, h.clock.now()))!.userId)),
    );
    // A rebuild always ends with the service back on Redis, whatever mode it started in.
    await eventually(() => h.svc.ctx.mode.current === 'redis');
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: b.body.token })).body).toMatchObject({ status: 'waiting', position: 2 });
    await enterMode(h.svc, h.mode);
  });

  test('every admin endpoint: no key → 401 UNAUTHENTICATED, a wrong key → 403 FORBIDDEN', async () => {
    const before = await concertCount(h);
    for (const [method, path, body] of ADMIN_CALLS) {
      const none = await call(h.app, method, path, { body });
      expect([method, path, none.status, none.body.error.code]).toEqual([method, path, 401, 'UNAUTHENTICATED']);
      const wrong = await call(h.app, method, path, { body, admin: 'not-the-key' });
      expect([method, path, wrong.status, wrong.body.error.code]).toEqual([method, path, 403, 'FORBIDDEN']);
      const empty = await call(h.app, method, path, { body, headers: { 'X-Admin-Key': '' } });
      expect(empty.status).toBe(401);
    }
    expect(await concertCount(h)).toBe(before);
  });

  test('with no ADMIN_API_KEY configured every admin call is refused', async () => {
    const config = loadConfig({ JWT_SECRET, LOG_LEVEL: 'error', REDIS_URL: h.svc.redisProc.url, DATABASE_URL: h.svc.database.url });
    const ctx = createContext(config, { db: h.svc.database.db, redis: h.svc.redis });
    const app = createApp(ctx);
    for (const [method, path, body] of ADMIN_CALLS) {
      expect((await call(app, method, path, { body })).status).toBe(401);
      expect((await call(app, method, path, { body, admin: 'anything' })).status).toBe(403);
    }
  });
});
