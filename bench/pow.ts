/**
 * What a join's proof of work (JOIN_POW_BITS) costs the fan's device: solves of seeded
 * challenges by the page's solver (src/pages/assets/pow-worker.js), timed in Bun and in
 * headless Chromium.
 *
 *   npx bun bench/pow.ts --seed 7                  replayable: the challenges come from the seed
 *   --bits 16,18,20                                difficulties (default)
 *   --solves 24                                    solves per difficulty and engine
 *   --subtle-bits 16,18                            difficulties the crypto.subtle engine is timed at
 *                                                  (it is several times slower; its rate says the rest)
 *   --targets bun,chromium                         where to run (default both)
 *   --throttle 4                                   Chromium CPU throttling for the phone-class row
 *   --out bench/results/pow-<time>.md              also write the report there
 *
 * Rows: Bun Worker (JavaScriptCore) with the JS engine and with crypto.subtle; Bun's native
 * node:crypto in a tight loop (what a scripted client does on one core, for scale); Chromium's
 * dedicated Worker (V8) with each engine; and the same JS solver on a Chromium page under
 * `Emulation.setCPUThrottlingRate` (DevTools' CPU throttling; Chromium refuses it for worker
 * targets, "Operation is only supported for pages, not workers", so the phone-class row runs
 * the solver on the throttled page's main thread: same code, same V8).
 *
 * Each solve's number of attempts is geometric: time ≈ attempts / rate. Besides the measured
 * median and p90 of solve times, the report gives the model's (ln 2 and ln 10 times 2^bits /
 * rate), which is steadier than a percentile of a few dozen solves.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../chaos/prng.ts';
import { launchBrowser } from '../tests/helpers/browser.ts';

const WORKER_FILE = join(import.meta.dir, '../src/pages/assets/pow-worker.js');
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

interface Solve { ms: number; tried: number }
interface Row { where: string; engine: string; bits: number; solves: Solve[] }

/** Challenges shaped like the service's (bits.expiry.id.mac), drawn from the seed. */
function challenges(seed: number, bits: number, n: number): string[] {
  const random = mulberry32(seed * 64 + bits);
  const text = (len: number) => Array.from({ length: len }, () => B64URL[Math.floor(random() * 64)]).join('');
  return Array.from({ length: n }, () => `${bits}.${1_790_000_000_000 + Math.floor(random() * 1e9)}.${text(16)}.${text(22)}`);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function summary(row: Row) {
  const ms = row.solves.map((s) => s.ms).sort((a, b) => a - b);
  const tried = row.solves.reduce((a, s) => a + s.tried, 0);
  const rate = tried / (row.solves.reduce((a, s) => a + s.ms, 0) / 1000);
  const model = (factor: number) => (factor * 2 ** row.bits / rate) * 1000;
  return { median: quantile(ms, 0.5), p90: quantile(ms, 0.9), rate, modelMedian: model(Math.LN2), modelP90: model(Math.LN10), n: ms.length };
}

async function inBunWorker(engine: 'js' | 'subtle', list: string[], bits: number): Promise<Solve[]> {
  const out: Solve[] = [];
  for (const challenge of list) {
    const worker = new Worker(WORKER_FILE);
    const started = performance.now();
    const done = await new Promise<{ nonce: string; tried: number }>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent) => {
        if (e.data.type === 'done') resolve(e.data);
        if (e.data.type === 'error') reject(new Error(e.data.message));
      };
      worker.postMessage({ challenge, bits, engine });
    });
    out.push({ ms: performance.now() - started, tried: done.tried });
    worker.terminate();
    check(challenge, done.nonce, bits);
  }
  return out;
}

function nativeLoop(list: string[], bits: number): Solve[] {
  return list.map((challenge) => {
    const started = performance.now();
    for (let i = 0; ; i++) {
      const d = createHash('sha256').update(`${challenge}:${i.toString(36)}`).digest();
      if (bits === 0 || d.readUInt32BE(0) >>> (32 - bits) === 0) return { ms: performance.now() - started, tried: i + 1 };
    }
  });
}

/** Every answer is checked with node:crypto: a fast wrong solver would be worthless. */
function check(challenge: string, nonce: string, bits: number): void {
  const d = createHash('sha256').update(`${challenge}:${nonce}`).digest();
  if (bits > 0 && d.readUInt32BE(0) >>> (32 - bits) !== 0) throw new Error(`wrong nonce ${nonce} for ${challenge}`);
}

async function inChromium(plan: { engine: string; bits: number; list: string[] }[], throttle: number, log: (m: string) => void): Promise<{ rows: Row[]; version: string }> {
  const worker = readFileSync(WORKER_FILE);
  // The worker file also loads as a classic page script: its solver is then a global of the page.
  const server = Bun.serve({
    hostname: '127.0.0.1', port: 0,
    fetch(req) {
      if (new URL(req.url).pathname === '/pow-worker.js') return new Response(worker, { headers: { 'Content-Type': 'text/javascript' } });
      return new Response('<!doctype html><title>pow bench</title><script src="/pow-worker.js"></script>', { headers: { 'Content-Type': 'text/html' } });
    },
  });
  const browser = await launchBrowser();
  const rows: Row[] = [];
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.port}/`);
    const solveInWorker = (challenge: string, bits: number, engine: string) => page.evaluate(async ({ challenge, bits, engine }) => {
      const w = new Worker('/pow-worker.js');
      const started = performance.now();
      const done = await new Promise<{ nonce: string; tried: number }>((resolve, reject) => {
        w.onmessage = (e) => {
          if (e.data.type === 'done') resolve(e.data);
          if (e.data.type === 'error') reject(new Error(e.data.message));
        };
        w.postMessage({ challenge, bits, engine });
      });
      const ms = performance.now() - started;
      w.terminate();
      return { ms, ...done };
    }, { challenge, bits, engine });
    const solveOnPage = (challenge: string, bits: number) => page.evaluate(({ challenge, bits }) => {
      const started = performance.now();
      const done = (globalThis as unknown as { solveJs: (c: string, b: number, p: () => void) => { nonce: string; tried: number } })
        .solveJs(challenge, bits, () => {});
      return { ms: performance.now() - started, ...done };
    }, { challenge, bits });
    for (const { engine, bits, list } of plan) {
      if (engine === 'js-throttled') continue;
      log(`chromium worker ${engine} ${bits} bits`);
      const solves: Solve[] = [];
      for (const c of list) {
        const r = await solveInWorker(c, bits, engine);
        check(c, r.nonce, bits);
        solves.push({ ms: r.ms, tried: r.tried });
      }
      rows.push({ where: 'Chromium Worker', engine, bits, solves });
    }
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: throttle });
    for (const { engine, bits, list } of plan) {
      if (engine !== 'js-throttled') continue;
      log(`chromium page, ${throttle}x throttled, ${bits} bits`);
      const solves: Solve[] = [];
      for (const c of list) {
        const r = await solveOnPage(c, bits);
        check(c, r.nonce, bits);
        solves.push({ ms: r.ms, tried: r.tried });
      }
      rows.push({ where: `Chromium page, CPU ${throttle}× throttled`, engine: 'js', bits, solves });
    }
    return { rows, version: browser.version() };
  } finally {
    await browser.close();
    server.stop(true);
  }
}

export async function main(argv: string[]) {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: {
      seed: { type: 'string' }, bits: { type: 'string' }, solves: { type: 'string' }, 'subtle-bits': { type: 'string' },
      targets: { type: 'string' }, throttle: { type: 'string' }, out: { type: 'string' },
    },
  });
  const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
  const bitsList = (values.bits ?? '16,18,20').split(',').map(Number);
  const subtleBits = new Set((values['subtle-bits'] ?? '16,18').split(',').filter(Boolean).map(Number));
  const n = Number(values.solves ?? 24);
  const throttle = Number(values.throttle ?? 4);
  const targets = new Set((values.targets ?? 'bun,chromium').split(','));
  if (!Number.isInteger(seed) || !Number.isInteger(n) || n < 1 || bitsList.some((b) => !Number.isInteger(b) || b < 1 || b > 32)) {
    throw new Error('--seed, --solves: whole numbers; --bits: whole numbers 1..32');
  }
  const log = (m: string) => console.error(`[pow bench] ${m}`);
  console.log(`proof-of-work solve cost, seed ${seed} (replay with --seed ${seed}), ${n} solves per row, ${cpus().length} CPUs: ${cpus()[0]?.model ?? '?'}`);

  const rows: Row[] = [];
  let chromiumVersion = '';
  if (targets.has('bun')) {
    for (const bits of bitsList) {
      const list = challenges(seed, bits, n);
      log(`bun worker js ${bits} bits`);
      rows.push({ where: `Bun ${Bun.version} Worker`, engine: 'js', bits, solves: await inBunWorker('js', list, bits) });
      if (subtleBits.has(bits)) {
        log(`bun worker subtle ${bits} bits`);
        rows.push({ where: `Bun ${Bun.version} Worker`, engine: 'subtle', bits, solves: await inBunWorker('subtle', list, bits) });
      }
      log(`bun native ${bits} bits`);
      rows.push({ where: `Bun ${Bun.version}, node:crypto loop (scripted client, 1 core)`, engine: 'native', bits, solves: nativeLoop(list, bits) });
    }
  }
  if (targets.has('chromium')) {
    const plan = bitsList.flatMap((bits) => {
      const list = challenges(seed, bits, n);
      return [
        { engine: 'js', bits, list },
        ...(subtleBits.has(bits) ? [{ engine: 'subtle', bits, list }] : []),
        { engine: 'js-throttled', bits, list },
      ];
    });
    const r = await inChromium(plan, throttle, log);
    rows.push(...r.rows.map((row) => ({ ...row, where: row.where.replace('Chromium', `Chromium ${r.version}`) })));
    chromiumVersion = r.version;
  }

  const lines = [
    `seed ${seed}; ${n} solves per row; Chromium ${chromiumVersion || '-'}; ${cpus().length} × ${cpus()[0]?.model ?? '?'}; load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`,
    '',
    '| where | engine | bits | hashes/s | median ms | p90 ms | model median ms | model p90 ms |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows.sort((a, b) => a.where.localeCompare(b.where) || a.engine.localeCompare(b.engine) || a.bits - b.bits)) {
    const s = summary(row);
    lines.push(`| ${row.where} | ${row.engine} | ${row.bits} | ${Math.round(s.rate).toLocaleString('en')} | ${s.median.toFixed(0)} | ${s.p90.toFixed(0)} | ${s.modelMedian.toFixed(0)} | ${s.modelP90.toFixed(0)} |`);
  }
  const report = lines.join('\n');
  console.log(report);
  if (values.out) writeFileSync(values.out, `# Proof-of-work solve cost\n\n\`npx bun bench/pow.ts ${argv.join(' ')}\`\n\n${report}\n`);
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
