/** Aggregation of runs into one row per (scenario, target), goals, and the markdown report. */
import type { LoadResult } from './load.ts';
import type { JourneyResult } from './scenarios.ts';
import { TARGET_LABEL, type TargetName } from './servers.ts';

export interface RunRecord extends LoadResult {
  scenario: string;
  target: TargetName;
  /** Service processes the load was spread over (1 for a single process). */
  instances: number;
  round: number;
  startedAt: string;
  loadAvg: [number, number, number] | null;
  cpu: { server: number | null; redis: number | null; db: number | null };
  /** The same shares just before the run, with no load (measured with --instances). */
  idle?: { server: number | null; redis: number | null; db: number | null };
  /** CPU seconds over the run: all instances of the service, its redis-server, its PostgreSQL backends. */
  serverCpuSeconds: number | null;
  redisCpuSeconds?: number | null;
  dbCpuSeconds?: number | null;
  /** A fleet's run: what each instance's client sent. */
  perInstance?: { requests: number; rps: number }[];
  journey?: Pick<JourneyResult, 'journeys' | 'journeysPerS' | 'steps' | 'failures'>;
}

export interface Row {
  scenario: string;
  target: TargetName;
  instances: number;
  rounds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  requests: number;
  serverCpu: number | null;
  redisCpu: number | null;
  dbCpu: number | null;
  cpuUsPerRequest: number | null;
  exhausted: boolean;
  journeysPerS?: number;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const median = (xs: number[]) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const meanOrNull = (xs: (number | null)[]) => {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? mean(v) : null;
};

export function aggregate(runs: RunRecord[]): Row[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of runs) {
    const k = `${r.scenario}\u0000${r.target}\u0000${r.instances}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  const rows: Row[] = [];
  for (const rs of groups.values()) {
    const first = rs[0]!;
    const requests = rs.reduce((a, r) => a + r.requests, 0);
    const cpuSec = rs.every((r) => r.serverCpuSeconds !== null) ? rs.reduce((a, r) => a + r.serverCpuSeconds!, 0) : null;
    rows.push({
      scenario: first.scenario, target: first.target, instances: first.instances, rounds: rs.length,
      rps: mean(rs.map((r) => r.rps)),
      p50Ms: median(rs.map((r) => r.p50Ms)),
      p99Ms: median(rs.map((r) => r.p99Ms)),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      requests,
      serverCpu: meanOrNull(rs.map((r) => r.cpu.server)),
      redisCpu: meanOrNull(rs.map((r) => r.cpu.redis)),
      dbCpu: meanOrNull(rs.map((r) => r.cpu.db)),
      cpuUsPerRequest: cpuSec !== null && requests > 0 ? (cpuSec / requests) * 1e6 : null,
      exhausted: rs.some((r) => r.exhausted),
      journeysPerS: first.journey ? mean(rs.map((r) => r.journey!.journeysPerS)) : undefined,
    });
  }
  return rows;
}

export interface Goal { goal: string; value: string; met: boolean | null; note?: string }

export function goals(rows: Row[]): Goal[] {
  const get = (s: string, t: TargetName) => rows.find((r) => r.scenario === s && r.target === t && r.instances === 1);
  const out: Goal[] = [];
  const ratio = (goal: string, a: Row | undefined, b: Row | undefined, min: number) => {
    if (!a || !b || b.rps === 0) {
      out.push({ goal, value: 'not measured', met: null });
      return;
    }
    const x = a.rps / b.rps;
    out.push({ goal, value: `${x.toFixed(2)} (${fmt(a.rps)} / ${fmt(b.rps)} req/s)`, met: x >= min });
  };
  ratio('poll, redis mode ≥ 0.7 × MGET ceiling', get('poll', 'redis'), get('poll', 'mget'), 0.7);
  if (get('poll-one', 'redis')) ratio('poll by one user, redis mode ≥ 0.7 × MGET ceiling', get('poll-one', 'redis'), get('poll-one', 'mget'), 0.7);
  // For reading, not goals: what the one-script design allows (script route ÷ MGET), and the service against it.
  const info = (label: string, a: Row | undefined, b: Row | undefined) => {
    if (a && b && b.rps > 0) out.push({ goal: label, value: `${(a.rps / b.rps).toFixed(2)} (${fmt(a.rps)} / ${fmt(b.rps)} req/s)`, met: null });
  };
  for (const s of ['poll', 'poll-one']) {
    info(`${s}: script route ÷ MGET ceiling`, get(s, 'script'), get(s, 'mget'));
    info(`${s}: redis mode ÷ script route`, get(s, 'redis'), get(s, 'script'));
  }
  // A join is measured against the poll's MGET route (the same ceiling of one request on this runtime).
  ratio('join, redis mode on PostgreSQL ≥ 0.4 × MGET ceiling', get('join', 'redis'), get('poll', 'mget'), 0.4);
  info('join: script route (no SQL) ÷ MGET ceiling', get('join', 'script'), get('poll', 'mget'));
  info('join: redis mode ÷ script route', get('join', 'redis'), get('join', 'script'));
  ratio('poll, redis mode ≥ 10 × SQL mode on PostgreSQL', get('poll', 'redis'), get('poll', 'sql-pg'), 10);
  ratio('contended holds, redis mode ≥ 10 × SQL mode on PostgreSQL', get('hold-contended', 'redis'), get('hold-contended', 'sql-pg'), 10);
  ratio('token issue, redis mode on PostgreSQL ≥ 0.2 × MGET ceiling', get('tokens', 'redis'), get('tokens', 'mget'), 0.2);
  ratio('token issue, SQL mode on PostgreSQL ≥ 0.2 × MGET ceiling', get('tokens', 'sql-pg'), get('tokens', 'mget'), 0.2);
  const errs = rows.reduce((a, r) => a + r.errors, 0);
  out.push({ goal: 'no errors', value: `${errs} errors in ${rows.reduce((a, r) => a + r.requests, 0)} requests`, met: errs === 0 });
  return out;
}

export function fmt(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const pct = (x: number | null) => (x === null ? '–' : `${Math.round(x * 100)} %`);
const label = (r: { target: TargetName; instances: number }) => (r.instances > 1 ? `${r.target} ×${r.instances}` : r.target);
const usPer = (seconds: number | null | undefined, requests: number) =>
  (seconds === null || seconds === undefined || requests === 0 ? null : (seconds / requests) * 1e6);

/**
 * Each run of a fleet (and of the MGET route it is read against), with the CPU each request cost
 * the service (all instances summed), its Redis and its PostgreSQL. The ratio is to the MGET run
 * of the same round: of the same scenario, or of poll for scenarios the MGET route does not serve.
 */
export function fleetTable(runs: RunRecord[], fleetTargets: TargetName[]): string[] {
  const mgetOf = (r: RunRecord) =>
    runs.find((m) => m.target === 'mget' && m.round === r.round && m.scenario === r.scenario) ??
    runs.find((m) => m.target === 'mget' && m.round === r.round && m.scenario === 'poll');
  const shown = runs.filter((r) => fleetTargets.includes(r.target) || r.target === 'mget')
    .sort((a, b) => a.scenario.localeCompare(b.scenario) || a.round - b.round || a.target.localeCompare(b.target) || a.instances - b.instances);
  const lines = [
    '| scenario | round | target | instances | req/s | per instance req/s | ÷ MGET (same round) | service CPU µs/req (all instances) | Redis CPU µs/req | PG CPU µs/req | sum µs/req | at rest: service / Redis / PG CPU ² | p50 ms ¹ | p99 ms ¹ | errors |',
    '|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|',
  ];
  for (const r of shown) {
    const mget = mgetOf(r);
    const ratio = mget && mget.rps > 0 ? `${(r.rps / mget.rps).toFixed(3)}${mget.scenario !== r.scenario ? ' (poll MGET)' : ''}` : '–';
    const costs = [usPer(r.serverCpuSeconds, r.requests), usPer(r.redisCpuSeconds, r.requests), usPer(r.dbCpuSeconds, r.requests)];
    const known = costs.filter((x): x is number => x !== null);
    const each = r.perInstance ? r.perInstance.map((p) => fmt(p.rps)).join(' / ') : fmt(r.rps);
    lines.push(`| ${r.scenario} | ${r.round} | ${r.target} | ${r.instances} | ${fmt(r.rps)}${r.exhausted ? ' †' : ''} | ${each} | ${ratio} | ` +
      `${costs.map((c) => fmt(c, 1)).join(' | ')} | ${known.length ? fmt(known.reduce((a, b) => a + b, 0), 1) : '–'} | ` +
      `${r.idle ? [r.idle.server, r.idle.redis, r.idle.db].map(pct).join(' / ') : '–'} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${r.errors} |`);
  }
  return lines;
}

export function markdown(meta: Record<string, unknown>, rows: Row[], runs: RunRecord[], notes: string[]): string {
  const lines: string[] = [];
  lines.push(`# Benchmark ${meta.finishedAt}`, '');
  lines.push(`Machine: ${meta.cpus} cores, load average before ${meta.loadBefore} / after ${meta.loadAfter}. ` +
    `Client: ${meta.client}, ${meta.connections} connections${meta.pollUsers ? `, poll over ${meta.pollUsers} users` : ''}, ${meta.warmupS} s warm-up then ${meta.durationS} s × ${meta.rounds} rounds per target, targets interleaved. ` +
    `Bun ${meta.bun}, ${meta.redisVersion}, ${meta.pgVersion}.`, '');
  lines.push('CPU columns are shares of one core over the run (100 % = one core busy), from /proc/<pid>/stat: the server process (a fleet\'s instances summed), ' +
    'its redis-server, and the PostgreSQL backends serving its database. "CPU/req" is server CPU time per request.', '');
  lines.push('| scenario | target | req/s | p50 ms | p99 ms | errors | server CPU | CPU/req µs | Redis CPU | PG CPU |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const rps = r.journeysPerS !== undefined ? `${fmt(r.rps)} (${fmt(r.journeysPerS, 1)} journeys/s)` : fmt(r.rps);
    lines.push(`| ${r.scenario} | ${label(r)} | ${rps}${r.exhausted ? ' †' : ''} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${r.errors} | ` +
      `${pct(r.serverCpu)} | ${fmt(r.cpuUsPerRequest)} | ${pct(r.redisCpu)} | ${pct(r.dbCpu)} |`);
  }
  lines.push('');
  if (rows.some((r) => r.exhausted)) lines.push('† the run used up its prepared requests before the time was over; the rate is over the time it ran.', '');
  const journeys = runs.filter((r) => r.journey);
  if (journeys.length) {
    lines.push('Journey latency is per whole journey (including the wait for admission); per step p50/p99 ms:', '');
    lines.push('| target | round | journeys | token | join | poll | hold | charge | pay | failures |');
    lines.push('|---|---:|---:|---|---|---|---|---|---|---|');
    for (const r of journeys) {
      const s = r.journey!.steps;
      const cell = (k: string) => (s[k] ? `${fmt(s[k]!.p50Ms, 1)} / ${fmt(s[k]!.p99Ms, 1)}` : '–');
      const f = Object.entries(r.journey!.failures).map(([k, v]) => `${k} ×${v}`).join('; ') || '–';
      lines.push(`| ${r.target} | ${r.round} | ${r.journey!.journeys} | ${cell('token')} | ${cell('join')} | ${cell('poll')} | ${cell('hold')} | ${cell('charge')} | ${cell('pay')} | ${f} |`);
    }
    lines.push('');
  }
  const fleet = meta.instances as number[] | undefined;
  if (fleet) {
    lines.push(`## Instances on one Redis and one database (${fleet.join(', ')})`, '');
    lines.push(`Each fleet runs ${fleet.join(', ')} processes of the real service (\`bun src/main.ts\`, own port and instance id) ` +
      'on one redis-server and one database, the mode row included; the load client runs one client per instance with ' +
      (meta.connectionsPerInstance
        ? `${meta.connections} connections each (a fleet of N opens N × ${meta.connections}, so each instance sees the concurrency one process does)`
        : `its share of the ${meta.connections} connections (each instance of N sees 1/N of the concurrency, so it batches less: ` +
          'ioredis pipelining, the join\'s group commit; --connections-per-instance gives each instance all of them)') +
      ' and every N-th request of the list. CPU per request is summed over all instances.', '');
    lines.push(`**Read CPU per request, not req/s.** On this ${meta.cpus}-core machine every instance, Redis, the database ` +
      'and the load client share the same cores, so throughput is bounded by the cores and cannot grow with the number ' +
      'of instances; what a fleet adds or saves per request (service, Redis, PostgreSQL µs) is what carries over to a ' +
      'machine where instances have cores of their own.', '');
    lines.push(...fleetTable(runs, meta.fleetTargets as TargetName[]), '');
    lines.push('¹ with more than one instance, the highest of the instances\' own p50/p99 (each client measures one instance). ' +
      '† the run used up its prepared requests before the time was over. ' +
      `² shares of one core over ${meta.idleWindowS} s with no load, just before the run: each instance's background work ` +
      '(admission ticker, write-behind worker, samplers), which a run\'s CPU per request includes.', '');
  }
  lines.push('| goal | measured | met |', '|---|---|---|');
  for (const g of goals(rows)) lines.push(`| ${g.goal} | ${g.value} | ${g.met === null ? '–' : g.met ? 'yes' : '**no**'} |`);
  lines.push('');
  const errorRuns = runs.filter((r) => r.errors > 0);
  if (errorRuns.length) {
    lines.push('Errors by run (status: count):', '');
    for (const r of errorRuns) lines.push(`- ${r.scenario} / ${r.target} round ${r.round}: ${JSON.stringify(r.statuses)}, socket errors ${r.socketErrors}${r.journey ? `, ${JSON.stringify(r.journey.failures)}` : ''}`);
    lines.push('');
  }
  if (notes.length) {
    lines.push('Notes:', '');
    for (const n of notes) lines.push(`- ${n}`);
    lines.push('');
  }
  lines.push('Targets:', '');
  for (const t of new Set(rows.map((r) => r.target))) {
    const sizes = [...new Set(rows.filter((r) => r.target === t).map((r) => r.instances))];
    lines.push(`- \`${t}\`: ${TARGET_LABEL[t]}${sizes.some((n) => n > 1) ? `; as ${sizes.join(', ')} instances` : ''}`);
  }
  lines.push('');
  return lines.join('\n');
}
