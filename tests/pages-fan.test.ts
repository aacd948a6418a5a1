import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { artifact, launchBrowser } from './helpers/browser.ts';
import { call, createConcert, eventually, futureIso, join, userToken } from './helpers/http.ts';
import { patchQueue } from './helpers/harness.ts';
import { signJwt } from './helpers/idp.ts';
import { startService, type TestService } from './helpers/service.ts';
import * as schemas from '../src/http/schemas.ts';

/**
 * The fan's pages in a real headless Chromium against a real listening service (its own
 * redis-server and database, admission ticks in real time). Screenshots of every step go to
 * test-artifacts/pages-fan/.
 */

const SHOTS = 'pages-fan';
const HOSTILE = '<img src=x onerror="window.__pwned=1">';
const ID_SECRET = 'identity-provider-secret-at-least-32-bytes!';

interface Served { svc: TestService; server: ReturnType<typeof Bun.serve>; base: string }

async function serve(env: Record<string, string>): Promise<Served> {
  const svc = await startService({ env });
  // Admissions, the write-behind and the sweeper in real time. No coordinator: the mode moves
  // to SQL only when the pages' own requests trip the breaker, so a test sees those requests fail.
  svc.ctx.ticker.start();
  svc.ctx.writeBehind.start();
  svc.ctx.sweeper.start();
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (req) => svc.app.fetch(req) });
  return { svc, server, base: `http://127.0.0.1:${server.port}` };
}

/** Every URL a page asks for or shows, and its console: none may carry a token (JWTs start with eyJ). */
function watchForTokens(page: Page, seen: string[]) {
  page.on('request', (r) => seen.push(r.url()));
  page.on('framenavigated', (f) => seen.push(f.url()));
  page.on('console', (m) => seen.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => seen.push(`pageerror: ${e.message}`));
}

const text = (page: Page, id: string) => page.getByTestId(id).innerText();

/** Signs a fan in (open mode) and joins the concert's line from its page. */
async function signInAndJoin(page: Page, base: string, concertId: number, userId: number) {
  await page.goto(`${base}/concerts/${concertId}`);
  await page.getByTestId('user-id').fill(String(userId));
  await page.getByTestId('sign-in').click();
  await page.getByTestId('join').click();
  await page.getByTestId('queue-status').waitFor();
}

/** One active slot, taken by a user of the API: whoever joins next waits for the whole test. */
async function takeOnlySlot(svc: TestService, concertId: number, userId: number) {
  await patchQueue(svc.app, concertId, { maxActive: 1 });
  const first = await join(svc.app, concertId, await userToken(svc.app, userId));
  await eventually(async () => (await call(svc.app, 'GET', '/v1/queue/me', { token: first.body.token })).body.status === 'active');
}

describe('fan pages in Chromium', () => {
  let open: Served;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const urls: string[] = [];
  /** The one URL that may carry a token: the identity provider's redirect, handed to the page by the test. */
  let handedOver = '';
  const newPage = async (opts: Parameters<Browser['newContext']>[0] = {}) => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, ...opts });
    contexts.push(context);
    const page = await context.newPage();
    watchForTokens(page, urls);
    return page;
  };

  beforeAll(async () => {
    [open, browser] = await Promise.all([
      serve({ ADMISSION_TICK_MS: '100', REDIS_TIMEOUT_MS: '400', QUEUE_GRACE_SECONDS: '12' }),
      launchBrowser(),
    ]);
  });

  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    open?.server.stop(true);
    await open?.svc.stop();
  });

  test('the weight of the fan page: HTML, scripts and CSS under 50 KB, with the proof-of-work worker too', async () => {
    const html = await (await fetch(`${open.base}/concerts/1`)).text();
    const files = new Map<string, number>([['/concerts/1', Buffer.byteLength(html)]]);
    const queue = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    while (queue.length) {
      const path = queue.shift()!;
      if (files.has(path)) continue;
      const res = await fetch(`${open.base}${path}`);
      expect(res.status).toBe(200);
      const body = await res.text();
      files.set(path, Buffer.byteLength(body));
      for (const m of body.matchAll(/from '\.\/([\w.-]+\.js)'/g)) queue.push(`/assets/${m[1]}`);
    }
    const page = [...files.values()].reduce((a, b) => a + b, 0);
    // The worker is started only when a join asks for proof of work; it counts when it is there.
    const worker = await fetch(`${open.base}/assets/pow-worker.js`);
    const workerBytes = worker.status === 200 ? Buffer.byteLength(await worker.text()) : 0;
    const kb = (n: number) => `${n} bytes (${(n / 1024).toFixed(1)} KB)`;
    console.log(`fan page weight, uncompressed: ${kb(page)} as loaded, ${kb(page + workerBytes)} with pow-worker.js `
      + `(${workerBytes ? kb(workerBytes) : 'not present'}); files: ${JSON.stringify(Object.fromEntries(files))}`);
    expect(files.has('/assets/fan-concert.js')).toBe(true);
    expect(page).toBeLessThan(50 * 1024);
    expect(page + workerBytes).toBeLessThan(50 * 1024);
  });

  test('two fans: A buys while B waits, then B is admitted by itself and sees the seat sold; a reload keeps B\'s place', async () => {
    const { svc, base } = open;
    const concert = await createConcert(svc.app, [{ seats: 12, price: 30_000 }], 'Spring Night');
    await patchQueue(svc.app, concert.id, { maxActive: 1 });

    const a = await newPage();
    const b = await newPage();
    await a.goto(`${base}/`);
    await a.getByTestId(`concert-link-${concert.id}`).click();
    await a.waitForURL(`${base}/concerts/${concert.id}`);
    await a.screenshot({ path: artifact(SHOTS, '01-a-sign-in') });
    await signInAndJoin(a, base, concert.id, 501);
    await a.getByTestId('seat-3').waitFor();
    await a.screenshot({ path: artifact(SHOTS, '02-a-admitted'), fullPage: true });

    await signInAndJoin(b, base, concert.id, 502);
    await b.getByTestId('position').filter({ hasText: /^1$/ }).waitFor();
    expect(await text(b, 'ahead')).toBe('0');
    expect((await text(b, 'eta')).length).toBeGreaterThan(0);
    expect(await b.getByTestId('shop').isHidden()).toBe(true);
    expect(await b.locator('[aria-live=polite] [data-testid=position]').count()).toBe(1);
    await b.screenshot({ path: artifact(SHOTS, '03-b-waiting'), fullPage: true });
    await b.locator('main').screenshot({ path: artifact(SHOTS, 'content-waiting') });

    // A reload keeps the place: the same position, and no new join.
    const joins: string[] = [];
    b.on('request', (r) => { if (r.method() === 'POST' && r.url().endsWith('/queue')) joins.push(r.url()); });
    await b.reload();
    await b.getByTestId('position').filter({ hasText: /^1$/ }).waitFor();
    expect(await b.getByTestId('join').isHidden()).toBe(true);
    expect(joins).toEqual([]);
    expect(await call(svc.app, 'GET', `/admin/concerts/${concert.id}/queue`, { admin: true }).then((r) => r.body.waiting)).toBe(1);
    await b.screenshot({ path: artifact(SHOTS, '04-b-after-reload'), fullPage: true });

    // Paused by the operator: said in words, no estimate promised; resumed: the words go.
    await patchQueue(svc.app, concert.id, { paused: true });
    await b.getByTestId('paused').waitFor({ timeout: 10_000 });
    expect(await text(b, 'eta')).toBe('not known yet');
    await b.screenshot({ path: artifact(SHOTS, '04b-b-paused'), fullPage: true });
    await patchQueue(svc.app, concert.id, { paused: false });
    await b.getByTestId('paused').waitFor({ state: 'hidden', timeout: 10_000 });

    // A holds, charges, pays.
    await a.getByTestId('seat-3').click();
    await a.waitForSelector('[data-testid=seat-3][data-status=held][data-mine=true]');
    await a.getByTestId('hold-countdown').waitFor();
    expect(await text(a, 'hold-countdown')).toMatch(/\d:\d\d/);
    // Paying without money: a clear message, not a blank screen.
    await a.getByTestId('pay').click();
    await a.getByTestId('error').filter({ hasText: /balance/i }).waitFor();
    await a.screenshot({ path: artifact(SHOTS, '05-a-held-no-money'), fullPage: true });
    await a.getByTestId('charge-amount').fill('30000');
    await a.getByTestId('charge').click();
    await a.getByTestId('balance').filter({ hasText: '30,000' }).waitFor();
    expect(await text(a, 'error')).toBe('');
    await a.locator('main').screenshot({ path: artifact(SHOTS, 'content-seats') });
    await a.getByTestId('pay').click();
    await a.getByTestId('confirmation').waitFor();
    const [payment] = await svc.ctx.db.selectFrom('payments').select('reservation_id').where('seat_number', '=', 3)
      .where('schedule_id', '=', concert.schedules[0]!.id).execute();
    expect(await text(a, 'confirmation')).toContain(String(payment!.reservation_id));
    expect(await text(a, 'error')).toBe('');
    await a.screenshot({ path: artifact(SHOTS, '06-a-confirmation'), fullPage: true });

    // B's page notices the admission by polling and sees A's seat sold.
    await b.waitForSelector('[data-testid=seat-3][data-status=sold]', { timeout: 15_000 });
    expect(await b.getByTestId('seat-4').getAttribute('data-status')).toBe('available');
    await b.screenshot({ path: artifact(SHOTS, '07-b-admitted-seat-sold'), fullPage: true });
    // The watch over URLs (checked after every test) did see the pages' API calls.
    expect(urls.filter((u) => u.endsWith('/v1/queue/me')).length).toBeGreaterThan(2);
  }, 45_000);

  test('a hostile concert title is text, never markup, on the list and on its page', async () => {
    const { svc, base } = open;
    const concert = await createConcert(svc.app, [{ seats: 4, price: 1000 }], HOSTILE);
    const page = await newPage();
    await page.goto(`${base}/`);
    const link = page.getByTestId(`concert-link-${concert.id}`);
    await link.waitFor();
    expect(await link.locator('.title').innerText()).toBe(HOSTILE);
    await page.screenshot({ path: artifact(SHOTS, '08-hostile-title-list'), fullPage: true });
    await link.click();
    await page.getByTestId('concert-title').filter({ hasText: HOSTILE }).waitFor();
    expect(await text(page, 'concert-title')).toBe(HOSTILE);
    expect(await page.evaluate('typeof window.__pwned')).toBe('undefined');
    expect(await page.locator('main img').count()).toBe(0);
    await page.screenshot({ path: artifact(SHOTS, '09-hostile-title-page') });
  });

  test('a lost place is explained and the fan can join again', async () => {
    const { svc, base } = open;
    const concert = await createConcert(svc.app, [{ seats: 4, price: 1000 }], 'Encore');
    await takeOnlySlot(svc, concert.id, 700);
    const page = await newPage();
    await signInAndJoin(page, base, concert.id, 701);
    await page.getByTestId('position').filter({ hasText: /^\d+$/ }).waitFor();
    // The place ends behind the page's back (here: left with the page's own token, as another tab could).
    const token = await page.evaluate((key) => JSON.parse(sessionStorage.getItem(key)!).queueToken as string, `fan.concert.${concert.id}`);
    expect((await call(svc.app, 'DELETE', '/v1/queue/me', { token })).status).toBe(204);
    await page.getByTestId('lost').waitFor({ timeout: 15_000 });
    expect(await page.getByTestId('queue-status').isHidden()).toBe(true);
    expect(await text(page, 'error')).toBe('');
    await page.screenshot({ path: artifact(SHOTS, '10a-place-lost'), fullPage: true });
    await page.getByTestId('rejoin').click();
    await page.getByTestId('position').filter({ hasText: /^\d+$/ }).waitFor();
    expect(await page.getByTestId('lost').isHidden()).toBe(true);
    expect(await call(svc.app, 'GET', `/admin/concerts/${concert.id}/queue`, { admin: true }).then((r) => r.body.waiting)).toBe(1);
  }, 30_000);

  test('security headers on the pages and their assets', async () => {
    for (const path of ['/', '/concerts/1', '/assets/fan.js', '/assets/fan-concert.js', '/assets/site.css', '/assets/fan.css']) {
      const res = await fetch(`${open.base}${path}`);
      expect(res.status).toBe(200);
      const csp = res.headers.get('Content-Security-Policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("connect-src 'self'");
      expect(csp).toContain("worker-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers.get('X-Content-Type-Options')).toBe('nosniff');
      expect(res.headers.get('Referrer-Policy')).toBe('no-referrer');
    }
  });

  test('Korean from Accept-Language; the switch changes the language and is remembered', async () => {
    const page = await newPage({ locale: 'ko-KR' });
    await page.goto(`${open.base}/`);
    expect(await page.locator('html').getAttribute('lang')).toBe('ko');
    await page.waitForSelector('h1:text("공연")');
    await page.screenshot({ path: artifact(SHOTS, '10-korean-list'), fullPage: true });
    const concert = await createConcert(open.svc.app, [{ seats: 4, price: 1000 }], 'Autumn');
    await takeOnlySlot(open.svc, concert.id, 800);
    await page.goto(`${open.base}/concerts/${concert.id}`);
    await page.getByText('사용자 번호').waitFor();
    expect(await page.getByTestId('sign-in').innerText()).toBe('로그인');
    // A wrong user number is explained in Korean.
    await page.getByTestId('user-id').fill('abc');
    await page.getByTestId('sign-in').click();
    await page.getByTestId('error').filter({ hasText: '사용자 번호' }).waitFor();
    await page.screenshot({ path: artifact(SHOTS, '11-korean-sign-in'), fullPage: true });

    await page.getByTestId('lang-switch').click();
    expect(await page.getByTestId('sign-in').innerText()).toBe('Sign in');
    expect(await text(page, 'error')).toContain('user number');
    expect(await page.locator('html').getAttribute('lang')).toBe('en');
    await page.reload();
    expect(await page.getByTestId('sign-in').innerText()).toBe('Sign in');
    await page.getByTestId('lang-switch').click();
    expect(await page.getByTestId('sign-in').innerText()).toBe('로그인');
    // Waiting in Korean (the one active slot is taken).
    await page.getByTestId('user-id').fill('801');
    await page.getByTestId('sign-in').click();
    await page.getByTestId('join').click();
    await page.getByTestId('position').filter({ hasText: /^\d+$/ }).waitFor();
    expect(await page.getByText('내 대기 순서').isVisible()).toBe(true);
    await page.locator('main').screenshot({ path: artifact(SHOTS, 'content-waiting-ko') });
  });

  test('jwt mode: the identity token is taken from the fragment and wiped from the address bar', async () => {
    // Queue tokens live 4 s: the page must carry on with the refreshed tokens its polls bring.
    const jwt = await serve({ AUTH_MODE: 'jwt', AUTH_SHARED_SECRET: ID_SECRET, QUEUE_TOKEN_TTL_SECONDS: '4' });
    try {
      const concert = await createConcert(jwt.svc.app, [{ seats: 4, price: 1000 }], 'Identity');
      const now = Math.floor(Date.now() / 1000);
      const idToken = signJwt({ sub: 'fan-jwt-1', iat: now, exp: now + 300 }, { alg: 'HS256', secret: ID_SECRET });
      const page = await newPage();
      handedOver = `${jwt.base}/concerts/${concert.id}#id_token=${idToken}`;
      await page.goto(handedOver);
      expect(page.url()).toBe(`${jwt.base}/concerts/${concert.id}`);
      await page.getByTestId('join').waitFor();
      expect(await page.evaluate('location.hash')).toBe('');
      await page.getByTestId('join').click();
      await page.getByTestId('queue-status').waitFor();
      await page.getByTestId('seat-1').waitFor();
      expect(page.url()).not.toContain('eyJ');
      await page.screenshot({ path: artifact(SHOTS, '12-jwt-signed-in'), fullPage: true });

      const stored = () => page.evaluate((key) => JSON.parse(sessionStorage.getItem(key)!).queueToken as string, `fan.concert.${concert.id}`);
      const firstToken = await stored();
      const firstExp = JSON.parse(Buffer.from(firstToken.split('.')[1]!, 'base64url').toString()).exp * 1000;
      await eventually(async () => (await stored()) !== firstToken, 10_000, 100);
      // Past the first token's expiry and the service's 5 s leeway, the page still acts.
      await eventually(() => Date.now() > firstExp + 6000, 15_000, 100);
      await page.getByTestId('seat-2').click();
      await page.waitForSelector('[data-testid=seat-2][data-status=held][data-mine=true]');
      expect(await text(page, 'error')).toBe('');
      // The user-id form refuses politely in this mode.
      const other = await newPage();
      await other.goto(`${jwt.base}/concerts/${concert.id}`);
      await other.getByTestId('user-id').fill('7');
      await other.getByTestId('sign-in').click();
      await other.getByText('sign-in link').waitFor();
      expect(await text(other, 'error')).toBe('');
    } finally {
      jwt.server.stop(true);
      await jwt.svc.stop();
    }
  }, 30_000);

  test('Redis killed while a fan waits: a calm "retrying", never the error screen, then the place again from SQL', async () => {
    // A service of its own: only this fan's requests reach it, so they are the ones that meet the dead Redis.
    const own = await serve({ ADMISSION_TICK_MS: '100', REDIS_TIMEOUT_MS: '400', QUEUE_GRACE_SECONDS: '12' });
    const { svc, base } = own;
    try {
      const concert = await createConcert(svc.app, [{ seats: 4, price: 1000 }], 'Storm');
      await takeOnlySlot(svc, concert.id, 601);

      const page = await newPage();
      await signInAndJoin(page, base, concert.id, 602);
      await page.getByTestId('position').filter({ hasText: /^1$/ }).waitFor();
      // Whatever the error line ever says from here on is kept.
      await page.evaluate(`{
        const box = document.querySelector('[data-testid=error]');
        new MutationObserver(() => { if (box.textContent) window.__errorShown = box.textContent; })
          .observe(box, { childList: true, characterData: true, subtree: true });
      }`);
      await svc.ctx.writeBehind.drainOnce();

      await svc.redisProc.kill();
      await page.getByTestId('retrying').waitFor({ timeout: 15_000 });
      expect(await page.getByTestId('queue-status').isVisible()).toBe(true);
      await page.screenshot({ path: artifact(SHOTS, '13-redis-down-retrying'), fullPage: true });

      await page.getByTestId('retrying').waitFor({ state: 'hidden', timeout: 20_000 });
      expect(svc.ctx.mode.current).toBe('sql');
      expect(await text(page, 'position')).toBe('1');
      expect(await page.getByTestId('lost').isHidden()).toBe(true);
      expect(await page.evaluate('window.__errorShown ?? null')).toBeNull();
      await page.screenshot({ path: artifact(SHOTS, '14-sql-mode-place-kept'), fullPage: true });
    } finally {
      own.server.stop(true);
      await own.svc.stop();
    }
  }, 45_000);

  // Proof of work and scheduled sales are parts of the API contract that services may not have
  // yet (their join body schemas say): the page's side is tested wherever the service has them.
  test.skipIf(!('powAnswer' in schemas))('proof of work: the page solves the join challenge in the worker and joins', async () => {
    const own = await serve({ JOIN_POW_BITS: '12', ADMISSION_TICK_MS: '100' });
    try {
      const concert = await createConcert(own.svc.app, [{ seats: 4, price: 1000 }], 'Puzzle');
      const page = await newPage();
      const joins: { status: number; body: string }[] = [];
      page.on('response', (r) => {
        if (r.url().endsWith('/queue')) joins.push({ status: r.status(), body: r.request().postData() ?? '' });
      });
      await signInAndJoin(page, own.base, concert.id, 901);
      await page.getByTestId('seat-1').waitFor();
      expect(joins.map((j) => j.status)).toContain(428);
      expect(joins.at(-1)!.status).toBe(201);
      expect(JSON.parse(joins.at(-1)!.body).pow.nonce).toBeString();
      expect(await text(page, 'pow-progress')).toMatch(/\d/);
      expect(await text(page, 'error')).toBe('');
    } finally {
      own.server.stop(true);
      await own.svc.stop();
    }
  }, 30_000);

  test.skipIf(!('drawNonce' in schemas))('scheduled sale: a countdown and the draw ticket, then the fan is drawn in by itself', async () => {
    const own = await serve({ ADMISSION_TICK_MS: '100' });
    own.svc.ctx.startJobs();
    try {
      const saleStartsAt = new Date(Date.now() + 5000).toISOString();
      const r = await call(own.svc.app, 'POST', '/admin/concerts', {
        admin: true, body: { title: 'Opening', saleStartsAt, schedules: [{ date: futureIso(30), seats: 4, price: 1000 }] },
      });
      expect(r.status).toBe(201);
      const page = await newPage();
      const sent: string[] = [];
      page.on('request', (q) => { if (q.url().endsWith('/queue')) sent.push(q.postData() ?? ''); });
      await page.goto(`${own.base}/concerts/${r.body.id}`);
      await page.getByTestId('user-id').fill('902');
      await page.getByTestId('sign-in').click();
      await page.getByTestId('join').click();
      await page.getByTestId('prequeue').waitFor();
      expect(await text(page, 'prequeue-countdown')).toMatch(/\d:\d\d/);
      expect(JSON.parse(sent[0]!).drawNonce).toMatch(/^[0-9a-f]{32}$/);
      const stored = await page.evaluate((key) => JSON.parse(sessionStorage.getItem(key)!).drawTicket as string, `fan.concert.${r.body.id}`);
      expect(await text(page, 'draw-ticket')).toContain(stored);
      await page.screenshot({ path: artifact(SHOTS, '15-prequeue'), fullPage: true });
      await page.getByTestId('seat-1').waitFor({ timeout: 20_000 });
    } finally {
      own.server.stop(true);
      await own.svc.stop();
    }
  }, 40_000);

  // After every test: no token in any URL the pages asked for or showed, nor in their console; no page error.
  afterEach(() => {
    expect(urls.filter((u) => u.includes('eyJ') && u !== handedOver)).toEqual([]);
    expect(urls.filter((u) => u.startsWith('pageerror'))).toEqual([]);
  });
});
