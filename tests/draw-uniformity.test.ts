import { expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { drawCommitment, drawOrder, drawTicket, uniformIndex } from '../src/modules/draw/algorithm.ts';

/** Every random choice here comes from this printed seed; set DRAW_TEST_SEED to replay. */
const SEED = process.env.DRAW_TEST_SEED ?? String(Date.now());
console.log(`draw uniformity seed: ${SEED}`);

const N = 10;
const DRAWS = 20_000;
// Chi-square with (N-1)^2 = 81 degrees of freedom over the N x N table (ticket, place): mean 81,
// sd ~12.7. 140 is past the 99.99th percentile: a fair draw fails about once in 10,000 runs.
const CHI2_LIMIT = 140;

test('each ticket lands on each place equally often (chi-square, 20,000 draws of 10 tickets)', () => {
  const tickets = Array.from({ length: N }, (_, i) => drawTicket(`${SEED}`.padEnd(16, '0'), i + 1));
  const counts = Array.from({ length: N }, () => new Array<number>(N).fill(0));
  for (let d = 0; d < DRAWS; d++) {
    const seed = createHash('sha256').update(`${SEED}:${d}`).digest('hex');
    const order = drawOrder(seed, tickets);
    order.forEach((t, place) => counts[tickets.indexOf(t)]![place]!++);
  }
  const expected = DRAWS / N;
  let chi2 = 0;
  for (const row of counts) for (const c of row) chi2 += (c - expected) ** 2 / expected;
  console.log(`chi-square ${chi2.toFixed(1)} (81 degrees of freedom, limit ${CHI2_LIMIT})`);
  expect(chi2).toBeLessThan(CHI2_LIMIT);
  // Every ordering of 3 tickets comes up: the shuffle reaches all permutations.
  const seen = new Set<string>();
  for (let d = 0; d < 600; d++) seen.add(drawOrder(`${SEED}/${d}`, ['a', 'b', 'c']).join(''));
  expect(seen.size).toBe(6);
});

test('the draw is a pure function of the seed and the set of tickets', () => {
  const tickets = Array.from({ length: 50 }, (_, i) => drawTicket('0123456789abcdef', i));
  const once = drawOrder(SEED, tickets);
  expect(drawOrder(SEED, [...tickets].reverse())).toEqual(once);
  expect([...once].sort()).toEqual([...tickets].sort());
  expect(drawOrder(`${SEED}!`, tickets)).not.toEqual(once);
  expect(drawCommitment('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('rejection sampling keeps indices in range and unbiased for awkward bounds', () => {
  const key = Buffer.from(SEED);
  const bound = 3;
  const counts = [0, 0, 0];
  for (let i = 0; i < 30_000; i++) counts[uniformIndex(key, i, bound)]!++;
  const chi2 = counts.reduce((a, c) => a + (c - 10_000) ** 2 / 10_000, 0);
  // 2 degrees of freedom: 18.4 is the 99.99th percentile.
  expect(chi2).toBeLessThan(18.4);
});
