/**
 * Adds up the summaries of several fault-checker runs (the JSON files `npm run chaos` writes):
 * runs, minutes of faults, operations, faults by kind, the longest unavailability per fault
 * kind, and violations per invariant.
 *
 *   bun chaos/summary.ts chaos/results/chaos-*Z.json
 */
import { readFileSync } from 'node:fs';

interface Summary {
  seed: number;
  minutes: number;
  wallSeconds: number;
  ok: boolean;
  ops: { total: number };
  faults: { byKind: Record<string, number> };
  unavailability: Record<string, { longestMs: number }>;
  stats: { places: number; holds: number; payments: number; polls: number };
  violationCounts: Record<string, number>;
}

const files = process.argv.slice(2).filter((f) => /\d{2}Z\.json$/.test(f));
if (files.length === 0) {
  console.error('usage: bun chaos/summary.ts <summary.json> ...');
  process.exit(2);
}
const runs = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Summary);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const faults: Record<string, number> = {};
const longest: Record<string, number> = {};
const violations: Record<string, number> = {};
for (const r of runs) {
  for (const [k, n] of Object.entries(r.faults.byKind)) faults[k] = (faults[k] ?? 0) + n;
  for (const [k, u] of Object.entries(r.unavailability ?? {})) longest[k] = Math.max(longest[k] ?? 0, u.longestMs);
  for (const [k, n] of Object.entries(r.violationCounts)) violations[k] = (violations[k] ?? 0) + n;
}
console.log(`runs: ${runs.length} (seeds ${runs.map((r) => r.seed).join(', ')}), ${sum(runs.map((r) => r.minutes)).toFixed(1)} min of traffic ` +
  `under faults (${(sum(runs.map((r) => r.wallSeconds)) / 60).toFixed(1)} min wall)`);
console.log(`operations: ${sum(runs.map((r) => r.ops.total))}; places ${sum(runs.map((r) => r.stats.places))}, holds ` +
  `${sum(runs.map((r) => r.stats.holds))}, payments ${sum(runs.map((r) => r.stats.payments))}, polls ${sum(runs.map((r) => r.stats.polls))}`);
console.log('| fault | injected | longest time without a successful join, hold or payment |');
console.log('|---|---|---|');
for (const k of Object.keys(faults).sort()) console.log(`| ${k} | ${faults[k]} | ${((longest[k] ?? 0) / 1000).toFixed(1)} s |`);
console.log(`violations: ${Object.entries(violations).map(([k, n]) => `${k} ${n}`).join(', ')}`);
console.log(`runs with a violation: ${runs.filter((r) => !r.ok).length}`);
