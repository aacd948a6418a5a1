/**
 * tests/tiers.ts names every test file exactly once: a new file left out of the manifest would
 * run only under `npm test`, one listed twice would run twice, a stale name would run nothing.
 */
import { expect, test } from 'bun:test';
import { readdirSync } from 'node:fs';
import { TIERS } from './tiers.ts';

const testFiles = readdirSync(import.meta.dir).filter((f) => f.endsWith('.test.ts')).sort();
const listed = Object.entries(TIERS).flatMap(([tier, files]) => files.map((file) => ({ tier, file })));

test('every tests/*.test.ts file is in a tier', () => {
  const inATier = new Set(listed.map((l) => l.file));
  expect(testFiles.filter((f) => !inATier.has(f))).toEqual([]);
});

test('no file is listed twice, in one tier or in two', () => {
  const tiersOf = new Map<string, string[]>();
  for (const { tier, file } of listed) tiersOf.set(file, [...(tiersOf.get(file) ?? []), tier]);
  const twice = [...tiersOf].filter(([, tiers]) => tiers.length > 1).map(([file, tiers]) => `${file}: ${tiers.join(', ')}`);
  expect(twice).toEqual([]);
});

test('every file the manifest names exists', () => {
  const present = new Set(testFiles);
  expect(listed.filter((l) => !present.has(l.file)).map((l) => `${l.tier}: ${l.file}`)).toEqual([]);
});
