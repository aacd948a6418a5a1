import { afterAll, beforeAll, expect, test } from 'bun:test';
import { Cluster } from 'ioredis';
import { keys } from '../src/redis/keys.ts';
import { startRedis, type RedisProc } from '../sentinel/topology.ts';
import { call, createConcert, eventually, join, userToken } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';

/**
 * The same code on Redis Cluster: three masters, concerts spread over them by their hash tag.
 * Every script touches one slot, so the whole journey works unchanged.
 */
let nodes: RedisProc[] = [];
let svc: TestService;

beforeAll(async () => {
  nodes = await Promise.all([0, 1, 2].map(() => startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000'] })));
  const create = Bun.spawnSync(['redis-cli', '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
    '--cluster-replicas', '0', '--cluster-yes']);
  if (create.exitCode !== 0) throw new Error(`cluster create failed: ${create.stderr.toString()}`);
  await eventually(async () => {
    const out = Bun.spawnSync(['redis-cli', '-p', String(nodes[0]!.port), 'cluster', 'info']).stdout.toString();
    return out.includes('cluster_state:ok');
  }, 15_000, 100);
  svc = await startService({
    redisProc: nodes[0],
    env: { REDIS_CLUSTER_NODES: nodes.map((n) => `127.0.0.1:${n.port}`).join(','), HOLD_TTL_SECONDS: '60' },
  });
}, 60_000);

afterAll(async () => {
  await svc?.stop();
  await Promise.all(nodes.map((n) => n.stop()));
});

test('join, admission, seat map, hold and payment work on a three-master cluster', async () => {
  const { app, ctx } = svc;
  expect(ctx.redis).toBeInstanceOf(Cluster);
  const concerts = [];
  for (let i = 0; i < 4; i++) concerts.push(await createConcert(app, [{ seats: 5, price: 1000 }], `Cluster ${i}`));
  // The concerts' keys live on more than one master.
  const cluster = ctx.redis as Cluster;
  const slots = (await cluster.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
  const owners = new Set(await Promise.all(concerts.map(async (c) => {
    const slot = Number(await cluster.cluster('KEYSLOT', keys.queueMeta(c.id)));
    const range = slots.find(([from, to]) => slot >= from && slot <= to)!;
    return range[2][1];
  })));
  expect(owners.size).toBeGreaterThan(1);

  for (const [i, concert] of concerts.entries()) {
    const userId = 500 + i;
    const j = await join(app, concert.id, await userToken(app, userId));
    expect(j.status).toBe(201);
    await ctx.ticker.tickOnce(Date.now() + 1000 * (i + 1));
    const poll = await call(app, 'GET', '/v1/queue/me', { token: j.body.token });
    expect(poll.body.status).toBe('active');
    const seats = await call(app, 'GET', `/v1/concerts/${concert.id}/schedules/${concert.schedules[0]!.id}/seats`, { token: j.body.token });
    expect(seats.status).toBe(200);
    expect(seats.body.seats).toHaveLength(5);
    const held = await call(app, 'POST', '/v1/reservations', { token: j.body.token, body: { scheduleId: concert.schedules[0]!.id, seatNumber: 1 } });
    expect(held.status).toBe(201);
    const charged = await call(app, 'POST', '/v1/me/balance/charge', { token: j.body.token, body: { amount: 5000 } });
    expect(charged.status).toBe(200);
    const paid = await call(app, 'POST', '/v1/payments', { token: j.body.token, body: { reservationId: held.body.reservationId } });
    expect(paid.status).toBe(201);
  }
  await ctx.writeBehind.drainOnce();
  const sold = await ctx.db.selectFrom('payments').select('concert_id').execute();
  expect(sold.map((p) => p.concert_id).sort()).toEqual(concerts.map((c) => c.id).sort());
  const status = await call(app, 'GET', '/admin/status', { admin: true });
  expect(status.body.redis.role).toBe('cluster');
  expect(status.body.writeBehind.pending).toBe(0);
});

test('the console samples concerts on different masters and reads them back', async () => {
  const { app, ctx } = svc;
  const concerts = [];
  for (let i = 0; i < 4; i++) concerts.push(await createConcert(app, [{ seats: 5, price: 1000 }], `Console ${i}`));
  for (const c of concerts) expect((await join(app, c.id, await userToken(app, 700 + c.id))).status).toBe(201);
  const interval = ctx.config.consoleSampleSeconds * 1000;
  const at = Math.ceil(Date.now() / interval) * interval + 10 * interval;
  for (const now of [at, at + interval]) expect((await ctx.sampler.sampleOnce(now)).length).toBeGreaterThanOrEqual(concerts.length);
  const overview = await call(app, 'GET', '/admin/overview', { admin: true });
  expect(overview.status).toBe(200);
  for (const c of concerts) {
    const row = overview.body.concerts.find((r: { id: number }) => r.id === c.id);
    expect(row).toMatchObject({ waiting: 1, mode: 'redis', writeBehindLagSeconds: expect.any(Number) });
    expect(await ctx.redis.llen(keys.consoleSamples(c.id))).toBe(2);
  }
});

test('the write-behind backlog is measured for concerts on different masters', async () => {
  const { app, ctx } = svc;
  const concerts: { id: number }[] = [];
  for (let i = 0; i < 4; i++) concerts.push(await createConcert(app, [{ seats: 5, price: 1000 }], `Backlog ${i}`));
  await eventually(async () => (await ctx.liveConcerts(Date.now())).includes(concerts.at(-1)!.id), 3000, 50);
  // A different number of entries per concert, none yet committed to SQL.
  for (const [i, c] of concerts.entries()) {
    for (let k = 0; k <= i; k++) expect((await join(app, c.id, await userToken(app, 900 + 10 * i + k))).status).toBe(201);
  }
  const wb = ctx.writeBehind;
  await wb.measureBacklog();
  expect(concerts.map((c) => wb.backlog(c.id))).toEqual([1, 2, 3, 4]);
  await wb.drainOnce();
  await wb.measureBacklog();
  expect(concerts.map((c) => wb.backlog(c.id))).toEqual([0, 0, 0, 0]);
});
