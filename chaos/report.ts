/**
 * What a run prints and writes: one summary (seed, minutes, operations by op and status,
 * faults by kind, the longest unavailability per fault kind, readiness per fault, violations
 * per invariant), and for each violation the shortest slice of history that shows it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INVARIANTS, sliceOf, type CheckResult, type InvariantName } from './checker.ts';
import {
  FAULT_KINDS, formatFault, WRITE_OPS, type CrashRecord, type FaultKind, type FaultRecord, type History, type HistoryOp,
} from './history.ts';

export interface ViolationReport {
  invariant: InvariantName;
  message: string;
  fans: number[];
  ops: HistoryOp[];
  faults: FaultRecord[];
  lines: string[];
}

export interface ChaosReport {
  seed: number;
  minutes: number;
  fans: number;
  faultKinds: FaultKind[];
  startedAt: string;
  wallSeconds: number;
  ops: { total: number; byOp: Record<string, Record<string, number>> };
  faults: { byKind: Record<string, number>; list: FaultRecord[] };
  /** Longest stretch with no successful join/hold/pay on any instance, during or just after a fault of each kind. */
  unavailability: Record<string, { longestMs: number; fromMs: number; toMs: number } | null>;
  readiness: { fault: number; kind: FaultKind; perInstance: Record<string, { ready: number; unready: number }> }[];
  modes: { instance: number; atMs: number; mode: string | null }[];
  settle: { ok: boolean; ms: number; notes: string[] };
  crashes: CrashRecord[];
  stats: CheckResult['stats'];
  violationCounts: Record<InvariantName, number>;
  violations: ViolationReport[];
  notes: string[];
  files: { summary?: string; slices?: string; history?: string; openingHistory?: string };
  ok: boolean;
}

export function opsByStatus(history: History): ChaosReport['ops'] {
  const byOp: Record<string, Record<string, number>> = {};
  for (const o of history.ops) {
    const e = (byOp[o.op] ??= {});
    const k = o.status === 0 ? `0 ${o.code}` : o.code ? `${o.status} ${o.code}` : String(o.status);
    e[k] = (e[k] ?? 0) + 1;
  }
  return { total: history.ops.length, byOp };
}

/** Gaps between successful writes that overlap [fault start, heal + afterMs], longest per kind. */
export function unavailability(history: History, endMs: number, afterMs = 5_000): ChaosReport['unavailability'] {
  const ok = history.ops.filter((o) => WRITE_OPS.has(o.op) && o.status >= 200 && o.status < 300 && o.phase === 'run')
    .map((o) => o.completeMs).sort((a, b) => a - b);
  const points = [0, ...ok, endMs];
  const out: ChaosReport['unavailability'] = {};
  for (const f of history.faults) {
    const from = f.startMs, to = f.healMs + afterMs;
    let best = out[f.kind] ?? null;
    for (let i = 1; i < points.length; i++) {
      const a = points[i - 1]!, b = points[i]!;
      if (b < from || a > to) continue;
      if (!best || b - a > best.longestMs) best = { longestMs: Math.round(b - a), fromMs: Math.round(a), toMs: Math.round(b) };
    }
    out[f.kind] = best;
  }
  return out;
}

export function readinessPerFault(history: History, afterMs = 5_000): ChaosReport['readiness'] {
  return history.faults.map((f) => {
    const perInstance: Record<string, { ready: number; unready: number }> = {};
    for (const s of history.ready) {
      if (s.invokeMs < f.startMs || s.invokeMs > f.healMs + afterMs) continue;
      const e = (perInstance[`app${s.instance}`] ??= { ready: 0, unready: 0 });
      if (s.status === 200) e.ready++; else e.unready++;
    }
    return { fault: f.id, kind: f.kind, perInstance };
  });
}

export function violationReports(result: CheckResult, history: History): ViolationReport[] {
  return result.violations.map((v) => {
    const s = sliceOf(v, history);
    return { invariant: v.invariant, message: v.message, fans: v.fans, ops: s.ops, faults: s.faults, lines: s.lines };
  });
}

const sec = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

export function formatViolation(v: ViolationReport, seed: number): string {
  const lines = [`VIOLATION ${v.invariant} (seed ${seed}): ${v.message}`];
  if (v.fans.length) lines.push(`  fans: ${v.fans.join(', ')}`);
  for (const f of v.faults) lines.push(`  overlapping ${formatFault(f)}`);
  for (const l of v.lines) lines.push(`  ${l}`);
  return lines.join('\n');
}

export function formatSummary(r: ChaosReport, maxViolations = 10): string {
  const out: string[] = [];
  out.push(`== chaos summary: seed ${r.seed}, ${r.minutes} min, ${r.fans} fans, faults ${r.faultKinds.join(',')}, ${r.wallSeconds.toFixed(0)} s wall`);
  out.push(`operations: ${r.ops.total}`);
  for (const [op, statuses] of Object.entries(r.ops.byOp).sort()) {
    out.push(`  ${op.padEnd(10)} ${Object.entries(statuses).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ')}`);
  }
  out.push(`acknowledged: ${r.stats.places} places, ${r.stats.holds} holds, ${r.stats.payments} payments`);
  out.push(`fault schedule (seed ${r.seed}):`);
  for (const f of r.faults.list) out.push(`  ${formatFault(f)}`);
  out.push(`faults by kind: ${FAULT_KINDS.map((k) => `${k} ${r.faults.byKind[k] ?? 0}`).join(', ')}`);
  out.push('longest write unavailability (no join/hold/pay succeeded) during or within 5 s after a fault:');
  for (const k of FAULT_KINDS) {
    const u = r.unavailability[k];
    if (u) out.push(`  ${k.padEnd(10)} ${sec(u.longestMs)} (${sec(u.fromMs)}..${sec(u.toMs)})`);
  }
  out.push('readiness during each fault (+5 s): ' + r.readiness.map((x) =>
    `#${x.fault} ${x.kind} ${Object.entries(x.perInstance).map(([i, c]) => `${i} ${c.ready}/${c.ready + c.unready}`).join(' ')}`).join('; '));
  out.push(`settled: ${r.settle.ok ? 'yes' : 'NO'} after ${sec(r.settle.ms)}${r.settle.notes.length ? ` (${r.settle.notes.join('; ')})` : ''}`);
  for (const c of r.crashes) out.push(`CRASH: app${c.instance} exited unexpectedly at ${sec(c.atMs)} (${c.how}); log tail:\n    ${c.logTail.split('\n').slice(-8).join('\n    ')}`);
  for (const n of r.notes) out.push(`note: ${n}`);
  out.push('violations per invariant:');
  for (const [k, title] of Object.entries(INVARIANTS)) out.push(`  ${String(r.violationCounts[k as InvariantName]).padStart(4)}  ${k.padEnd(20)} ${title}`);
  const shown = r.violations.slice(0, maxViolations);
  for (const v of shown) out.push('', formatViolation(v, r.seed));
  if (r.violations.length > shown.length) out.push('', `... ${r.violations.length - shown.length} more violations in ${r.files.slices ?? 'the JSON'}`);
  out.push('', `${r.ok ? 'OK' : 'FAILED'}: ${r.violations.length} violations (seed ${r.seed})${r.files.summary ? `; summary ${r.files.summary}` : ''}`);
  return out.join('\n');
}

export function writeReport(r: ChaosReport, outDir: string, history?: History, openingHistory?: History): void {
  mkdirSync(outDir, { recursive: true });
  const stamp = r.startedAt.replace(/[:.]/g, '-');
  const base = join(outDir, `chaos-${r.seed}-${stamp}`);
  r.files.summary = `${base}.json`;
  if (r.violations.length > 0) {
    r.files.slices = `${base}-violations.json`;
    writeFileSync(r.files.slices, JSON.stringify({ seed: r.seed, faults: r.faults.list, violations: r.violations }, null, 2));
    if (history) {
      // The whole history too, one op per line, for looking around a slice.
      r.files.history = `${base}-history.jsonl`;
      const lines = [...history.faults.map((f) => JSON.stringify({ fault: f })), ...history.ops.map((o) => JSON.stringify(o))];
      writeFileSync(r.files.history, `${lines.join('\n')}\n`);
    }
    if (openingHistory && openingHistory.ops.length > 0) {
      // The scheduled sale's fans have a history of their own (opening.ts).
      r.files.openingHistory = `${base}-opening.jsonl`;
      writeFileSync(r.files.openingHistory, `${openingHistory.ops.map((o) => JSON.stringify(o)).join('\n')}\n`);
    }
  }
  // The summary carries the violations without their op objects (they are in the slices file).
  const summary = { ...r, violations: r.violations.map(({ ops: _ops, ...v }) => v) };
  writeFileSync(r.files.summary, JSON.stringify(summary, null, 2));
}
