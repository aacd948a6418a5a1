/**
 * The wait estimate over HTTP, in both service modes on both SQL engines: a paused queue
 * promises nothing, and a full active set makes the estimate follow the slots' turnover (the
 * settings' bound before anyone has paid, the observed turnover after), not admitPerSecond.
 * The expected figures are computed from the settings and the formula in src/modules/queue/eta.ts.
 */
import { expect, test } from 'bun:test';
import { ETA_AGE_BUCKETS, ETA_WINDOW_MS, meanHoldSeconds } from '../src/modules/queue/eta.ts';
import { describeEach, newConcert, newUserId, patchQueue, type Harness } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

async function joinNew(h: Harness, concertId: number) {
  const r = await join(h.app, concertId, await userToken(h.app, newUserId()));
  if (r.status !== 201) throw new Error(`join: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as { token: string; status: string; position: number; estimatedWaitSeconds: number | null; paused: boolean };
}
const poll = (h: Harness, token: string) => call(h.app, 'GET', '/v1/queue/me', { token });

describeEach('wait estimate', {}, (h) => {
  test('a paused queue answers paused: true and no estimate, on poll and on join; resuming brings both back', async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { maxActive: 1 });
    const first = await joinNew(h, concert.id);
    const second = await joinNew(h, concert.id);
    expect(second.paused).toBe(false);
    expect(typeof second.estimatedWaitSeconds).toBe('number');
    await h.tick();
    await patchQueue(h.app, concert.id, { paused: true });

    const waiting = await poll(h, second.token);
    expect(waiting.status).toBe(200);
    expect(waiting.body).toMatchObject({ status: 'waiting', position: 1, paused: true, estimatedWaitSeconds: null });
    // Nothing moves until an operator resumes, but the poll is still the heartbeat: the longest
    // interval the grace allows, never one that would lose the place.
    const grace = h.svc.config.queueGraceSeconds;
    expect(waiting.body.pollAfterSeconds).toBe(Math.max(1, Math.min(30, Math.floor(grace / 3))));
    expect(waiting.body.pollAfterSeconds * 3).toBeLessThanOrEqual(grace);

    // The active fan is told so; the flag is there too.
    expect((await poll(h, first.token)).body).toMatchObject({ status: 'active', paused: true, estimatedWaitSeconds: 0 });

    // Joining again with the live queue token while paused: the same place, the same answer.
    const again = await join(h.app, concert.id, second.token);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: 'waiting', position: 1, paused: true, estimatedWaitSeconds: null });

    await patchQueue(h.app, concert.id, { paused: false });
    const resumed = await poll(h, again.body.token);
    expect(resumed.body).toMatchObject({ status: 'waiting', paused: false });
    // One active fan in the single slot, nobody paid yet: the slot frees within activeTtlSeconds.
    expect(resumed.body.estimatedWaitSeconds).toBe(h.svc.config.defaultActiveTtlSeconds);
  });

  test('with the active set full and nobody paid yet, the estimate is the turnover activeTtlSeconds guarantees', async () => {
    const concert = await newConcert(h);
    const maxActive = 2;
    const activeTtlSeconds = 60;
    await patchQueue(h.app, concert.id, { maxActive, admitPerSecond: 100, activeTtlSeconds });
    await joinNew(h, concert.id);
    await joinNew(h, concert.id);
    await h.tick();
    await h.tick();
    // Every slot frees within activeTtlSeconds: maxActive / activeTtlSeconds admissions a second
    // at the least, so the p-th fan waits p × activeTtlSeconds / maxActive at the most (30 s each),
    // where admitPerSecond alone would promise 1 s.
    const perAdmission = activeTtlSeconds / maxActive;
    const waiting = [];
    for (let p = 1; p <= 3; p++) {
      const w = await joinNew(h, concert.id);
      expect(w).toMatchObject({ position: p, paused: false, estimatedWaitSeconds: p * perAdmission });
      waiting.push(w);
    }
    const views = await Promise.all(waiting.map((w) => poll(h, w.token)));
    expect(views.map((v) => v.body.estimatedWaitSeconds)).toEqual([1, 2, 3].map((p) => p * perAdmission));
    // Larger pollAfterSeconds far from the front, as before.
    expect(views[2]!.body.pollAfterSeconds).toBeGreaterThanOrEqual(views[0]!.body.pollAfterSeconds);
  });

  test('once slots are seen to free, the estimate follows the observed turnover, still never above admitPerSecond', async () => {
    expect(ETA_AGE_BUCKETS).toBe(6); // the figures below are worked out for 6 age buckets
    const concert = await newConcert(h);
    const maxActive = 2;
    await patchQueue(h.app, concert.id, { maxActive, admitPerSecond: 100, activeTtlSeconds: 60 });
    const a = await joinNew(h, concert.id);
    await joinNew(h, concert.id);
    await h.tick(); // admits both; the first tick only records the active count
    const waiting = [await joinNew(h, concert.id), await joinNew(h, concert.id), await joinNew(h, concert.id)];
    await h.tick(); // 2 slots × 1 s, nothing freed
    expect((await call(h.app, 'DELETE', '/v1/queue/me', { token: a.token })).status).toBe(204);
    await h.tick(); // 1 slot freed; the first waiting fan takes it
    expect((await poll(h, waiting[0]!.token)).body.status).toBe('active');

    // One slot released at an age under activeTtl / 6 (10 s) out of 2 slot-seconds there, after one
    // decay step w; no other age seen yet, so those hold to activeTtl. A full set of 2 turns over
    // at 2 / meanHold a second.
    const w = Math.exp(-h.svc.config.admissionTickMs / ETA_WINDOW_MS);
    const hold = meanHoldSeconds([1, 0, 0, 0, 0, 0], [2 * w + 2, 0, 0, 0, 0, 0], 60);
    expect(hold).toBeLessThan(10);
    const perAdmission = hold / maxActive;
    const views = await Promise.all(waiting.slice(1).map((x) => poll(h, x.token)));
    expect(views.map((v) => v.body.position)).toEqual([1, 2]);
    expect(views.map((v) => v.body.estimatedWaitSeconds)).toEqual([1, 2].map((p) => Math.ceil(p * perAdmission)));

    // With free slots the next admissions wait for nothing but admitPerSecond (here 1 a second).
    await patchQueue(h.app, concert.id, { admitPerSecond: 1, maxActive: 100 });
    const capped = await Promise.all(waiting.slice(1).map((x) => poll(h, x.token)));
    expect(capped.map((v) => v.body.estimatedWaitSeconds)).toEqual([1, 2]);
  });
});
