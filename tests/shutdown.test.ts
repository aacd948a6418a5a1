/**
 * Graceful shutdown of the real process (`bun src/main.ts`): stopping at once dropped 21
 * requests under load. Now, from SIGTERM on, /readyz answers 503 while everything else is still
 * served for SHUTDOWN_DRAIN_SECONDS; then the listener stops, the requests in flight finish,
 * the jobs stop and flush, and the process exits 0. The load clients act as a load balancer:
 * they keep sending until /readyz says 503, then send nothing new. Every request sent must get
 * a complete answer.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Subprocess } from 'bun';
import { freePort, startRedis, type RedisProc } from '../sentinel/topology.ts';
import { createRedis } from '../src/redis/connection.ts';
import { keys } from '../src/redis/keys.ts';
import { gracefulShutdown } from '../src/shutdown.ts';
import { openDatabase } from '../src/store/connect.ts';
import { newUserId } from './helpers/harness.ts';
import { eventually, futureIso } from './helpers/http.ts';
import { ADMIN_KEY, JWT_SECRET, startService } from './helpers/service.ts';
import { collectOutput } from './helpers/spawn.ts';

const DRAIN_SECONDS = 2;

let redis: RedisProc;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

interface Service {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  base: string;
  dbFile: string;
  /** The process's log lines so far. */
  output: () => string;
}

async function startProcess(): Promise<Service> {
  const port = await freePort();
  const dbFile = `/tmp/shutdown-test-${process.pid}-${port}.db`;
  const proc = Bun.spawn([process.execPath, 'src/main.ts'], {
    cwd: join(import.meta.dir, '..'),
    env: {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', HOST: '127.0.0.1', PORT: String(port),
      REDIS_URL: redis.url, DATABASE_URL: `sqlite:${dbFile}`, JWT_SECRET, ADMIN_API_KEY: ADMIN_KEY,
      SHUTDOWN_DRAIN_SECONDS: String(DRAIN_SECONDS), RATE_LIMIT_PER_SECOND: '0', TOKEN_RATE_LIMIT_PER_MINUTE: '0', ADMISSION_TICK_MS: '100', LOG_LEVEL: 'info',
    },
    stdin: 'ignore', stdout: 'pipe', stderr: 'pipe',
  });
  const output = collectOutput(proc);
  const base = `http://127.0.0.1:${port}`;
  await eventually(async () => (await fetch(`${base}/readyz`)).status === 200, 20_000, 50);
  return { proc, base, dbFile, output };
}

async function removeDb(file: string) {
  for (const suffix of ['', '-wal', '-shm']) await Bun.file(file + suffix).delete().catch(() => {});
}

async function createConcert(base: string): Promise<number> {
  const res = await fetch(`${base}/admin/concerts`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Admin-Key': ADMIN_KEY },
    body: JSON.stringify({ title: 'Drain', schedules: [{ date: futureIso(), seats: 10, price: 1000 }] }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: number }).id;
}

/** Resolves to the exit code, or null when the process is still running at the deadline. */
function exitWithin(proc: Subprocess, ms: number): Promise<number | null> {
  return Promise.race([proc.exited, Bun.sleep(ms).then(() => null)]);
}

const jsonPost = (body: unknown, token?: string): RequestInit => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
  body: body === undefined ? undefined : JSON.stringify(body),
});

describe('SIGTERM under load', () => {
  let svc: Service;
  afterAll(async () => {
    if (svc && svc.proc.exitCode === null) svc.proc.kill('SIGKILL');
    await svc?.proc.exited;
    await removeDb(svc?.dbFile ?? '');
  });

  test('no request is dropped, /readyz fails at once, the instance serves through the window, exits 0, nothing is lost', async () => {
    svc = await startProcess();
    const { base, proc } = svc;
    const concertId = await createConcert(base);

    const counts = { sent: 0, answered: 0, byStatus: {} as Record<string, number> };
    const failures: string[] = [];
    const joins: { userId: number; seq: number }[] = [];
    let outOfRotation = false;

    /** One request over the client's keep-alive pool; counted as answered only with the whole body read. */
    const send = async (path: string, init: RequestInit = {}) => {
      counts.sent++;
      try {
        const res = await fetch(`${base}${path}`, init);
        const text = await res.text();
        counts.answered++;
        counts.byStatus[res.status] = (counts.byStatus[res.status] ?? 0) + 1;
        return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
      } catch (err) {
        failures.push(`${init.method ?? 'GET'} ${path}: ${String(err)}`);
        return null;
      }
    };

    // A fan: a token, a join, then polls, until the balancer takes the instance out of rotation.
    const fan = async () => {
      while (!outOfRotation) {
        const userId = newUserId();
        const t = await send('/v1/tokens', jsonPost({ userId }));
        if (outOfRotation || t?.status !== 201) continue;
        const j = await send(`/v1/concerts/${concertId}/queue`, jsonPost(undefined, t.body.token));
        if (j?.status !== 201) continue;
        joins.push({ userId, seq: JSON.parse(atob(j.body.token.split('.')[1])).seq });
        for (let i = 0; i < 3 && !outOfRotation; i++) {
          await send('/v1/queue/me', { headers: { Authorization: `Bearer ${j.body.token}` } });
        }
      }
    };

    // The balancer's health check: a request of its own, not counted as load.
    let sigtermAt = 0;
    let firstNotReadyAt = 0;
    const balancer = (async () => {
      while (!outOfRotation) {
        const r = await fetch(`${base}/readyz`).then((res) => res.status, () => 0);
        if (r === 503) {
          firstNotReadyAt = Date.now();
          outOfRotation = true;
        } else if (r === 0) {
          // Refused: a balancer drops the instance too (and the test fails below: no 503 was seen).
          outOfRotation = true;
        } else {
          await Bun.sleep(20);
        }
      }
    })();

    const fans = Array.from({ length: 8 }, fan);
    await eventually(() => counts.answered >= 300, 30_000, 20);
    sigtermAt = Date.now();
    proc.kill('SIGTERM');
    await balancer;
    expect(firstNotReadyAt).toBeGreaterThan(0);
    const notReadyAfterMs = firstNotReadyAt - sigtermAt;

    // Still inside the drain window: everything but /readyz is served, and answers close their connection.
    const health = await fetch(`${base}/healthz`);
    const token = await fetch(`${base}/v1/tokens`, jsonPost({ userId: newUserId() }));
    const servedInWindowAt = Date.now();
    expect(health.status).toBe(200);
    expect(token.status).toBe(201);
    expect(token.headers.get('connection')).toBe('close');
    const joined = await fetch(`${base}/v1/concerts/${concertId}/queue`, jsonPost(undefined, ((await token.json()) as { token: string }).token));
    expect(joined.status).toBe(201);
    expect(servedInWindowAt - sigtermAt).toBeLessThan(DRAIN_SECONDS * 1000);

    await Promise.all(fans);
    const code = await exitWithin(proc, DRAIN_SECONDS * 1000 + 10_000);
    const exitedAfterMs = Date.now() - sigtermAt;
    console.log('shutdown under load', { ...counts, dropped: counts.sent - counts.answered, failures: failures.length,
      joins: joins.length, notReadyAfterMs, exitedAfterMs, code });

    expect(failures).toEqual([]);
    expect(counts.sent - counts.answered).toBe(0);
    expect(Object.keys(counts.byStatus).filter((s) => Number(s) >= 500)).toEqual([]);
    expect(notReadyAfterMs).toBeLessThan(1000);
    expect(code).toBe(0);
    expect(exitedAfterMs).toBeGreaterThanOrEqual(DRAIN_SECONDS * 1000);
    expect(exitedAfterMs).toBeLessThan(DRAIN_SECONDS * 1000 + 8_000);
    expect(svc.output()).toContain('draining');

    // Consistent afterwards: every acknowledged join is in SQL with its entry number, and the
    // write-behind owes SQL nothing (the last admissions and heartbeats were flushed).
    const db = openDatabase(`sqlite:${svc.dbFile}`);
    try {
      const rows = await db.selectFrom('queue_entries').select(['user_id', 'seq']).where('concert_id', '=', concertId).execute();
      const inSql = new Map(rows.map((r) => [Number(r.user_id), Number(r.seq)]));
      expect(joins.length).toBeGreaterThan(0);
      for (const j of joins) expect({ userId: j.userId, seq: inSql.get(j.userId) }).toEqual(j);
    } finally {
      await db.destroy();
    }
    const client = createRedis({ mode: 'standalone', url: redis.url }, { timeoutMs: 2000 });
    try {
      expect(await client.xlen(keys.stream(concertId))).toBe(0);
    } finally {
      client.disconnect();
    }
  }, 90_000);
});

describe('a request in flight when the listener stops', () => {
  let svc: Service;
  afterAll(async () => {
    if (svc && svc.proc.exitCode === null) svc.proc.kill('SIGKILL');
    await svc?.proc.exited;
    await removeDb(svc?.dbFile ?? '');
  });

  test('is answered in full; more signals while draining change nothing; exit 0', async () => {
    svc = await startProcess();
    const { base, proc } = svc;
    const port = Number(new URL(base).port);

    // A slow client: the headers and half the body now, the rest only once the listener is closed.
    const body = JSON.stringify({ userId: newUserId() });
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.on('data', (d) => { reply += d.toString(); });
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`POST /v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.write(body.slice(0, 5));

    proc.kill('SIGTERM');
    await eventually(async () => (await fetch(`${base}/readyz`)).status === 503, 5_000, 20);
    // Signals while draining (an impatient operator) must neither crash nor hurry it.
    proc.kill('SIGTERM');
    proc.kill('SIGINT');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);

    // The listener stops after the window: new connections are refused, the slow one lives on.
    await eventually(async () => {
      try {
        await fetch(`${base}/healthz`);
        return false;
      } catch {
        return true;
      }
    }, DRAIN_SECONDS * 1000 + 5_000, 20);
    expect(proc.exitCode).toBeNull();
    expect(reply).toBe('');

    socket.write(body.slice(5));
    await Promise.race([closed, Bun.sleep(5_000)]);
    expect(reply).toStartWith('HTTP/1.1 201');
    expect(reply.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4))).toMatchObject({ token: expect.any(String) });

    expect(await exitWithin(proc, 10_000)).toBe(0);
    expect(svc.output()).toContain('already shutting down');
  }, 60_000);
});

describe('gracefulShutdown, in process', () => {
  test('/readyz 503 and Connection: close from the first signal; steps in order; the last request and the jobs finish before SQL closes', async () => {
    const svc = await startService({ redisProc: redis });
    const served = svc.ctx.drain.serve(svc.app.fetch);
    const steps: string[] = [];
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((resolve) => { releaseSlow = resolve; });
    // A request that is still running when the window ends (a slow body, as a client would send it).
    const slowBody = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await slowGate;
        controller.enqueue(new TextEncoder().encode(JSON.stringify({ userId: newUserId() })));
        controller.close();
      },
    });
    try {
      svc.ctx.startJobs();
      const shutdown = gracefulShutdown({
        drain: svc.ctx.drain,
        drainSeconds: 0.2,
        log: svc.ctx.log,
        stopListening: async () => { steps.push('stop listening'); },
        stopJobs: async () => { await svc.ctx.stopJobs(); steps.push('jobs stopped'); },
        flush: async () => { await svc.ctx.writeBehind.drainOnce(); steps.push('flushed'); },
        close: async () => { steps.push(`closed with ${svc.ctx.drain.requestsInFlight} in flight`); },
      });
      const slow = served(new Request('http://x/v1/tokens', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: slowBody, duplex: 'half',
      } as RequestInit));
      expect(svc.ctx.drain.requestsInFlight).toBe(1);
      expect((await served(new Request('http://x/readyz'))).status).toBe(200);

      const done = shutdown('SIGTERM');
      const again = shutdown('SIGINT');
      const ready = await served(new Request('http://x/readyz'));
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'draining' });
      const health = await served(new Request('http://x/healthz'));
      expect([health.status, health.headers.get('Connection')]).toEqual([200, 'close']);

      await eventually(() => steps.includes('stop listening'), 5_000, 10);
      expect(steps).toEqual(['stop listening']);
      releaseSlow();
      const res = await slow;
      expect([res.status, res.headers.get('Connection')]).toEqual([201, 'close']);
      expect(await done).toBe(0);
      expect(await again).toBe(0);
      expect(steps).toEqual(['stop listening', 'jobs stopped', 'flushed', 'closed with 0 in flight']);
    } finally {
      releaseSlow();
      await svc.stop();
    }
  }, 30_000);
});
