/**
 * The waiting room over HTTP: joining, rejoining, polling, leaving, the QUEUE_CLOSED cases and
 * the shape of a place, in both service modes on both SQL engines.
 */
import { expect, test } from 'bun:test';
import { describeEach, newConcert, newUserId, patchQueue, queueStats, type Harness } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

async function joinNew(h: Harness, concertId: number) {
  const r = await join(h.app, concertId, await userToken(h.app, newUserId()));
  if (r.status !== 201) throw new Error(`join: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { token: string; status: string; position: number };
}
const poll = (h: Harness, token: string) => call(h.app, 'GET', '/v1/queue/me', { token });
const leave = (h: Harness, token: string) => call(h.app, 'DELETE', '/v1/queue/me', { token });

describeEach('queue', {}, (h) => {
  test('joining answers 201 with a queue token, the place and an estimate', async () => {
    const concert = await newConcert(h);
    const userId = newUserId();
    const before = h.clock.now();
    const r = await join(h.app, concert.id, await userToken(h.app, userId));
    expect(r.status).toBe(201);
    expect(r.body).toEqual({
      token: expect.any(String), expiresAt: expect.any(String), status: 'waiting', concertId: concert.id,
      position: 1, ahead: 0, estimatedWaitSeconds: expect.any(Number), paused: false, pollAfterSeconds: expect.any(Number),
      activeUntil: null,
    });
    const claims = (await h.svc.ctx.tokens.jwt.verify(r.body.token, Math.floor(before / 1000)))!;
    expect(claims).toMatchObject({ typ: 'queue', sub: String(userId), cid: concert.id, seq: 1 });
    expect(Date.parse(r.body.expiresAt) - before).toBeGreaterThanOrEqual(3600_000);
    expect(Date.parse(r.body.expiresAt) - before).toBeLessThan(3600_000 + 5000);

    const second = await joinNew(h, concert.id);
    expect(second).toMatchObject({ status: 'waiting', position: 2, ahead: 1 });
    expect(await queueStats(h.app, concert.id)).toMatchObject({ waiting: 2, active: 0, admittedTotal: 0 });
  });

  test('polling tells the place; after a tick the user is active until a given time', async () => {
    const concert = await newConcert(h);
    const a = await joinNew(h, concert.id);
    const p = await poll(h, a.token);
    expect(p.status).toBe(200);
    expect(p.headers.get('Cache-Control')).toBe('no-store');
    expect(p.body).toEqual({
      status: 'waiting', concertId: concert.id, position: 1, ahead: 0,
      estimatedWaitSeconds: expect.any(Number), paused: false, pollAfterSeconds: expect.any(Number), activeUntil: null,
    });
    await h.tick();
    const q = await poll(h, a.token);
    expect(q.body).toMatchObject({ status: 'active', concertId: concert.id, position: 0, ahead: 0, estimatedWaitSeconds: 0 });
    const until = Date.parse(q.body.activeUntil);
    expect(until - h.clock.now()).toBeGreaterThan(590_000);
    expect(until - h.clock.now()).toBeLessThanOrEqual(600_000);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ waiting: 0, active: 1, admittedTotal: 1 });
  });

  test('position is my entry number minus the last admitted one', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { admitPerSecond: 2 });
    const users = [];
    for (let i = 0; i < 5; i++) users.push(await joinNew(h, concert.id));
    expect(users.map((u) => u.position)).toEqual([1, 2, 3, 4, 5]);
    await h.tick();
    const views = await Promise.all(users.map((u) => poll(h, u.token)));
    expect(views.map((v) => [v.body.status, v.body.position, v.body.ahead])).toEqual([
      ['active', 0, 0], ['active', 0, 0], ['waiting', 1, 0], ['waiting', 2, 1], ['waiting', 3, 2],
    ]);
  });

  test('pollAfterSeconds and the wait estimate grow with the distance from the front', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { admitPerSecond: 1 });
    const users = [];
    for (let i = 0; i < 40; i++) users.push(await joinNew(h, concert.id));
    const views = (await Promise.all(users.map((u) => poll(h, u.token)))).map((v) => v.body);
    const after = views.map((v) => v.pollAfterSeconds as number);
    const eta = views.map((v) => v.estimatedWaitSeconds as number);
    for (let i = 1; i < views.length; i++) {
      expect(after[i]!).toBeGreaterThanOrEqual(after[i - 1]!);
      expect(eta[i]!).toBeGreaterThan(eta[i - 1]!);
    }
    expect(after[0]).toBe(1);
    expect(after[39]).toBeGreaterThan(after[0]!);
    // Never so long that a polling user would miss the heartbeat grace.
    expect(Math.max(...after)).toBeLessThanOrEqual(h.svc.config.queueGraceSeconds / 3);
  });

  test('joining again with the queue token answers 200 with the same token and place', async () => {
    const concert = await newConcert(h);
    await joinNew(h, concert.id);
    const first = await joinNew(h, concert.id);
    const again = await join(h.app, concert.id, first.token);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: 'waiting', position: 2, ahead: 1 });
    expect(again.body.token).toBe(first.token);
    expect((await poll(h, first.token)).body.position).toBe(2);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ waiting: 2, lastEntry: 2 });
  });

  test('joining again with another user token of the same user answers 200 with the same place and replaces the token', async () => {
    const concert = await newConcert(h);
    await joinNew(h, concert.id);
    const userId = newUserId();
    const first = await join(h.app, concert.id, await userToken(h.app, userId));
    const again = await join(h.app, concert.id, await userToken(h.app, userId));
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: 'waiting', position: 2, ahead: 1 });
    expect(again.body.token).not.toBe(first.body.token);
    expect((await h.svc.ctx.tokens.decode(again.body.token, h.clock.now()))!.seq).toBe(2);
    expect((await poll(h, first.body.token)).status).toBe(401);
    expect((await poll(h, again.body.token)).body.position).toBe(2);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ waiting: 2 });
  });

  test('joining again while active keeps the active slot', async () => {
    const concert = await newConcert(h);
    const a = await joinNew(h, concert.id);
    await h.tick();
    const again = await join(h.app, concert.id, a.token);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: 'active', position: 0 });
    expect(again.body.activeUntil).toEqual(expect.any(String));
    expect((await call(h.app, 'GET', `/v1/concerts/${concert.id}/schedules`, { token: again.body.token })).status).toBe(200);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ active: 1, admittedTotal: 1 });
  });

  test('joining another concert with a queue token leaves the first queue', async () => {
    const a = await newConcert(h);
    const b = await newConcert(h);
    const inA = await joinNew(h, a.id);
    const inB = await join(h.app, b.id, inA.token);
    expect(inB.status).toBe(201);
    expect(inB.body).toMatchObject({ concertId: b.id, position: 1 });
    expect((await poll(h, inA.token)).status).toBe(401);
    expect(await queueStats(h.app, a.id)).toMatchObject({ waiting: 0 });
    expect((await poll(h, inB.body.token)).body).toMatchObject({ concertId: b.id, status: 'waiting' });
    // The active slot in the first concert is given up the same way.
    const c = await newConcert(h);
    const active = await joinNew(h, c.id);
    await h.tick();
    expect((await join(h.app, b.id, active.token)).status).toBe(201);
    expect(await queueStats(h.app, c.id)).toMatchObject({ active: 0 });
  });

  test('DELETE /v1/queue/me leaves the line: 204, the token is dead, others move up', async () => {
    const concert = await newConcert(h);
    const a = await joinNew(h, concert.id);
    const b = await joinNew(h, concert.id);
    const r = await leave(h, a.token);
    expect(r.status).toBe(204);
    expect(r.body).toBeNull();
    expect((await poll(h, a.token)).status).toBe(401);
    expect((await leave(h, a.token)).status).toBe(401);
    expect((await join(h.app, concert.id, a.token)).status).toBe(401);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ waiting: 1 });
    await h.tick();
    expect((await poll(h, b.token)).body.status).toBe('active');
  });

  test('DELETE /v1/queue/me frees the active slot at once', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { maxActive: 1 });
    const a = await joinNew(h, concert.id);
    const b = await joinNew(h, concert.id);
    await h.tick();
    await h.tick();
    expect((await poll(h, b.token)).body.status).toBe('waiting');
    expect((await leave(h, a.token)).status).toBe(204);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ active: 0, waiting: 1 });
    expect((await call(h.app, 'GET', `/v1/concerts/${concert.id}/schedules`, { token: a.token })).status).toBe(401);
    await h.tick();
    expect((await poll(h, b.token)).body.status).toBe('active');
  });

  test('a paused queue answers 409 QUEUE_CLOSED to newcomers and admits nobody', async () => {
    const concert = await newConcert(h);
    const early = await joinNew(h, concert.id);
    await patchQueue(h.app, concert.id, { paused: true });
    const r = await join(h.app, concert.id, await userToken(h.app, newUserId()));
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('QUEUE_CLOSED');
    await h.tick();
    expect((await poll(h, early.token)).body.status).toBe('waiting');
    // Someone already in line keeps the place while paused.
    expect((await join(h.app, concert.id, early.token)).status).toBe(200);
    await patchQueue(h.app, concert.id, { paused: false });
    expect((await join(h.app, concert.id, await userToken(h.app, newUserId()))).status).toBe(201);
  });

  test('a concert whose last date has passed answers 409 QUEUE_CLOSED', async () => {
    const past = new Date(h.clock.now() - 3600_000).toISOString();
    const created = await call(h.app, 'POST', '/admin/concerts', {
      admin: true, body: { title: 'Last night', schedules: [{ date: past, seats: 5, price: 1000 }] },
    });
    expect(created.status).toBe(201);
    const token = await userToken(h.app, newUserId());
    const r = await join(h.app, created.body.id, token);
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('QUEUE_CLOSED');
    // Nothing changed: the user token still works elsewhere.
    const open = await newConcert(h);
    expect((await join(h.app, open.id, token)).status).toBe(201);
  });

  test('an unknown concert → 404; ids of the wrong shape → 400 naming concertId', async () => {
    const token = await userToken(h.app, newUserId());
    const missing = await join(h.app, 987654321, token);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');
    for (const bad of ['abc', '0', '-1', '1.5', '01', '1e3', '12345678901234567', '%20']) {
      const r = await call(h.app, 'POST', `/v1/concerts/${bad}/queue`, { token });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('VALIDATION_FAILED');
      expect(r.body.error.details).toContainEqual({ field: 'concertId', problem: expect.any(String) });
    }
    // The token was not used up by the failed attempts.
    expect((await join(h.app, (await newConcert(h)).id, token)).status).toBe(201);
  });
});
