import { afterAll, beforeAll } from 'bun:test';
import { createRedis, type RedisClient } from '../../src/redis/connection.ts';
import { startRedis, type RedisProc } from '../../sentinel/topology.ts';

/** A redis-server of the test file's own, with the service's client (scripts registered). */
export function useScratchRedis(): { readonly redis: RedisClient; readonly server: RedisProc } {
  const state = {} as { redis: RedisClient; server: RedisProc };
  beforeAll(async () => {
    state.server = await startRedis();
    state.redis = createRedis({ mode: 'standalone', url: state.server.url }, { timeoutMs: 2000 });
  });
  afterAll(async () => {
    state.redis?.disconnect();
    await state.server?.stop();
  });
  return state;
}
