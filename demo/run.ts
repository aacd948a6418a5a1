/**
 * npm run demo   (env: PORT, DEMO_FANS=300, DEMO_NO_REDIS=1 to try SQL mode)
 *
 * Everything on this machine, nothing left behind: a redis-server of its own on a free
 * loopback port when the binary is there (else the service serves from SQL), the service on a
 * free port (or PORT) with a fresh SQLite file and an admin key it prints, a demo concert, and
 * a few hundred simulated fans (an in-process fetch loop) joining, polling, holding and paying.
 * Ctrl-C (or SIGTERM) stops the fans, the service and Redis, and removes the temp files.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startRedis, type RedisProc } from '../sentinel/topology.ts';

const ROOT = join(import.meta.dir, '..');
const FANS = Math.max(1, Math.min(5000, Number(process.env.DEMO_FANS) || 300));
const SEATS_PER_DATE = 500;
const PRICE = 50_000;

const say = (line = '') => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => Bun.sleep(ms);
const jitter = (ms: number) => ms * (0.5 + Math.random());

let stopping = false;
let redis: RedisProc | null = null;
let service: ReturnType<typeof Bun.spawn> | null = null;
const dataDir = mkdtempSync(join(tmpdir(), 'ticketing-demo-'));

/** Stops everything this script started, once; resolves when all of it is gone. */
let cleanup: Promise<void> | null = null;
function stopAll(): Promise<void> {
  cleanup ??= (async () => {
    stopping = true;
    if (service && service.exitCode === null && service.signalCode === null) {
      service.kill('SIGTERM');
      const killer = setTimeout(() => service?.kill('SIGKILL'), 10_000);
      await service.exited;
      clearTimeout(killer);
    }
    await redis?.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  })();
  return cleanup;
}

async function shutdown(signal: string): Promise<never> {
  if (!stopping) say(`\n${signal}: stopping the fans, the service${redis ? ' and redis-server' : ''}...`);
  await stopAll();
  say('stopped; nothing left running, temp files removed.');
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

async function die(message: string): Promise<never> {
  process.stderr.write(`demo: ${message}\n`);
  await stopAll();
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// Redis and the service

const redisBin = process.env.REDIS_SERVER_BIN ?? 'redis-server';
let redisUrl: string;
let redisNote: string;
if (!process.env.DEMO_NO_REDIS && Bun.which(redisBin)) {
  redis = await startRedis().catch((err) => die(`could not start redis-server: ${(err as Error).message.split('\n')[0]}`));
  redisUrl = redis.url;
  redisNote = `redis-server of its own on ${redis.url} (mode redis)`;
} else {
  // Nothing listens on a fresh free port: the service starts in sql mode, as on a bare machine.
  redisUrl = `redis://127.0.0.1:${await freePort()}`;
  redisNote = process.env.DEMO_NO_REDIS
    ? `no Redis (DEMO_NO_REDIS): the service serves from SQL (mode sql), REDIS_URL=${redisUrl}`
    : `no ${redisBin} binary: the service serves from SQL (mode sql), REDIS_URL=${redisUrl}`;
}

const port = process.env.PORT ? Number(process.env.PORT) : await freePort();
const adminKey = process.env.ADMIN_API_KEY || randomBytes(16).toString('hex');
const origin = `http://127.0.0.1:${port}`;
service = Bun.spawn([process.execPath, 'src/main.ts'], {
  cwd: ROOT,
  env: {
    PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dataDir,
    PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redisUrl, DATABASE_URL: `sqlite:${join(dataDir, 'demo.db')}`,
    ADMIN_API_KEY: adminKey, JWT_SECRET: randomBytes(32).toString('base64url'), LOG_LEVEL: 'warn',
    SHUTDOWN_DRAIN_SECONDS: '0', ADMISSION_TICK_MS: '500',
    // Every simulated fan comes from this one address; per-user limits still apply.
    TOKEN_RATE_LIMIT_PER_MINUTE: '0',
  },
  stdin: 'ignore', stdout: 'pipe', stderr: 'pipe',
});
let serviceStderr = '';
void (async () => {
  for await (const chunk of service.stderr as ReadableStream<Uint8Array>) serviceStderr += new TextDecoder().decode(chunk);
})();
// The service's warnings and errors, shortened, so the terminal shows what it would.
void (async () => {
  let rest = '';
  for await (const chunk of service.stdout as ReadableStream<Uint8Array>) {
    rest += new TextDecoder().decode(chunk);
    const lines = rest.split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      try {
        const l = JSON.parse(line) as { level: string; msg: string };
        if (l.level === 'warn' || l.level === 'error') say(`  [service ${l.level}] ${l.msg}`);
      } catch {
        say(`  [service] ${line}`);
      }
    }
  }
})();
void service.exited.then((code) => {
  if (!stopping) void die(`the service exited (code ${code})${serviceStderr ? `: ${serviceStderr.trim()}` : ''}`);
});

// ---------------------------------------------------------------------------------------------
// HTTP

interface Reply { status: number; body: any }
async function api(method: string, path: string, opts: { body?: unknown; token?: string; admin?: boolean } = {}): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.admin) headers['X-Admin-Key'] = adminKey;
  const res = await fetch(`${origin}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  let body: any = text;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, body };
}

const readyBy = Date.now() + 30_000;
let mode = '';
for (;;) {
  const r = await api('GET', '/readyz').catch(() => null);
  if (r?.status === 200) { mode = r.body.mode; break; }
  if (Date.now() > readyBy) await die(`the service did not become ready on ${origin} within 30 s`);
  await sleep(100);
}

const future = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
const created = await api('POST', '/admin/concerts', {
  admin: true,
  body: { title: 'Demo concert', schedules: [{ date: future(30), seats: SEATS_PER_DATE, price: PRICE }, { date: future(31), seats: SEATS_PER_DATE, price: PRICE }] },
});
if (created.status !== 201) await die(`creating the demo concert answered ${created.status}: ${JSON.stringify(created.body)}`);
const concertId = created.body.id as number;
const scheduleIds = (created.body.schedules as { id: number }[]).map((s) => s.id);
// A small active set, so that most fans wait and a few shop at any time.
await api('PATCH', `/admin/concerts/${concertId}/queue`, { admin: true, body: { maxActive: 40, admitPerSecond: 5, activeTtlSeconds: 60 } });

say('Ticketing demo');
say(`  Redis:        ${redisNote}`);
say(`  Service:      ${origin} (mode ${mode}), SQLite in ${dataDir}`);
say(`  API base:     ${origin}/v1`);
say(`  Fan page:     ${origin}/concerts/${concertId}   (the page arrives with a later issue; the API below works now)`);
say(`  Console:      ${origin}/admin   (likewise)`);
say(`  Admin key:    ${adminKey}`);
say(`  Concert:      ${concertId} "Demo concert", ${2 * SEATS_PER_DATE} seats, ${FANS} simulated fans`);
say(`  Try:          curl -s -H 'X-Admin-Key: ${adminKey}' ${origin}/admin/concerts/${concertId}/queue`);
say(`                curl -s ${origin}/v1/concerts`);
say('  Ctrl-C stops everything.');
say();

// ---------------------------------------------------------------------------------------------
// Fans

const stats = { joined: 0, held: 0, paid: 0, left: 0, errors: 0 };

/** One fan: a user token, a place in the queue, polls as told, and once admitted maybe buys. */
async function fan(userId: number): Promise<void> {
  await sleep(Math.random() * 5000); // arrivals spread over the first seconds
  while (!stopping) {
    try {
      const minted = await api('POST', '/v1/tokens', { body: { userId } });
      if (minted.status !== 201) { await sleep(jitter(2000)); continue; }
      const joined = await api('POST', `/v1/concerts/${concertId}/queue`, { token: minted.body.token });
      if (joined.status !== 201 && joined.status !== 200) { await sleep(jitter(3000)); continue; }
      stats.joined++;
      const token = joined.body.token as string;
      let status = joined.body.status as string;
      while (!stopping && status !== 'active') {
        const poll = await api('GET', '/v1/queue/me', { token });
        if (poll.status !== 200) break;
        status = poll.body.status;
        if (status !== 'active') await sleep(jitter(1000 * Math.min(Math.max(poll.body.pollAfterSeconds ?? 1, 1), 3)));
      }
      if (stopping) return;
      if (status === 'active') await shop(token);
      await api('DELETE', '/v1/queue/me', { token }).catch(() => {});
      stats.left++;
      await sleep(jitter(10_000)); // then comes back for another round
    } catch {
      if (stopping) return;
      stats.errors++;
      await sleep(jitter(1000));
    }
  }
}

async function shop(token: string): Promise<void> {
  await sleep(jitter(1500)); // looks at the seat map
  if (Math.random() < 0.3) return; // only browsing
  const scheduleId = scheduleIds[Math.floor(Math.random() * scheduleIds.length)]!;
  const seats = await api('GET', `/v1/concerts/${concertId}/schedules/${scheduleId}/seats`, { token });
  const free = ((seats.body?.seats ?? []) as { seatNumber: number; status: string }[]).filter((s) => s.status === 'available');
  if (free.length === 0) return;
  const seat = free[Math.floor(Math.random() * free.length)]!;
  const hold = await api('POST', '/v1/reservations', { token, body: { scheduleId, seatNumber: seat.seatNumber } });
  if (hold.status !== 201 && hold.status !== 200) return;
  stats.held++;
  await sleep(jitter(2000));
  if (Math.random() < 0.3) {
    await api('DELETE', `/v1/reservations/${hold.body.reservationId}`, { token });
    return;
  }
  await api('POST', '/v1/me/balance/charge', { token, body: { amount: PRICE } });
  const paid = await api('POST', '/v1/payments', { token, body: { reservationId: hold.body.reservationId } });
  if (paid.status === 201) stats.paid++;
}

for (let i = 0; i < FANS; i++) void fan(100_000 + i);

// A status line every few seconds.
const statusTimer = setInterval(async () => {
  if (stopping) return clearInterval(statusTimer);
  const [queue, status] = await Promise.all([
    api('GET', `/admin/concerts/${concertId}/queue`, { admin: true }).catch(() => null),
    api('GET', '/admin/status', { admin: true }).catch(() => null),
  ]);
  if (stopping || !queue || queue.status !== 200) return;
  say(`  mode ${status?.body?.mode ?? '?'} | waiting ${queue.body.waiting} | active ${queue.body.active} | admitted ${queue.body.admittedTotal}` +
    ` | holds ${stats.held} | paid ${stats.paid} | left ${stats.left}${stats.errors ? ` | client errors ${stats.errors}` : ''}`);
}, 5000);
