import { afterAll, beforeAll, expect, test } from 'bun:test';
import { Cluster } from 'ioredis';
import { loadConfig } from '../src/config.ts';
import { createContext } from '../src/context.ts';
import { createApp } from '../src/http/app.ts';
import { keys } from '../src/redis/keys.ts';
import { SPENT_USER_TOKEN } from '../src/modules/tokens/token-slots.ts';
import { startRedis, type RedisProc } from '../sentinel/topology.ts';
import { enterMode } from './helpers/harness.ts';
import { call, createConcert, eventually, join, userToken } from './helpers/http.ts';
import { ADMIN_KEY, JWT_SECRET, startService, type TestService } from './helpers/service.ts';

/**
 * The same code on Redis Cluster: three masters, concerts spread over them by their hash tag.
 * Every script touches one slot, so the whole journey works unchanged. User tokens spread over
 * the masters by their own tags.
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

test('user tokens spread over more than one master, and issue, use, replace and overflow all work there', async () => {
  const { app, ctx } = svc;
  const cluster = ctx.redis as Cluster;
  const slots = (await cluster.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
  const ownerOf = async (key: string) => {
    const slot = Number(await cluster.cluster('KEYSLOT', key));
    return slots.find(([from, to]) => slot >= from && slot <= to)![2][1];
  };
  const users = Array.from({ length: 60 }, (_, i) => 900 + i);
  const tokens = await Promise.all(users.map((u) => userToken(app, u)));
  const jtis = await Promise.all(tokens.map(async (t) => (await ctx.tokens.decode(t, Date.now()))!.jti));
  // The default limit spreads tokens over 25 tags; 60 tokens land on several of them, on several masters.
  expect(new Set(jtis.map((j) => j.slice(0, 2))).size).toBeGreaterThan(3);
  expect(new Set(await Promise.all(jtis.map((j) => ownerOf(keys.userToken(j))))).size).toBeGreaterThan(1);
  for (const j of jtis) expect(await cluster.exists(keys.userToken(j))).toBe(1);
  // Each tag counts its own tokens, in the tag's slot.
  const tags = [...new Set(jtis.map((j) => j.slice(0, 2)))];
  const counted = await Promise.all(tags.map((t) => cluster.zcard(keys.liveUserTokens(t))));
  expect(counted.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(jtis.length);
  for (const t of tokens.slice(0, 5)) expect((await call(app, 'GET', '/v1/me/balance', { token: t })).status).toBe(200);

  // A join spends the user token: its record is marked spent (and leaves its tag's count) on whichever master holds it.
  const concert = await createConcert(app, [{ seats: 5, price: 1000 }], 'Cluster tokens');
  for (const [i, t] of tokens.slice(0, 8).entries()) {
    expect((await join(app, concert.id, t)).status).toBe(201);
    expect(await cluster.get(keys.userToken(jtis[i]!))).toBe(SPENT_USER_TOKEN);
    expect(await cluster.zscore(keys.liveUserTokens(jtis[i]!), jtis[i]!)).toBeNull();
    expect((await call(app, 'GET', '/v1/me/balance', { token: t })).status).toBe(401);
  }

  // A tag whose share of TOKEN_REDIS_LIMIT is full sends its new tokens to SQL only; the other tags still take theirs.
  const limit = 3 * 4096; // three tags, a share of 4,096 each
  const small = createContext(loadConfig({
    JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'error', TOKEN_REDIS_LIMIT: String(limit),
    REDIS_CLUSTER_NODES: nodes.map((n) => `127.0.0.1:${n.port}`).join(','), DATABASE_URL: svc.database.url,
  }), { db: ctx.db, redis: ctx.redis });
  const smallApp = createApp(small);
  const far = Date.now() + 3_600_000;
  await cluster.del(keys.liveUserTokens('00'));
  const filler = Array.from({ length: 4096 }, (_, i) => [far, `00-filler-${i}`]).flat();
  await cluster.zadd(keys.liveUserTokens('00'), ...filler);
  const seen = new Map<string, number>();
  for (let i = 0; i < 200 && ((seen.get('00') ?? 0) < 2 || seen.size < 3); i++) {
    const t = await userToken(smallApp, 5000 + i);
    const jti = (await small.tokens.decode(t, Date.now()))!.jti;
    const tag = jti.slice(0, 2);
    seen.set(tag, (seen.get(tag) ?? 0) + 1);
    expect(['00', '01', '02']).toContain(tag);
    expect(await cluster.exists(keys.userToken(jti))).toBe(tag === '00' ? 0 : 1);
    expect((await call(smallApp, 'GET', '/v1/me/balance', { token: t })).status).toBe(200);
  }
  expect(seen.get('00')).toBeGreaterThanOrEqual(2);
  expect(seen.size).toBe(3);
  await cluster.del(keys.liveUserTokens('00'));

  // Tokens revoked in SQL mode leave Redis at the rebuild, whichever masters they are on.
  const later = tokens.slice(20, 40);
  await enterMode(svc, 'sql');
  try {
    const sqlConcert = await createConcert(app, [{ seats: 5, price: 1000 }], 'Cluster tokens, SQL mode');
    for (const t of later) expect((await join(app, sqlConcert.id, t)).status).toBe(201);
    for (const j of jtis.slice(20, 40)) expect(await cluster.exists(keys.userToken(j))).toBe(1);
    expect(await ctx.coordinator.rebuildNow()).toBe(true);
    expect(ctx.mode.current).toBe('redis');
  } finally {
    await enterMode(svc, 'redis');
  }
  for (const j of jtis.slice(20, 40)) expect(await cluster.exists(keys.userToken(j))).toBe(0);
  for (const t of later) expect((await call(app, 'GET', '/v1/me/balance', { token: t })).status).toBe(401);
  expect((await call(app, 'GET', '/v1/me/balance', { token: tokens[50]! })).status).toBe(200);
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
