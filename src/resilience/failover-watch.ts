import { Redis } from 'ioredis';
import type { RedisClient } from '../redis/connection.ts';

/**
 * Calls `onChange` when a Sentinel-mode client becomes ready on another master than before.
 * Replication is asynchronous: the promoted replica may lack the old master's last writes
 * (places, holds, admissions), so what Redis owns must be reconciled from SQL.
 */
export function watchMasterChanges(client: RedisClient, onChange: (from: string, to: string) => void): void {
  if (!(client instanceof Redis) || !client.options.sentinels) return;
  const addressOf = () => {
    const s = client.stream as { remoteAddress?: string; remotePort?: number } | undefined;
    return s?.remoteAddress ? `${s.remoteAddress}:${s.remotePort}` : null;
  };
  let master = client.status === 'ready' ? addressOf() : null;
  client.on('ready', () => {
    const now = addressOf();
    if (master && now && now !== master) onChange(master, now);
    master = now ?? master;
  });
}
