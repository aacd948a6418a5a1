/** The drill's report as a table for people. The JSON form is the DrillReport itself. */
import type { DrillReport } from './drill.ts';

const secs = (ms: number | null) => (ms === null ? '—' : `${(ms / 1000).toFixed(2)} s`);
const signed = (ms: number) => `${ms >= 0 ? '+' : ''}${(ms / 1000).toFixed(2)} s`;

function codes(map: Record<string, number>): string {
  const entries = Object.entries(map).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? 'none' : entries.map(([c, n]) => `${c} ${n}`).join(', ');
}

export function formatReport(r: DrillReport): string {
  const rows: [string, string][] = [
    ['scenario', `${r.scenario} (${r.users} users, ${r.durationSec} s of traffic, ${r.database})`],
    ['target', r.target],
    ['master', `${r.fault.oldMaster} → ${r.fault.newMaster ?? 'none'}`],
    ['failover (sentinels agree)', secs(r.fault.failoverMs)],
    ['/admin/status names new master', secs(r.fault.statusFollowedMs)],
    [`old master is a replica (from ${r.fault.rejoinFrom})`, secs(r.fault.replicaRejoinMs)],
    ['longest write stall', `${secs(r.writeStall.longestMs)} (from ${signed(r.writeStall.fromMs)} to ${signed(r.writeStall.toMs)} of the fault)`],
    ['longest join/hold stall', `${secs(r.writeStall.queueAndHoldsMs)} (from ${signed(r.writeStall.queueAndHoldsFromMs)})`],
    ['requests', `${r.requests.total} (${r.requests.ok} ok)`],
    ['errors by code', codes(r.errorsByCode)],
    ['queue entries', `${r.queue.acknowledged} acknowledged, ${r.queue.missingObserved} seen missing, ${r.queue.restored} restored` +
      `${r.queue.restored ? ` (within ${secs(r.queue.longestMissingMs)})` : ''}, ${r.queue.lost} LOST` +
      `${r.queue.lost ? ` (${r.queue.lostButInSql} of them still in SQL)` : ''}`],
    ['holds', `${r.holds.acknowledged} acknowledged, ${r.holds.missingObserved} seen missing, ${r.holds.restored} restored` +
      `${r.holds.restored ? ` (within ${secs(r.holds.longestMissingMs)})` : ''}, ${r.holds.lost} LOST` +
      `${r.holds.lost ? ` (${r.holds.lostButInSql} of them still in SQL)` : ''}`],
    ['payments', `${r.payments.acknowledged} acknowledged, ${r.payments.lost} LOST in SQL, ${r.payments.unresolved} without a definitive answer`],
    ['seats sold twice', String(r.doubleSales)],
    ['balance ≠ ledger', String(r.ledgerMismatches)],
    ['mode transitions', r.modeTransitions.length === 0 ? 'none (stayed on redis)'
      : r.modeTransitions.map((t) => `${signed(t.atMs)} ${t.from}→${t.to}`).join(', ')],
    ['final', `mode ${r.final.mode}; status master ${r.final.statusMaster ?? '—'}; sentinels ${r.final.sentinelMaster ?? '—'}`],
  ];
  if (r.missingFeatures.length > 0) rows.push(['not deployed', r.missingFeatures.join(', ')]);
  for (const note of r.fault.notes) rows.push(['note', note]);
  rows.push(['verdict', r.verdict.ok ? 'OK: no payment lost, no seat sold twice' : `FAILED: ${r.verdict.failures.join('; ')}`]);

  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
  const byOp = Object.entries(r.requests.byOp).map(([op, s]) => `  ${op.padEnd(10)} ${String(s.ok).padStart(6)} ok   ${codes(s.errors)}`);
  const lost = [
    ...r.queue.lostExamples.map((p) => `  place   user ${p.userId} entry ${p.seq}, acknowledged at ${signed(p.ackMs)}: ${p.why}`),
    ...r.holds.lostExamples.map((h) => `  hold    ${h.reservationId}, acknowledged at ${signed(h.ackMs)}: ${h.why}`),
  ];
  return [
    `Failover drill: ${r.scenario}`,
    '-'.repeat(width + 40),
    ...lines,
    '',
    'by operation:',
    ...byOp,
    ...(lost.length > 0 ? ['', 'lost (first ones):', ...lost] : []),
  ].join('\n');
}
