/**
 * src/redis/connection.ts in Sentinel mode, against a real 1+2+3 topology: the client must never
 * end by itself. ioredis 6.0.0 has a race (found by the freeze drill, about one run in eight at
 * 200 users): the failover detector of the previous connection disconnects the connector while
 * a reconnect is resolving the master, connect() fails with "Connection is closed." and the
 * client ends for good, leaving the service in SQL mode until a restart. The race is made
 * certain here by disconnecting the connector from inside its resolve step (ioredis internals).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { Redis } from 'ioredis';
import { createRedis } from '../src/redis/connection.ts';
import { startSentinelTopology, type Topology } from '../sentinel/topology.ts';

let topology: Topology;
beforeAll(async () => { topology = await startSentinelTopology(); });
afterAll(async () => { await topology.stopAll(); });

const sentinelClient = () =>
  createRedis({ mode: 'sentinel', sentinels: topology.sentinels, masterName: topology.masterName }, { timeoutMs: 1500 }) as Redis;

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(25);
  }
  return true;
}

test('a reconnect cut short by the failover detector does not end the client', async () => {
  const client = sentinelClient();
  try {
    expect(await client.ping()).toBe('PONG');
    const connector = (client as unknown as { connector: { resolve: (e: unknown) => Promise<unknown>; disconnect(): void } }).connector;
    const resolve = connector.resolve.bind(connector);
    let armed = true;
    connector.resolve = async (endpoint) => {
      const master = await resolve(endpoint);
      if (armed) {
        armed = false;
        connector.disconnect(); // what FailoverDetector does on +switch-master
      }
      return master;
    };
    client.disconnect(true);
    expect(await waitFor(() => !armed, 5000)).toBe(true);
    expect(await waitFor(() => client.status === 'ready', 5000)).toBe(true);
    expect(await client.set('reconnect:after-race', '1')).toBe('OK');
  } finally {
    client.disconnect();
  }
}, 20_000);

test('disconnect() still ends the client for good', async () => {
  const client = sentinelClient();
  expect(await client.ping()).toBe('PONG');
  client.disconnect();
  expect(await waitFor(() => client.status === 'end', 2000)).toBe(true);
  await Bun.sleep(500);
  expect(client.status).toBe('end');
});
