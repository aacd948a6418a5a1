/**
 * The fault checker restarted an instance (SIGKILL) while it owned a rebuild. Two things went
 * wrong: the new process served from Redis before it had read the fleet's mode (the others
 * were rebuilding; a paid seat read `available` from the half-loaded Redis), and the dead
 * owner held the fleet in `rebuilding` for 60 s. An instance now reads the mode row before it
 * serves; a rebuild owner heartbeats the row and is taken over 10 s after its last beat.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startRedis, type RedisProc } from '../sentinel/topology.ts';
import { openDatabase } from '../src/store/connect.ts';
import { migrateToLatest } from '../src/store/migrate.ts';
import { describeEach } from './helpers/harness.ts';
import { JWT_SECRET } from './helpers/service.ts';

describe('bun src/main.ts while the fleet rebuilds', () => {
  let redis: RedisProc;
  const dbFile = join(tmpdir(), `startup-mode-${process.pid}.db`);
  beforeAll(async () => {
    redis = await startRedis();
    const db = openDatabase(`sqlite:${dbFile}`);
    await migrateToLatest(db);
    await db.updateTable('service_mode').set({ mode: 'rebuilding', owner: 'another-instance', reason: 'test', updated_at: Date.now() })
      .where('id', '=', 1).execute();
    await db.destroy();
  });
  afterAll(async () => {
    await redis?.stop();
    for (const suffix of ['', '-wal', '-shm']) await Bun.file(dbFile + suffix).delete().catch(() => {});
  });

  test('answers its first request in the fleet\'s mode, not from Redis', async () => {
    const port = await freePort();
    const proc = Bun.spawn([process.execPath, 'src/main.ts'], {
      cwd: join(import.meta.dir, '..'),
      env: {
        PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', JWT_SECRET, LOG_LEVEL: 'error', HOST: '127.0.0.1',
        PORT: String(port), REDIS_URL: redis.url, DATABASE_URL: `sqlite:${dbFile}`,
      },
      stdout: 'ignore', stderr: 'pipe',
    });
    try {
      let first: { mode: string } | null = null;
      const deadline = Date.now() + 15_000;
      while (!first && Date.now() < deadline) {
        first = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.json() as Promise<{ mode: string }>, () => null);
        if (!first) await Bun.sleep(50);
      }
      expect(first?.mode).toBe('rebuilding');
    } finally {
      proc.kill();
      await proc.exited;
    }
  }, 30_000);
});

describeEach('a rebuild whose owner died', { modes: ['sql'] }, (h) => {
  test('is taken over once its heartbeat is 10 s old, not before', async () => {
    const db = h.svc.database.db;
    const claim = (ageMs: number) => db.updateTable('service_mode')
      .set({ mode: 'rebuilding', owner: 'dead-instance', reason: 'test', updated_at: Date.now() - ageMs }).where('id', '=', 1).execute();
    await claim(2_000);
    await h.svc.ctx.coordinator.sync();
    expect((await db.selectFrom('service_mode').select('mode').executeTakeFirstOrThrow()).mode).toBe('rebuilding');
    await claim(11_000);
    await h.svc.ctx.coordinator.sync();
    expect((await db.selectFrom('service_mode').select(['mode', 'reason']).executeTakeFirstOrThrow())).toEqual({
      mode: 'sql', reason: 'stale rebuild taken over',
    });
  });
});
