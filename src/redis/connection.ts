import { Cluster, Redis } from 'ioredis';
import type { Config } from '../config.ts';
import { registerScripts } from './scripts.ts';

export type RedisClient = Redis | Cluster;

export interface RedisConnectOptions {
  /** Per-command socket inactivity limit; a frozen master must fail fast, not swallow writes. */
  timeoutMs: number;
  /** Give up on a command after this many reconnect attempts (the breaker decides what next). */
  maxRetriesPerRequest?: number;
  lazyConnect?: boolean;
}

/**
 * One client for the whole process. Options follow what was measured on Bun: a fast
 * reconnect, `socketTimeout` so a frozen server is detected, and in Sentinel mode the
 * failover detector so the client moves to a new master as soon as it is elected.
 */
export function createRedis(cfg: Config['redis'], opts: RedisConnectOptions): RedisClient {
  const common = {
    retryStrategy: (attempt: number) => Math.min(50 * attempt, 500),
    maxRetriesPerRequest: opts.maxRetriesPerRequest ?? 2,
    socketTimeout: opts.timeoutMs,
    // Bounds every command, so no request waits on Redis longer than this.
    commandTimeout: opts.timeoutMs,
    connectTimeout: Math.max(opts.timeoutMs, 1000),
    enableOfflineQueue: true,
    // A command whose connection closed before it answered has already been answered to its
    // caller as a failure (or will be): replaying it on the next connection, possibly a newly
    // promoted master, would carry out a join, hold or admission nobody is waiting for, with
    // the time and tick it was sent with.
    autoResendUnfulfilledCommands: false,
    lazyConnect: opts.lazyConnect ?? false,
  };
  let client: RedisClient;
  if (cfg.mode === 'cluster') {
    client = new Cluster(cfg.nodes, {
      redisOptions: common,
      clusterRetryStrategy: (attempt: number) => Math.min(100 * attempt, 1000),
      enableOfflineQueue: true,
      lazyConnect: opts.lazyConnect ?? false,
    });
  } else if (cfg.mode === 'sentinel') {
    client = new Redis({
      ...common,
      sentinels: cfg.sentinels,
      name: cfg.masterName,
      sentinelRetryStrategy: () => 100,
      failoverDetector: true,
    });
    reconnectAfterDetectorRace(client);
  } else {
    client = new Redis(cfg.url, common);
  }
  // Errors surface on the commands; the connection-level event would otherwise crash the process.
  client.on('error', () => {});
  registerScripts(client);
  return client;
}

/**
 * ioredis 6.0.0 race, seen in the freeze drill: the failover detector of the previous
 * connection disconnects the connector while a reconnect is resolving the master through a
 * sentinel; connect() then fails with "Connection is closed." and the client ends for good
 * (status 'end'), so the service would stay in SQL mode until restarted. Only disconnect() or
 * quit() may end this client: any other end is followed by a fresh connect().
 */
function reconnectAfterDetectorRace(client: Redis): void {
  let closing = false;
  const disconnect = client.disconnect.bind(client);
  client.disconnect = (reconnect = false) => {
    if (!reconnect) closing = true;
    disconnect(reconnect);
  };
  const quit = client.quit.bind(client);
  client.quit = ((...args: Parameters<Redis['quit']>) => {
    closing = true;
    return quit(...args);
  }) as Redis['quit'];
  let attempt = 0;
  client.on('ready', () => { attempt = 0; });
  client.on('end', () => {
    if (closing) return;
    attempt++;
    setTimeout(() => {
      if (!closing && client.status === 'end') client.connect().catch(() => {});
    }, Math.min(100 * attempt, 1000));
  });
}

/** Role and master address, for /admin/status. */
export async function describeRedis(client: RedisClient): Promise<{ role: string; master: string | null }> {
  if (client instanceof Cluster) {
    const masters = client.nodes('master').map((n) => `${n.options.host}:${n.options.port}`);
    return { role: 'cluster', master: masters.join(',') || null };
  }
  const info = await client.info('replication');
  const role = /role:(\w+)/.exec(info)?.[1] ?? 'unknown';
  const stream = client.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  const master = role === 'master'
    ? (stream?.remoteAddress ? `${stream.remoteAddress}:${stream.remotePort}` : null)
    : `${/master_host:(\S+)/.exec(info)?.[1]}:${/master_port:(\d+)/.exec(info)?.[1]}`;
  return { role, master };
}
