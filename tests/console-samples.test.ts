/**
 * The operator console's samples: one instance of the fleet records each live concert every
 * CONSOLE_SAMPLE_SECONDS, in Redis in Redis mode and in SQL otherwise, an hour at most; the
 * admin endpoints read both stores, so a chart keeps its history across a mode switch.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mergeSamples, modeChangesOf, type Sample } from '../src/modules/console/samples.ts';
import { keys } from '../src/redis/keys.ts';
import { describeEach, enterMode, MODES, newConcert, newUserId, patchQueue, type Harness } from './helpers/harness.ts';
import { call, createConcert, eventually, join, userToken } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';
import { SQL_TARGETS } from './helpers/sql.ts';

const INTERVAL_S = 60;
const INTERVAL_MS = INTERVAL_S * 1000;
const HOUR_SLOTS = 3600 / INTERVAL_S;

async function joinUsers(h: Harness, concertId: number, n: number) {
  for (let i = 0; i < n; i++) {
    const r = await join(h.app, concertId, await userToken(h.app, newUserId()));
    if (r.status !== 201 && r.status !== 200) throw new Error(`join: ${r.status} ${JSON.stringify(r.body)}`);
  }
}

/** The next slot's start, as the sampler's timer would reach it. */
function nextSlot(h: Harness) {
  h.clock.advance(INTERVAL_MS - (h.clock.now() % INTERVAL_MS));
}

async function samplesOf(h: Harness, concertId: number, minutes?: number) {
  const r = await call(h.app, 'GET', `/admin/concerts/${concertId}/samples${minutes ? `?minutes=${minutes}` : ''}`, { admin: true });
  expect(r.status).toBe(200);
  return r.body as {
    concertId: number; minutes: number; sampleSeconds: number;
    samples: { at: string; waiting: number; active: number; admittedTotal: number; admitPerSecond: number | null; writeBehindLagSeconds: number | null; mode: string }[];
    modeChanges: { at: string; from: string; to: string }[];
  };
}

const sqlRows = (h: Harness, concertId: number) =>
  h.svc.database.db.selectFrom('console_samples').selectAll().where('concert_id', '=', concertId).orderBy('slot').execute();
const redisRows = async (h: Harness, concertId: number) =>
  (await h.svc.redis.lrange(keys.consoleSamples(concertId), 0, -1)).map((r) => JSON.parse(r) as { s: number; t: number; w: number });

describeEach('console samples', { env: { CONSOLE_SAMPLE_SECONDS: String(INTERVAL_S) } }, (h) => {
  test('a sample per live concert per slot, in the store of the mode; admits per second from the totals', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { maxActive: 2, admitPerSecond: 1 });
    await joinUsers(h, concert.id, 5);
    nextSlot(h);
    const first = await h.svc.ctx.sampler.sampleOnce(h.clock.now());
    expect(first.find((s) => s.concertId === concert.id)).toMatchObject({ waiting: 5, active: 0, admittedTotal: 0, mode: h.mode });
    await h.tick(); // admits 1 (1 a second, 1 s ticks)
    await h.tick();
    nextSlot(h);
    await h.svc.ctx.sampler.sampleOnce(h.clock.now());

    const body = await samplesOf(h, concert.id);
    expect(body).toMatchObject({ concertId: concert.id, minutes: 60, sampleSeconds: INTERVAL_S });
    // (The harness may have just switched this service's mode: that change is reported, before the samples.)
    expect(body.modeChanges.every((c) => Date.parse(c.at) <= Date.parse(body.samples[0]!.at))).toBe(true);
    expect(body.samples.map((s) => [s.waiting, s.active, s.admittedTotal, s.mode])).toEqual([[5, 0, 0, h.mode], [3, 2, 2, h.mode]]);
    expect(body.samples[0]!.admitPerSecond).toBeNull();
    // 2 admissions over one 60 s slot.
    expect(body.samples[1]!.admitPerSecond).toBeCloseTo(2 / 60, 3);
    expect(Date.parse(body.samples[1]!.at) - Date.parse(body.samples[0]!.at)).toBe(INTERVAL_MS);
    if (h.mode === 'redis') {
      expect(body.samples.every((s) => s.writeBehindLagSeconds !== null && s.writeBehindLagSeconds >= 0)).toBe(true);
      expect((await redisRows(h, concert.id)).map((r) => r.w)).toEqual([3, 5]);
      expect(await sqlRows(h, concert.id)).toEqual([]);
    } else {
      expect(body.samples.every((s) => s.writeBehindLagSeconds === null)).toBe(true);
      expect((await sqlRows(h, concert.id)).map((r) => Number(r.waiting))).toEqual([5, 3]);
      expect(await h.svc.redis.exists(keys.consoleSamples(concert.id))).toBe(0);
    }
  });

  test('two instances sampling the same slot at once: exactly one writes it', async () => {
    const concert = await newConcert(h);
    await joinUsers(h, concert.id, 2);
    const other = h.svc.spawnInstance();
    try {
      await enterMode({ ...h.svc, ctx: other.ctx }, h.mode);
      for (let round = 0; round < 5; round++) {
        nextSlot(h);
        const now = h.clock.now();
        const [a, b] = await Promise.all([h.svc.ctx.sampler.sampleOnce(now), other.ctx.sampler.sampleOnce(now)]);
        expect([a.length > 0, b.length > 0].filter(Boolean)).toHaveLength(1);
        // A late instance within the same slot finds it taken too.
        expect(await other.ctx.sampler.sampleOnce(now + INTERVAL_MS - 1)).toEqual([]);
      }
      const stored = h.mode === 'redis' ? (await redisRows(h, concert.id)).map((r) => r.s) : (await sqlRows(h, concert.id)).map((r) => Number(r.slot));
      expect(stored).toHaveLength(5);
      expect(new Set(stored).size).toBe(5);
      expect((await samplesOf(h, concert.id)).samples).toHaveLength(5);
    } finally {
      other.close();
    }
  });

  test('an hour at most: Redis keeps a capped list with a TTL, SQL purges older rows', async () => {
    const concert = await newConcert(h);
    const slots = HOUR_SLOTS + 5;
    for (let i = 0; i < slots; i++) {
      nextSlot(h);
      await h.svc.ctx.sampler.sampleOnce(h.clock.now());
    }
    const now = h.clock.now();
    if (h.mode === 'redis') {
      const rows = await redisRows(h, concert.id);
      expect(rows).toHaveLength(HOUR_SLOTS + 1);
      expect(Math.min(...rows.map((r) => r.t))).toBe(now - HOUR_SLOTS * INTERVAL_MS);
      const ttl = await h.svc.redis.pttl(keys.consoleSamples(concert.id));
      expect(ttl).toBeGreaterThan(3_600_000);
      expect(ttl).toBeLessThanOrEqual(3_600_000 + INTERVAL_MS);
    } else {
      const rows = await sqlRows(h, concert.id);
      expect(rows).toHaveLength(HOUR_SLOTS + 1);
      expect(Math.min(...rows.map((r) => Number(r.at)))).toBe(now - HOUR_SLOTS * INTERVAL_MS);
      // Nothing of any concert is older than the hour.
      const old = await h.svc.database.db.selectFrom('console_samples').select('at').where('at', '<', now - 3_600_000).execute();
      expect(old).toEqual([]);
    }
    expect((await samplesOf(h, concert.id)).samples).toHaveLength(HOUR_SLOTS + 1);
    expect((await samplesOf(h, concert.id, 5)).samples).toHaveLength(6);
  });

  test('a mode switch: the samples of both stores make one series, with the change between them', async () => {
    const concert = await newConcert(h);
    const other = h.mode === 'redis' ? 'sql' : 'redis';
    nextSlot(h);
    await h.svc.ctx.sampler.sampleOnce(h.clock.now());
    await enterMode(h.svc, other);
    try {
      nextSlot(h);
      await h.svc.ctx.sampler.sampleOnce(h.clock.now());
      nextSlot(h);
      await h.svc.ctx.sampler.sampleOnce(h.clock.now());
      const body = await samplesOf(h, concert.id);
      expect(body.samples.map((s) => s.mode)).toEqual([h.mode, other, other]);
      expect(body.modeChanges).toEqual([{ at: expect.any(String), from: h.mode, to: other }]);
      const changedAt = Date.parse(body.modeChanges[0]!.at);
      expect(changedAt).toBeGreaterThanOrEqual(Date.parse(body.samples[0]!.at));
      expect(changedAt).toBeLessThan(Date.parse(body.samples[1]!.at));
    } finally {
      await enterMode(h.svc, h.mode);
    }
  });

  test('GET /admin/overview: a row per live concert with counts, settings, the last fan\'s estimate and the mode', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { maxActive: 3, admitPerSecond: 2, activeTtlSeconds: 120 });
    await joinUsers(h, concert.id, 4);
    const r = await call(h.app, 'GET', '/admin/overview', { admin: true });
    expect(r.status).toBe(200);
    expect(r.body.mode).toBe(h.mode);
    const row = r.body.concerts.find((c: { id: number }) => c.id === concert.id);
    expect(row).toEqual({
      id: concert.id, title: 'Test concert', waiting: 4, active: 0, admittedTotal: 0,
      admitPerSecond: 2, admittedPerSecond: null, maxActive: 3, activeTtlSeconds: 120, paused: false,
      // 3 free slots at 2 a second, then the 4th waits for a slot: 120 s per slot / 3 slots ⇒ 1.5 + 40 s.
      tailEtaSeconds: 42, mode: h.mode, writeBehindLagSeconds: h.mode === 'redis' ? expect.any(Number) : null,
    });
    await patchQueue(h.app, concert.id, { paused: true });
    const paused = (await call(h.app, 'GET', '/admin/overview', { admin: true })).body.concerts.find((c: { id: number }) => c.id === concert.id);
    expect(paused).toMatchObject({ paused: true, tailEtaSeconds: null });
  });

  test('the endpoints want the admin key, a known concert and 1 to 60 minutes', async () => {
    const concert = await newConcert(h);
    for (const path of ['/admin/overview', `/admin/concerts/${concert.id}/samples`]) {
      expect((await call(h.app, 'GET', path)).status).toBe(401);
      const wrong = await call(h.app, 'GET', path, { admin: 'not-the-key' });
      expect(wrong.status).toBe(403);
      expect(wrong.body.error.code).toBe('FORBIDDEN');
    }
    for (const minutes of ['0', '61', 'abc', '1.5', '-5', '', '060']) {
      const r = await call(h.app, 'GET', `/admin/concerts/${concert.id}/samples?minutes=${minutes}`, { admin: true });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'VALIDATION_FAILED', details: [{ field: 'minutes', problem: expect.stringContaining('1 to 60') }] });
    }
    const unknownField = await call(h.app, 'GET', `/admin/concerts/${concert.id}/samples?hours=1`, { admin: true });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.message).toBe('unknown field: hours');
    const missing = await call(h.app, 'GET', '/admin/concerts/987654321/samples', { admin: true });
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');
    const bad = await call(h.app, 'GET', '/admin/concerts/x/samples', { admin: true });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details).toContainEqual({ field: 'concertId', problem: expect.any(String) });
    for (const minutes of ['1', '60']) {
      expect((await call(h.app, 'GET', `/admin/concerts/${concert.id}/samples?minutes=${minutes}`, { admin: true })).status).toBe(200);
    }
  });
});

/** The timers themselves: two instances, one-second slots, real time. */
for (const target of SQL_TARGETS) {
  describe(`console sampler timers, two instances [${target}]`, () => {
    let svc: TestService;
    let second: ReturnType<TestService['spawnInstance']>;
    beforeAll(async () => {
      svc = await startService({ sql: target, env: { CONSOLE_SAMPLE_SECONDS: '1' } });
      second = svc.spawnInstance();
    });
    afterAll(async () => {
      second?.close();
      await svc?.stop();
    });

    for (const mode of MODES) {
      test(`${mode} mode: one sample per slot while both run`, async () => {
        const concertId = (await createConcert(svc.app)).id;
        const contexts = [svc.ctx, second.ctx];
        for (const ctx of contexts) await enterMode({ ...svc, ctx }, mode);
        // An instance reuses its list of live concerts for up to a second, so the one that did not
        // create the concert can sample a slot without it; the timers start once both list it.
        await eventually(async () => (await Promise.all(contexts.map((ctx) => ctx.liveConcerts(Date.now()))))
          .every((ids) => ids.includes(concertId)), 5000, 20);
        // The slot of every pass either instance's timer ran (the loop calls sampleOnce() with the clock's now).
        const woke = new Set<number>();
        for (const ctx of contexts) {
          const sampleOnce = ctx.sampler.sampleOnce.bind(ctx.sampler);
          ctx.sampler.sampleOnce = (now = ctx.clock()) => {
            woke.add(Math.floor(now / 1000));
            return sampleOnce(now);
          };
        }
        for (const ctx of contexts) ctx.sampler.start();
        try {
          const slotsOf = async () => mode === 'redis'
            ? (await svc.redis.lrange(keys.consoleSamples(concertId), 0, -1)).map((r) => (JSON.parse(r) as { s: number }).s)
            : (await svc.database.db.selectFrom('console_samples').select('slot').where('concert_id', '=', concertId).execute()).map((r) => Number(r.slot));
          await eventually(async () => (await slotsOf()).length >= 3, 8000, 50);
          await Promise.all(contexts.map((ctx) => ctx.sampler.stop()));
          const slots = await slotsOf();
          expect(new Set(slots).size).toBe(slots.length);
          // Every slot an instance woke in has its sample, and only those: a slot both timers
          // slept through (a loaded machine can delay a timer past a whole slot) has none.
          const first = Math.min(...slots);
          expect([...slots].sort((a, b) => a - b)).toEqual([...woke].filter((slot) => slot >= first).sort((a, b) => a - b));
        } finally {
          await Promise.all(contexts.map((ctx) => ctx.sampler.stop()));
        }
      }, 20_000);
    }
  });
}

describe('console samples with Redis gone', () => {
  for (const target of SQL_TARGETS) {
    test(`[${target}] SQL mode answers from SQL alone`, async () => {
      const svc = await startService({ sql: target, env: { CONSOLE_SAMPLE_SECONDS: '1', REDIS_TIMEOUT_MS: '200' } });
      try {
        const concertId = (await createConcert(svc.app)).id;
        await enterMode(svc, 'sql');
        const slot = Math.floor(Date.now() / 1000);
        for (const s of [slot - 2, slot - 1]) expect(await svc.ctx.sampler.sampleOnce(s * 1000)).toHaveLength(1);
        await svc.redisProc.stop();
        const r = await call(svc.app, 'GET', `/admin/concerts/${concertId}/samples`, { admin: true });
        expect(r.status).toBe(200);
        expect(r.body.samples.map((x: { mode: string }) => x.mode)).toEqual(['sql', 'sql']);
        const overview = await call(svc.app, 'GET', '/admin/overview', { admin: true });
        expect(overview.status).toBe(200);
        expect(overview.body.concerts).toContainEqual(expect.objectContaining({ id: concertId, mode: 'sql', writeBehindLagSeconds: null }));
      } finally {
        await svc.stop();
      }
    }, 30_000);
  }
});

describe('merging the two stores', () => {
  const sample = (slot: number, at: number, mode: Sample['mode'], changes: Sample['modeChanges'] = []): Sample => ({
    concertId: 1, slot, at, waiting: slot, active: 0, admittedTotal: slot * 10, lagSeconds: null, mode, modeChanges: changes,
  });

  test('one sample per slot (the earlier one), oldest first', () => {
    const redis = [sample(1, 1000, 'redis'), sample(2, 2000, 'redis'), sample(3, 3050, 'redis')];
    const sql = [sample(3, 3010, 'sql'), sample(4, 4000, 'sql')];
    expect(mergeSamples(sql, redis).map((s) => [s.slot, s.mode])).toEqual([[1, 'redis'], [2, 'redis'], [3, 'sql'], [4, 'sql']]);
  });

  test('a change two instances both reported counts once; a later return counts again', () => {
    const series = [
      sample(1, 1000, 'redis'),
      sample(2, 2000, 'sql', [{ at: 1990, from: 'redis', to: 'sql' }]),
      sample(3, 3000, 'sql', [{ at: 2001, from: 'redis', to: 'sql' }]),
      sample(4, 4000, 'redis', [{ at: 3500, from: 'sql', to: 'rebuilding' }, { at: 3600, from: 'rebuilding', to: 'redis' }]),
      sample(5, 5000, 'sql', [{ at: 4500, from: 'redis', to: 'sql' }]),
    ];
    expect(modeChangesOf(series).map((c) => `${c.at} ${c.from}→${c.to}`))
      .toEqual(['1990 redis→sql', '3500 sql→rebuilding', '3600 rebuilding→redis', '4500 redis→sql']);
  });
});
