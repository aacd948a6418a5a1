/**
 * Time in the waiting room: the heartbeat grace (QUEUE_GRACE_SECONDS=1) and the active time
 * (DEFAULT_ACTIVE_TTL_SECONDS=1). The service's clock is moved by the test, so a second passes
 * at once and the outcome does not depend on the machine's speed.
 */
import { expect, test } from 'bun:test';
import { describeEach, enterMode, newConcert, newUserId, patchQueue, queueStats, type Harness } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

const env = { QUEUE_GRACE_SECONDS: '1', DEFAULT_ACTIVE_TTL_SECONDS: '1', ADMISSION_TICK_MS: '50' };

async function joinNew(h: Harness, concertId: number) {
  const r = await join(h.app, concertId, await userToken(h.app, newUserId()));
  if (r.status !== 201) throw new Error(`join: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { token: string; position: number };
}
const poll = (h: Harness, token: string) => call(h.app, 'GET', '/v1/queue/me', { token });
const schedules = (h: Harness, concertId: number, token: string) =>
  call(h.app, 'GET', `/v1/concerts/${concertId}/schedules`, { token });

describeEach('queue timing', { env }, (h) => {
  test('a waiting user who stops polling for longer than the grace period loses the place', async () => {
    const concert = await newConcert(h);
    const idle = await joinNew(h, concert.id);
    const polling = await joinNew(h, concert.id);
    h.clock.advance(600);
    expect((await poll(h, polling.token)).status).toBe(200);
    h.clock.advance(600);
    expect((await poll(h, polling.token)).status).toBe(200);
    const lost = await poll(h, idle.token);
    expect(lost.status).toBe(401);
    expect(lost.body.error.code).toBe('UNAUTHENTICATED');
    expect((await poll(h, idle.token)).status).toBe(401);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ waiting: 1 });
    await h.tick();
    expect((await poll(h, polling.token)).body.status).toBe('active');
  });

  test('an idle waiting user is skipped at admission and the line moves past the entry', async () => {
    const concert = await newConcert(h);
    const idle = await joinNew(h, concert.id);
    const b = await joinNew(h, concert.id);
    const c = await joinNew(h, concert.id);
    h.clock.advance(600);
    await poll(h, b.token);
    await poll(h, c.token);
    h.clock.advance(600);
    await h.tick();
    expect((await poll(h, b.token)).body.status).toBe('active');
    expect((await poll(h, c.token)).body.status).toBe('active');
    expect((await poll(h, idle.token)).status).toBe(401);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ waiting: 0, active: 2, admittedTotal: 2 });
    // The next user's position counts from the last entry the line has passed.
    expect((await joinNew(h, concert.id)).position).toBe(1);
  });

  test('an idle waiting user who joins again goes to the back of the line', async () => {
    const concert = await newConcert(h);
    const idle = await joinNew(h, concert.id);
    const b = await joinNew(h, concert.id);
    h.clock.advance(600);
    await poll(h, b.token);
    h.clock.advance(600);
    const again = await join(h.app, concert.id, idle.token);
    expect(again.status).toBe(201);
    expect(again.body.position).toBe(3);
    expect((await h.svc.ctx.tokens.decode(again.body.token, h.clock.now()))!.seq).toBe(3);
    await patchQueue(h.app, concert.id, { maxActive: 1 });
    await h.tick();
    expect((await poll(h, b.token)).body.status).toBe('active');
    expect((await poll(h, again.body.token)).body).toMatchObject({ status: 'waiting' });
  });

  test('an admitted user whose time is up frees the slot for the next one', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { maxActive: 1 });
    const a = await joinNew(h, concert.id);
    const b = await joinNew(h, concert.id);
    await h.tick();
    const active = await poll(h, a.token);
    expect(active.body.status).toBe('active');
    expect(Date.parse(active.body.activeUntil) - h.clock.now()).toBeLessThanOrEqual(1000);
    expect((await schedules(h, concert.id, a.token)).status).toBe(200);

    h.clock.advance(600);
    await poll(h, b.token);
    await h.tick();
    expect((await poll(h, b.token)).body.status).toBe('waiting');
    h.clock.advance(500);
    await poll(h, b.token);
    // Time is up: the active-only endpoints refuse at once, before any tick.
    const refused = await schedules(h, concert.id, a.token);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('NOT_ADMITTED');
    expect(await queueStats(h.app, concert.id)).toMatchObject({ active: 0, waiting: 1 });

    await h.tick();
    expect((await poll(h, b.token)).body.status).toBe('active');
    // Once a tick has ended the place, the token is dead everywhere.
    expect((await schedules(h, concert.id, a.token)).status).toBe(401);
    expect((await poll(h, a.token)).status).toBe(401);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ active: 1, waiting: 0, admittedTotal: 2 });
  });

  test('an admitted user who polls after the time is up is told the place is gone', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { maxActive: 1 });
    const a = await joinNew(h, concert.id);
    await h.tick();
    h.clock.advance(1100);
    const r = await poll(h, a.token);
    expect(r.status).toBe(401);
    expect(r.body.error.code).toBe('UNAUTHENTICATED');
    expect(await queueStats(h.app, concert.id)).toMatchObject({ active: 0 });
    // The next newcomer is admitted into the freed slot.
    const b = await joinNew(h, concert.id);
    await h.tick();
    expect((await poll(h, b.token)).body.status).toBe('active');
  });

  test('an admitted user whose time is up and who joins again gets a new place that works', async () => {
    const concert = await newConcert(h);
    const a = await joinNew(h, concert.id);
    await h.tick();
    h.clock.advance(1100);
    const again = await join(h.app, concert.id, a.token);
    expect(again.status).toBe(201);
    expect(again.body.status).toBe('waiting');
    await h.tick();
    const view = await poll(h, again.body.token);
    expect(view.status).toBe(200);
    expect(view.body.status).toBe('active');
    expect((await schedules(h, concert.id, again.body.token)).status).toBe(200);
    expect(await queueStats(h.app, concert.id)).toMatchObject({ active: 1, admittedTotal: 2 });
  });
  test('a rate below one user per tick admits at that rate: 5/s with 50 ms ticks is one every fourth tick', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { admitPerSecond: 5 });
    for (let i = 0; i < 12; i++) await joinNew(h, concert.id);
    const totals: number[] = [];
    for (let i = 0; i < 12; i++) {
      await h.tick();
      totals.push((await queueStats(h.app, concert.id)).admittedTotal);
    }
    // The first tick may spend credit saved while the queue was empty (at most one tick's worth).
    const perTick = totals.map((t, i) => t - (totals[i - 1] ?? 0));
    expect(Math.max(...perTick)).toBe(1);
    expect(totals[11]! - totals[0]!).toBeGreaterThanOrEqual(2);
    expect(totals[11]! - totals[0]!).toBeLessThanOrEqual(3);
    expect(totals[11]).toBeLessThanOrEqual(4);
    expect((await queueStats(h.app, concert.id)).waiting).toBe(12 - totals[11]!);
  });

  test('a fractional budget above one keeps the fraction: 50/s with 50 ms ticks admits 5 every two ticks', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { admitPerSecond: 50 });
    for (let i = 0; i < 25; i++) await joinNew(h, concert.id);
    const totals: number[] = [];
    for (let i = 0; i < 8; i++) {
      await h.tick();
      totals.push((await queueStats(h.app, concert.id)).admittedTotal);
    }
    const perTick = totals.map((t, i) => t - (totals[i - 1] ?? 0));
    expect(Math.max(...perTick)).toBe(3);
    expect(totals[7]! - totals[1]!).toBe(15);
  });
});

describeEach('queue timing across a switch to SQL mode', { env, modes: ['redis'] }, (h) => {
  test('a user who kept polling in Redis mode keeps the place when the service moves to SQL', async () => {
    const concert = await newConcert(h);
    const a = await joinNew(h, concert.id);
    const b = await joinNew(h, concert.id);
    // Both poll, in Redis mode, for longer than the grace period in all.
    for (let i = 0; i < 3; i++) {
      h.clock.advance(600);
      expect((await poll(h, a.token)).status).toBe(200);
      expect((await poll(h, b.token)).status).toBe(200);
    }
    await h.svc.ctx.writeBehind.drainOnce(h.clock.now());
    await h.svc.ctx.coordinator.enterSql('test: redis lost');
    try {
      // SQL never saw those polls: the heartbeat grace restarts with SQL mode.
      expect((await poll(h, a.token)).body).toMatchObject({ status: 'waiting', position: 1 });
      h.clock.advance(600);
      await h.tick();
      expect((await poll(h, a.token)).body.status).toBe('active');
      expect((await poll(h, b.token)).body.status).toBe('active');
      // The grace itself still applies in SQL mode.
      const c = await joinNew(h, concert.id);
      h.clock.advance(1200);
      expect((await poll(h, c.token)).status).toBe(401);
    } finally {
      await enterMode(h.svc, 'redis');
    }
  });
});
