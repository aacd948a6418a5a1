/**
 * The page's proof-of-work solver (src/pages/assets/pow-worker.js) in headless Chromium: served
 * by a real listening service with JOIN_POW_BITS set, it solves the service's own challenge and
 * the service takes the answer (201); its messages follow the protocol the fan page relies on.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser } from './helpers/browser.ts';
import { createConcert, userToken } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';

const BITS = 16;
let svc: TestService;
let server: ReturnType<typeof Bun.serve>;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  svc = await startService({ env: { JOIN_POW_BITS: String(BITS) } });
  server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: (req, srv) => svc.app.fetch(req, srv) });
  browser = await launchBrowser();
  page = await browser.newPage();
  // A page of the service, so the worker loads under the service's own Content-Security-Policy.
  await page.goto(`http://127.0.0.1:${server.port}/`);
});

afterAll(async () => {
  await browser?.close();
  server?.stop(true);
  await svc?.stop();
});

type Message = { type: 'progress'; tried: number } | { type: 'done'; nonce: string; tried: number } | { type: 'error'; message: string };

/** Runs one solve in a fresh Worker from the page; every message it posted, in order. */
function solveInPage(data: unknown): Promise<Message[]> {
  return page.evaluate((data) => new Promise<Message[]>((resolve) => {
    const seen: Message[] = [];
    const worker = new Worker('/assets/pow-worker.js');
    worker.onmessage = (e) => {
      seen.push(e.data);
      if (e.data.type !== 'progress') {
        worker.terminate();
        resolve(seen);
      }
    };
    worker.postMessage(data);
  }), data);
}

const leadingZeroBitsOk = (challenge: string, nonce: string, bits: number) =>
  createHash('sha256').update(`${challenge}:${nonce}`).digest().readUInt32BE(0) >>> (32 - bits) === 0;

test('the worker solves a real challenge in Chromium and the service accepts the answer', async () => {
  const concert = await createConcert(svc.app);
  const token = await userToken(svc.app, 4242);
  const joined = await page.evaluate(async ({ concertId, token }) => {
    const challenge = await (await fetch('/v1/challenge')).json() as { challenge: string; bits: number };
    const done = await new Promise<{ nonce: string; tried: number }>((resolve) => {
      const worker = new Worker('/assets/pow-worker.js');
      worker.onmessage = (e) => { if (e.data.type === 'done') resolve(e.data); };
      worker.postMessage({ challenge: challenge.challenge, bits: challenge.bits });
    });
    const res = await fetch(`/v1/concerts/${concertId}/queue`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ pow: { challenge: challenge.challenge, nonce: done.nonce } }),
    });
    return { status: res.status, body: await res.json() as { status: string; position: number }, bits: challenge.bits, nonce: done.nonce, challenge: challenge.challenge };
  }, { concertId: concert.id, token });
  expect(joined.bits).toBe(BITS);
  expect(leadingZeroBitsOk(joined.challenge, joined.nonce, BITS)).toBe(true);
  expect([joined.status, joined.body.status, joined.body.position]).toEqual([201, 'waiting', 1]);
}, 60_000);

test('progress every 65,536 attempts, then done with a nonce that holds; the crypto.subtle engine agrees', async () => {
  // A fixed challenge: the JS engine's attempts depend only on it, so the messages are known.
  const challenge = 'fixed-challenge-for-the-protocol-test';
  const seen = await solveInPage({ challenge, bits: 18 });
  const done = seen.at(-1)!;
  if (done.type !== 'done') throw new Error(`no answer: ${JSON.stringify(done)}`);
  expect(done.nonce).toMatch(/^[\x21-\x7e]{1,64}$/);
  expect(leadingZeroBitsOk(challenge, done.nonce, 18)).toBe(true);
  const progress = seen.slice(0, -1).map((m) => (m.type === 'progress' ? m.tried : -1));
  expect(progress.length).toBeGreaterThan(0);
  expect(progress).toEqual(Array.from({ length: Math.floor((done.tried - 1) / 65_536) }, (_v, i) => (i + 1) * 65_536));
  // The same run again: the same messages (the solver is deterministic).
  expect(await solveInPage({ challenge, bits: 18 })).toEqual(seen);
  const viaSubtle = (await solveInPage({ challenge, bits: 12, engine: 'subtle' })).at(-1)!;
  expect(viaSubtle.type === 'done' && leadingZeroBitsOk(challenge, viaSubtle.nonce, 12)).toBe(true);
}, 60_000);

test('a message it cannot use answers an error', async () => {
  for (const data of [{ challenge: 'x', bits: 33 }, { challenge: '', bits: 8 }, { bits: 8 }, null, { challenge: 'x', bits: 1.5 }]) {
    expect((await solveInPage(data)).map((m) => m.type)).toEqual(['error']);
  }
}, 60_000);
