/**
 * The operator console in a real Chromium against a real listening service (its jobs running,
 * one-second samples): the key typed in, the rows' numbers, pause, save, a concert made from the
 * form, the charts, the language switch, and the key kept out of URLs and persistent storage.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { artifact, launchBrowser } from './helpers/browser.ts';
import { newUserId, patchQueue, queueStats, TestClock } from './helpers/harness.ts';
import { call, createConcert, eventually, join, userToken } from './helpers/http.ts';
import { seeded } from './helpers/random.ts';
import { ADMIN_KEY, startService, type TestService } from './helpers/service.ts';

const WAITING = 6;
const SHOTS = 'pages-console';

describe('operator console in Chromium', () => {
  let svc: TestService;
  let server: ReturnType<typeof Bun.serve>;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  let concertId: number;
  let fanToken: string;
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  const failedResponses: string[] = [];

  beforeAll(async () => {
    svc = await startService({ env: { CONSOLE_SAMPLE_SECONDS: '1' } });
    svc.ctx.startJobs();
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
    base = `http://127.0.0.1:${server.port}`;

    // One fan takes the only active slot; the next WAITING fans wait (the slot lasts 10 minutes).
    concertId = (await createConcert(svc.app, [{ seats: 20, price: 77_000 }], 'Console <b>test</b>')).id;
    await patchQueue(svc.app, concertId, { maxActive: 1, admitPerSecond: 1 });
    await join(svc.app, concertId, await userToken(svc.app, newUserId()));
    await eventually(async () => (await queueStats(svc.app, concertId)).active === 1, 10_000);
    for (let i = 0; i < WAITING; i++) {
      const r = await join(svc.app, concertId, await userToken(svc.app, newUserId()));
      expect(r.status).toBe(201);
      fanToken = r.body.token;
    }
    expect(await queueStats(svc.app, concertId)).toMatchObject({ waiting: WAITING, active: 1 });

    browser = await launchBrowser();
    context = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'en-US' });
    page = await context.newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    // (Chromium asks for a favicon the pages do not have.)
    page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) failedResponses.push(`${r.status()} ${r.url()}`); });
    page.setDefaultTimeout(10_000);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.stop(true);
    await svc?.stop();
  });

  const row = () => page.getByTestId(`concert-${concertId}`);

  test('the key typed in shows a row per concert with its numbers; the title stays text', async () => {
    await page.goto(`${base}/admin`);
    await page.getByTestId('status').filter({ hasText: 'admin key' }).waitFor();
    await page.getByTestId('admin-key').fill(ADMIN_KEY);
    await page.getByTestId('admin-key').press('Enter');
    await row().getByTestId('waiting').filter({ hasText: String(WAITING) }).waitFor();
    expect(await row().getByTestId('active').textContent()).toBe('1');
    expect(await row().getByTestId('mode').textContent()).toBe('Redis');
    expect(await row().locator('h3').textContent()).toBe(`#${concertId} Console <b>test</b>`);
    expect(await row().locator('h3 b').count()).toBe(0);
    expect(await row().getByTestId('max-active').inputValue()).toBe('1');
    // The last fan's estimate: 6 admissions, each waiting for the one slot (held 10 minutes at most).
    const overview = await call(svc.app, 'GET', '/admin/overview', { admin: true });
    expect(overview.body.concerts.find((c: { id: number }) => c.id === concertId).tailEtaSeconds).toBe(WAITING * 600);
    expect(await row().getByTestId('tail-eta').textContent()).toBe('1 h');
    // An admission rate once two samples are there: the one admission, spread over the last minute.
    await row().getByTestId('admit-rate').filter({ hasText: /^\d+(\.\d+)?$/ }).waitFor();
    // Mobile first: nothing wider than the phone.
    expect(await page.locator('body').evaluate((b) => b.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: artifact(SHOTS, 'mobile-row'), fullPage: true });
  });

  test('the charts draw the last hour from the samples', async () => {
    const waitingLine = row().locator('[data-testid="chart-waiting"] polyline[data-series="waiting"]');
    await waitingLine.waitFor();
    const pointsNow = async () => ((await waitingLine.getAttribute('points')) ?? '').trim().split(/\s+/).map((p) => p.split(',').map(Number));
    // Samples taken while the fans were still joining show fewer; the ones after, WAITING: on a
    // 0–10 axis, 6 is at 100 − 6/10 × 96 − 2 in the 100-high drawing.
    const points = await eventually(async () => {
      const p = await pointsNow();
      return p.length >= 3 && p.slice(-2).every(([, y]) => y === 40.4) && p;
    }, 15_000, 100);
    expect(await row().locator('[data-testid="chart-waiting"] .ymax').textContent()).toBe('10');
    const xs = points.map(([x]) => x!);
    expect(xs).toEqual([...xs].sort((a, b) => a - b));
    expect(xs[xs.length - 1]).toBeGreaterThan(590);
    expect(await row().locator('[data-testid="chart-modes"] rect.m-redis').count()).toBeGreaterThanOrEqual(3);
    expect(await row().locator('[data-testid="chart-admits"] svg').count()).toBe(1);
    expect(await row().locator('[data-testid="chart-lag"] svg').count()).toBe(1);
  });

  test('pause: the API says paused, and so does a waiting fan\'s poll', async () => {
    const pause = row().getByTestId('pause');
    expect(await pause.getAttribute('aria-pressed')).toBe('false');
    // From the keyboard, as an operator without a mouse would.
    await pause.focus();
    await page.keyboard.press('Enter');
    await eventually(async () => (await pause.getAttribute('aria-pressed')) === 'true', 5000);
    expect((await queueStats(svc.app, concertId)).config.paused).toBe(true);
    const poll = await call(svc.app, 'GET', '/v1/queue/me', { token: fanToken });
    expect(poll.status).toBe(200);
    expect(poll.body).toMatchObject({ status: 'waiting', paused: true, estimatedWaitSeconds: null });
    expect(await row().getByTestId('state').textContent()).toBe('Paused');
  });

  test('max active and the admission rate, saved, reach the API', async () => {
    await row().getByTestId('max-active').fill('4');
    await row().getByTestId('admit-per-second').fill('7');
    await row().getByTestId('save').click();
    await row().getByTestId('row-message').filter({ hasText: 'Saved.' }).waitFor();
    expect((await queueStats(svc.app, concertId)).config).toEqual({ maxActive: 4, admitPerSecond: 7, activeTtlSeconds: 600, paused: true });
    // A refresh keeps the saved values.
    const refreshedAt = await page.getByTestId('status').textContent();
    await eventually(async () => (await page.getByTestId('status').textContent()) !== refreshedAt, 5000, 50);
    expect(await row().getByTestId('max-active').inputValue()).toBe('4');

    await row().getByTestId('max-active').fill('0');
    await row().getByTestId('save').click();
    await row().getByTestId('row-message').filter({ hasText: 'whole number' }).waitFor();
    expect((await queueStats(svc.app, concertId)).config.maxActive).toBe(4);
    await row().getByTestId('max-active').fill('4');
  });

  test('a concert made from the form appears in the API and as a row', async () => {
    const title = `Made in the console ${Date.now()}`;
    await page.getByTestId('create-title').fill(title);
    await page.getByTestId('create-seats').fill('12');
    await page.getByTestId('create-price').fill('33000');
    await page.getByTestId('create-submit').click();
    const message = page.getByTestId('create-message').filter({ hasText: /Created concert #\d+/ });
    await message.waitFor();
    const id = Number(/#(\d+)/.exec((await message.textContent())!)![1]);
    const listed = await call(svc.app, 'GET', '/v1/concerts');
    expect(listed.body.concerts ?? listed.body).toContainEqual(expect.objectContaining({ id, title }));
    const schedules = await svc.database.db.selectFrom('schedules').select(['capacity', 'price']).where('concert_id', '=', id).execute();
    expect(schedules).toEqual([{ capacity: 12, price: 33_000 }]);
    await page.getByTestId(`concert-${id}`).getByTestId('waiting').filter({ hasText: '0' }).waitFor();
    await page.screenshot({ path: artifact(SHOTS, 'mobile-created'), fullPage: true });
  });

  test('the rebuild button asks twice, then the service rebuilds', async () => {
    await page.getByTestId('rebuild').click();
    await page.getByTestId('rebuild-message').filter({ hasText: 'Press again' }).waitFor();
    await page.getByTestId('rebuild').click();
    await page.getByTestId('rebuild-message').filter({ hasText: /Rebuild started|already running/ }).waitFor();
    // The fleet goes through `rebuilding` and comes back to Redis.
    await eventually(async () => (await call(svc.app, 'GET', '/admin/status', { admin: true })).body.mode === 'redis', 15_000, 100);
  });

  test('Korean, remembered across a reload; the key only in this tab\'s session', async () => {
    await page.getByTestId('lang').click();
    expect(await page.locator('h1').textContent()).toBe('운영 콘솔');
    expect(await page.locator('html').getAttribute('lang')).toBe('ko');
    expect(await row().getByTestId('pause').textContent()).toBe('입장 재개');
    await page.reload();
    await row().getByTestId('waiting').waitFor();
    expect(await page.locator('h1').textContent()).toBe('운영 콘솔');
    expect(await row().getByTestId('state').textContent()).toBe('일시 정지');
    await row().locator('[data-testid="chart-waiting"] polyline').first().waitFor();
    await page.screenshot({ path: artifact(SHOTS, 'mobile-ko'), fullPage: true });

    const storage = await page.evaluate(() => ({ session: { ...sessionStorage }, local: { ...localStorage } }));
    expect(Object.values(storage.session)).toContain(ADMIN_KEY);
    expect(JSON.stringify(storage.local)).not.toContain(ADMIN_KEY);
    expect(requests.some((u) => u.includes(ADMIN_KEY))).toBe(false);
    expect(page.url()).toBe(`${base}/admin`);
    await page.getByTestId('lang').click();
  });

  test('a wide screen: rows beside their charts (screenshot)', async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await row().locator('[data-testid="chart-waiting"] polyline').first().waitFor();
    const chart = await row().locator('details').boundingBox();
    const stats = await row().locator('dl').boundingBox();
    expect(chart!.x).toBeGreaterThan(stats!.x + stats!.width - 1);
    await page.screenshot({ path: artifact(SHOTS, 'desktop'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
  });

  test('a browser that asks for Korean gets the console in Korean', async () => {
    const ko = await browser.newContext({ locale: 'ko-KR', extraHTTPHeaders: { 'Accept-Language': 'ko-KR,ko;q=0.9' } });
    const p = await ko.newPage();
    await p.goto(`${base}/admin`);
    await p.getByTestId('status').filter({ hasText: '관리자 키' }).waitFor();
    expect(await p.locator('h1').textContent()).toBe('운영 콘솔');
    expect(await p.locator('label[for="admin-key"]').textContent()).toBe('관리자 키 (X-Admin-Key)');
    expect(await p.getByTestId('lang').getAttribute('lang')).toBe('en');
    await ko.close();
  });

  test('a wrong key is refused and said so; nothing leaks to CSP errors', async () => {
    const other = await context.newPage();
    await other.goto(`${base}/admin`);
    await other.getByTestId('admin-key').fill('not-the-key');
    await other.getByTestId('connect').click();
    await other.getByTestId('error').filter({ hasText: '403' }).waitFor();
    expect(await other.getByTestId(`concert-${concertId}`).count()).toBe(0);
    await other.close();
    // A blocked inline script or style, or a module that failed, would show here.
    expect(consoleErrors.filter((e) => !e.startsWith('Failed to load resource'))).toEqual([]);
    expect(failedResponses).toEqual([]);
  });
});

/**
 * An hour of a sale compressed into seconds: a service whose clock the test moves, fans joining
 * minute by minute, admissions each second, a Redis outage (SQL mode, then the rebuild) and a
 * pause. The console must chart all of it as one series; the screenshot is the one in the docs.
 */
describe('operator console: an hour of history', () => {
  const MINUTE = 60_000;
  let svc: TestService;
  let server: ReturnType<typeof Bun.serve>;
  let browser: Browser;
  let concertId: number;
  const clock = new TestClock();

  beforeAll(async () => {
    const { random } = seeded('CONSOLE_HISTORY_SEED', 'console history');
    svc = await startService({ clock: clock.now, env: { CONSOLE_SAMPLE_SECONDS: '60', QUEUE_GRACE_SECONDS: '7200' } });
    concertId = (await createConcert(svc.app, [{ seats: 500, price: 99_000 }], 'Winter gala')).id;
    await patchQueue(svc.app, concertId, { maxActive: 20, admitPerSecond: 2, activeTtlSeconds: 300 });
    clock.advance(MINUTE - (clock.now() % MINUTE));
    for (let minute = 0; minute <= 60; minute++) {
      if (minute === 34) await svc.ctx.coordinator.enterSql('redis unreachable (drill)');
      if (minute === 39) expect(await svc.ctx.coordinator.rebuildNow()).toBe(true);
      if (minute === 48) await patchQueue(svc.app, concertId, { paused: true });
      if (minute === 53) await patchQueue(svc.app, concertId, { paused: false });
      // A rush in the first half hour, then a trickle; a paused queue takes nobody in.
      const paused = minute >= 48 && minute < 53;
      const joins = minute < 60 && !paused ? Math.floor((minute < 30 ? 8 : 2) + random() * (minute < 30 ? 10 : 4)) : 0;
      for (let i = 0; i < joins; i++) {
        const r = await join(svc.app, concertId, await userToken(svc.app, newUserId()));
        if (r.status !== 201) throw new Error(`join: ${r.status} ${JSON.stringify(r.body)}`);
      }
      await svc.ctx.sampler.sampleOnce(clock.now());
      if (minute === 60) break;
      for (let s = 0; s < 60; s++) {
        clock.advance(1000);
        await svc.ctx.ticker.tickOnce(clock.now());
      }
      if (svc.ctx.mode.useRedis()) await svc.ctx.writeBehind.drainOnce(Date.now());
    }
    server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: svc.app.fetch });
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    server?.stop(true);
    await svc?.stop();
  });

  test('the samples endpoint has the hour, both stores merged, with the outage as mode changes', async () => {
    const r = await call(svc.app, 'GET', `/admin/concerts/${concertId}/samples`, { admin: true });
    expect(r.status).toBe(200);
    expect(r.body.samples).toHaveLength(61);
    expect(r.body.samples.map((s: { mode: string }) => s.mode).filter((m: string) => m === 'sql')).toHaveLength(5);
    expect(r.body.modeChanges.map((c: { from: string; to: string }) => `${c.from}→${c.to}`))
      .toEqual(['redis→sql', 'sql→rebuilding', 'rebuilding→redis']);
    // Paused for five minutes: nobody admitted between those samples.
    const paused = r.body.samples.slice(49, 53).map((s: { admitPerSecond: number }) => s.admitPerSecond);
    expect(paused).toEqual([0, 0, 0, 0]);
    const sqlRows = await svc.database.db.selectFrom('console_samples').select('mode').where('concert_id', '=', concertId).execute();
    expect(sqlRows.map((x) => x.mode)).toEqual(['sql', 'sql', 'sql', 'sql', 'sql']);
  });

  test('the console charts it (the docs screenshot)', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    await page.goto(`http://127.0.0.1:${server.port}/admin`);
    await page.getByTestId('admin-key').fill(ADMIN_KEY);
    await page.getByTestId('connect').click();
    const row = page.getByTestId(`concert-${concertId}`);
    const line = row.locator('[data-testid="chart-waiting"] polyline[data-series="waiting"]');
    await line.waitFor();
    expect((await line.getAttribute('points'))!.trim().split(/\s+/)).toHaveLength(61);
    expect(await row.locator('[data-testid="chart-modes"] rect.m-sql').count()).toBe(5);
    expect(await row.locator('[data-testid="chart-modes"] li').count()).toBe(3);
    const stats = await call(svc.app, 'GET', `/admin/concerts/${concertId}/queue`, { admin: true });
    expect(await row.getByTestId('waiting').textContent()).toBe(String(stats.body.waiting));
    await page.screenshot({ path: artifact(SHOTS, 'history-desktop'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: artifact(SHOTS, 'history-mobile'), fullPage: true });
    await context.close();
  });
});
