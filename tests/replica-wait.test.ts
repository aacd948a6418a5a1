/**
 * With Sentinel, a place is acknowledged only once a replica has it (WAIT after the script, on
 * the same connection), so the replica a failover promotes cannot lack it: the poll that used
 * to answer 401 "for a moment" after a failover. Replicas that do not confirm in time make the
 * join answer 503, and the retry is answered with the place once they do. A hold is written through to SQL.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { startSentinelTopology, type Topology } from '../sentinel/topology.ts';
import { keys } from '../src/redis/keys.ts';
import { newUserId } from './helpers/harness.ts';
import { call, createConcert, join, userToken } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';

describe('waiting for a replica before acknowledging (Sentinel)', () => {
  let topo: Topology;
  let svc: TestService;
  beforeAll(async () => {
    // A long down-after: frozen replicas must not make the sentinels do anything.
    topo = await startSentinelTopology({ downAfterMs: 30_000 });
    svc = await startService({
      redisProc: topo.nodes[0]!,
      env: { REDIS_SENTINELS: topo.sentinels.map((s) => `${s.host}:${s.port}`).join(','), REDIS_MASTER_NAME: topo.masterName },
    });
  }, 60_000);
  afterAll(async () => {
    for (const n of topo?.nodes ?? []) n.thaw();
    await svc?.stop();
    await topo?.stopAll();
  });

  test('no replica confirms: the join answers 503 and acknowledges nothing; once they do, the retry gets the place it took', async () => {
    expect(svc.config.redisWaitReplicas).toBe(1);
    const c = await createConcert(svc.app);
    const userId = newUserId();
    const token = await userToken(svc.app, userId);
    for (const replica of topo.nodes.slice(1)) replica.freeze();
    try {
      const refused = await join(svc.app, c.id, token);
      expect([refused.status, refused.body.error.code, refused.headers.get('Retry-After')]).toEqual([503, 'UNAVAILABLE', '1']);
      expect(refused.body.error.message).toContain('replicas');
      // The place taken on the master stays for the retry, under the claimed token id (its
      // record is in the stream with it); a fan who never retries lets it lapse.
      expect(await svc.redis.hexists(keys.queueTokens(c.id), String(userId))).toBe(1);
    } finally {
      for (const replica of topo.nodes.slice(1)) replica.thaw();
    }
    // The retry claims the same token id: the place the refused attempt took, now acknowledged.
    const accepted = await join(svc.app, c.id, token);
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ status: 'waiting', position: 1 });
    expect((await call(svc.app, 'GET', '/v1/queue/me', { token: accepted.body.token })).status).toBe(200);
  }, 30_000);
});
