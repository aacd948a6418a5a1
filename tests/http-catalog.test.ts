/**
 * Catalog reads: the public concert list, and the active-only schedules and seat map, with
 * every refusal they can give. Seat states are written the way holds and sales leave them
 * (the Redis keys and the SQL seat row), and each mode must read them the same.
 */
import { expect, test } from 'bun:test';
import { Rebuilder } from '../src/jobs/rebuild/index.ts';
import { keys } from '../src/redis/keys.ts';
import { describeEach, newConcert, newUserId, type Harness } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

/** A user admitted to the concert's queue; returns the active queue token. */
async function admitted(h: Harness, concertId: number): Promise<string> {
  const r = await join(h.app, concertId, await userToken(h.app, newUserId()));
  if (r.status !== 201) throw new Error(`join: ${r.status} ${JSON.stringify(r.body)}`);
  await h.tick();
  return r.body.token;
}
const get = (h: Harness, path: string, token?: string) => call(h.app, 'GET', path, { token });

describeEach('catalog', {}, (h) => {
  test('GET /v1/concerts lists concerts with their first and last dates, no token needed', async () => {
    const first = new Date(h.clock.now() + 10 * 86_400_000).toISOString();
    const last = new Date(h.clock.now() + 12 * 86_400_000).toISOString();
    const created = await call(h.app, 'POST', '/admin/concerts', {
      admin: true,
      body: { title: 'Two nights', schedules: [{ date: last, seats: 3, price: 10 }, { date: first, seats: 3, price: 10 }] },
    });
    expect(created.status).toBe(201);
    const r = await get(h, '/v1/concerts');
    expect(r.status).toBe(200);
    expect(r.body.concerts).toContainEqual({ id: created.body.id, title: 'Two nights', startsAt: first, endsAt: last });
    for (const c of r.body.concerts) expect(Object.keys(c).sort()).toEqual(['endsAt', 'id', 'startsAt', 'title']);
  });

  test('schedules: capacity, availability and whether a date can still be booked', async () => {
    const past = new Date(h.clock.now() - 86_400_000).toISOString();
    const future = new Date(h.clock.now() + 86_400_000).toISOString();
    const created = await call(h.app, 'POST', '/admin/concerts', {
      admin: true, body: { title: 'Run', schedules: [{ date: past, seats: 2, price: 5 }, { date: future, seats: 4, price: 7 }] },
    });
    h.clock.advance(1001);
    const token = await admitted(h, created.body.id);
    const r = await get(h, `/v1/concerts/${created.body.id}/schedules`, token);
    expect(r.status).toBe(200);
    const [s1, s2] = created.body.schedules;
    expect(r.body).toEqual({
      schedules: [
        { id: s1.id, concertId: created.body.id, date: past, capacity: 2, price: 5, available: 2, reservable: false },
        { id: s2.id, concertId: created.body.id, date: future, capacity: 4, price: 7, available: 4, reservable: true },
      ],
    });
  });

  test('seats: numbered 1..capacity with price and status; held and sold seats are shown as such', async () => {
    const concert = await newConcert(h, [{ seats: 5, price: 30_000 }]);
    const token = await admitted(h, concert.id);
    const scheduleId = concert.schedules[0]!.id;
    const seatsPath = `/v1/concerts/${concert.id}/schedules/${scheduleId}/seats`;
    const r = await get(h, seatsPath, token);
    expect(r.status).toBe(200);
    expect(r.body.seats).toEqual([1, 2, 3, 4, 5].map((n) => ({ seatNumber: n, price: 30_000, status: 'available' })));

    // Seat 2 sold, seat 3 held, seat 4's hold has expired: as Redis and SQL record them.
    const now = h.clock.now();
    await h.svc.redis.pipeline()
      .sadd(keys.sold(concert.id, scheduleId), 2)
      .zadd(keys.holds(concert.id, scheduleId), now + 60_000, 3, now - 1, 4)
      .exec();
    const db = h.svc.database.db;
    await db.updateTable('seats').set({ status: 'sold' }).where('schedule_id', '=', scheduleId).where('seat_number', '=', 2).execute();
    await db.updateTable('seats').set({ status: 'held', hold_reservation_id: 'r3', hold_user_id: 1, hold_expires_at: now + 60_000 })
      .where('schedule_id', '=', scheduleId).where('seat_number', '=', 3).execute();
    await db.updateTable('seats').set({ status: 'held', hold_reservation_id: 'r4', hold_user_id: 1, hold_expires_at: now - 1 })
      .where('schedule_id', '=', scheduleId).where('seat_number', '=', 4).execute();

    const after = await get(h, seatsPath, token);
    expect(after.body.seats.map((s: { status: string }) => s.status)).toEqual(['available', 'sold', 'held', 'available', 'available']);
    const sched = await get(h, `/v1/concerts/${concert.id}/schedules`, token);
    expect(sched.body.schedules[0]).toMatchObject({ capacity: 5, available: 3, reservable: true });
  });

  test('both modes give the same answers for the same concert', async () => {
    const concert = await newConcert(h, [{ seats: 3, price: 1 }, { seats: 2, price: 2 }]);
    const token = await admitted(h, concert.id);
    // Redis → SQL: SQL learns of the admission through the write-behind stream.
    // SQL → Redis: the rebuild job loads what SQL decided into Redis.
    if (h.mode === 'redis') await h.svc.ctx.writeBehind.drainOnce(h.clock.now());
    else {
      const rebuilder = new Rebuilder({
        db: h.svc.database.db, redis: h.svc.redis, log: h.svc.ctx.log, clock: h.clock.now, liveConcerts: async () => [concert.id],
      });
      expect(await rebuilder.tryRebuild([concert.id], h.clock.now())).not.toBeNull();
    }
    const paths = [`/v1/concerts/${concert.id}/schedules`, `/v1/concerts/${concert.id}/schedules/${concert.schedules[1]!.id}/seats`];
    const answers = async () => Promise.all(paths.map((p) => get(h, p, token).then((r) => [r.status, r.body])));
    const here = await answers();
    h.svc.ctx.mode.set(h.mode === 'redis' ? 'sql' : 'redis', 'test');
    try {
      expect(await answers()).toEqual(here);
    } finally {
      h.svc.ctx.mode.set(h.mode, 'test');
    }
  });

  test('a waiting token, a user token or an active token of another concert → 403 NOT_ADMITTED', async () => {
    const concert = await newConcert(h);
    const other = await newConcert(h);
    const otherActive = await admitted(h, other.id);
    const waiting = (await join(h.app, concert.id, await userToken(h.app, newUserId()))).body.token;
    const user = await userToken(h.app, newUserId());
    const s = concert.schedules[0]!.id;
    for (const token of [waiting, user, otherActive]) {
      for (const path of [`/v1/concerts/${concert.id}/schedules`, `/v1/concerts/${concert.id}/schedules/${s}/seats`]) {
        const r = await get(h, path, token);
        expect(r.status).toBe(403);
        expect(r.body.error.code).toBe('NOT_ADMITTED');
      }
    }
  });

  test('no token, a bad token or a token that has left → 401', async () => {
    const concert = await newConcert(h);
    const token = await admitted(h, concert.id);
    const path = `/v1/concerts/${concert.id}/schedules`;
    expect((await get(h, path)).status).toBe(401);
    expect((await get(h, path, `${token}x`)).status).toBe(401);
    expect((await call(h.app, 'DELETE', '/v1/queue/me', { token })).status).toBe(204);
    const r = await get(h, path, token);
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('UNAUTHENTICATED');
  });

  test('an unknown concert or schedule, or a schedule of another concert → 404', async () => {
    const concert = await newConcert(h);
    const other = await newConcert(h);
    const token = await admitted(h, concert.id);
    for (const path of [
      '/v1/concerts/987654321/schedules',
      '/v1/concerts/987654321/schedules/1/seats',
      `/v1/concerts/${concert.id}/schedules/987654321/seats`,
      `/v1/concerts/${concert.id}/schedules/${other.schedules[0]!.id}/seats`,
    ]) {
      const r = await get(h, path, token);
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe('NOT_FOUND');
    }
  });

  test('ids of the wrong shape → 400 naming the parameter', async () => {
    const concert = await newConcert(h);
    const token = await admitted(h, concert.id);
    const cases: [string, string][] = [
      ['/v1/concerts/x/schedules', 'concertId'],
      ['/v1/concerts/0/schedules', 'concertId'],
      [`/v1/concerts/${concert.id}/schedules/-3/seats`, 'scheduleId'],
      [`/v1/concerts/${concert.id}/schedules/1.0/seats`, 'scheduleId'],
      ['/v1/concerts/abc/schedules/def/seats', 'concertId'],
    ];
    for (const [path, field] of cases) {
      const r = await get(h, path, token);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('VALIDATION_FAILED');
      expect(r.body.error.details).toContainEqual({ field, problem: expect.any(String) });
    }
  });
});
