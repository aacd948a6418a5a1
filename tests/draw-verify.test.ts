import { expect, test } from 'bun:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drawOrder } from '../src/modules/draw/algorithm.ts';
import { keepAliveUntilOpening, openSale, prequeue, saleConcert } from './helpers/draw.ts';
import { describeEach, newUserId } from './helpers/harness.ts';
import { call } from './helpers/http.ts';

const SCRIPT = join(import.meta.dir, '..', 'scripts', 'verify-draw.ts');

async function runScript(args: string[]) {
  const proc = Bun.spawn([process.execPath, SCRIPT, ...args], { stdout: 'pipe', stderr: 'pipe' });
  const [out, err, code] = [await new Response(proc.stdout).text(), await new Response(proc.stderr).text(), await proc.exited];
  return { out, err, code };
}

describeEach('verify-draw script', {}, (h) => {
  test('recomputes a real draw served over HTTP, and catches a tampered one', async () => {
    const c = await saleConcert(h);
    const fans = [];
    for (let i = 0; i < 12; i++) fans.push(await prequeue(h, c.id, newUserId()));
    await keepAliveUntilOpening(h, c.saleStartsAt, fans.map((f) => f.token));
    await openSale(h, c.saleStartsAt);
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: h.app.fetch });
    try {
      const ok = await runScript([`http://127.0.0.1:${server.port}`, String(c.id), '--ticket', fans[3]!.ticket]);
      expect({ code: ok.code, err: ok.err }).toEqual({ code: 0, err: '' });
      expect(ok.out).toContain('OK:');
      expect(ok.out).toContain('tickets: 12');
    } finally {
      server.stop(true);
    }
    const draw = (await call(h.app, 'GET', `/v1/concerts/${c.id}/draw`)).body;
    const dir = mkdtempSync(join(tmpdir(), 'draw-'));
    const swapped = [...draw.tickets];
    [swapped[0], swapped[1]] = [swapped[1], swapped[0]];
    writeFileSync(join(dir, 'swapped.json'), JSON.stringify({ ...draw, tickets: swapped }));
    const bad = await runScript(['--file', join(dir, 'swapped.json')]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('FAIL: the order differs');
    // A ticket slipped in after the draw: the verifier counts it, and passes only if the whole
    // list still recomputes (by this seed, the last-sorted ticket may stay last: 1 seed in 13), as
    // the service's own implementation of the algorithm says.
    const padded = [...draw.tickets, 'f'.repeat(64)];
    writeFileSync(join(dir, 'extra.json'), JSON.stringify({ ...draw, tickets: padded }));
    const extra = await runScript(['--file', join(dir, 'extra.json')]);
    expect(extra.out).toContain('tickets: 13');
    const recomputes = drawOrder(draw.seed, padded).every((t, i) => t === padded[i]);
    expect(extra.code).toBe(recomputes ? 0 : 1);
    writeFileSync(join(dir, 'seed.json'), JSON.stringify({ ...draw, seed: `${draw.seed}x` }));
    const seed = await runScript(['--file', join(dir, 'seed.json'), '--commitment', c.body.draw.commitment]);
    expect(seed.code).toBe(1);
    expect(seed.out).toContain('FAIL: the seed does not hash');
  });
});
