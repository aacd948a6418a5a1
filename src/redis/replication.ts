import { Cluster } from 'ioredis';
import { errors } from '../errors.ts';
import type { RedisClient } from './connection.ts';

/**
 * Waits until `replicas` replicas have every write this connection sent so far (`WAIT`, sent on
 * the same connection right after the script). Replication is asynchronous: without this a
 * failover may promote a replica that never saw an acknowledged place, admission or sale.
 * Sentinel promotes the replica with the most replicated data, so one is enough. Cluster
 * clients spread commands over nodes, where WAIT would ask the wrong one: not used there.
 * Throws 503 when the replicas did not confirm in time; the change may still survive, but it
 * was not promised to anyone.
 */
export async function awaitReplicas(client: RedisClient, replicas: number, timeoutMs: number): Promise<void> {
  if (replicas <= 0 || client instanceof Cluster) return;
  const acked = Number(await client.call('WAIT', replicas, timeoutMs));
  if (acked < replicas) throw errors.unavailable(`the change reached ${acked} of ${replicas} Redis replicas in time; retry`, 1);
}
