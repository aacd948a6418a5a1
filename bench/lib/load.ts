/**
 * Load clients that reuse connections, at a fixed concurrency, for a bounded time:
 *   wrk (preferred: C, epoll, a few % of one core), autocannon (if installed), or a built-in
 *   Bun client (keep-alive fetch from N concurrent loops).
 * Each request of a run comes from a list (tokens and bodies differ per request). A list that
 * must not repeat (a join per user token, a hold per seat) stops the run when it runs out.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RequestSpec { method: string; path: string; token?: string; body?: string }

export interface LoadOptions {
  base: string;
  requests: RequestSpec[];
  /** Repeat the list when it runs out; otherwise the run stops there. */
  cycle: boolean;
  connections: number;
  durationS: number;
  /** Statuses that count as success (others are errors). */
  ok: number[];
  threads?: number;
}

export interface LoadResult {
  client: ClientName;
  requests: number;
  durationS: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  statuses: Record<string, number>;
  socketErrors: number;
  exhausted: boolean;
}

export type ClientName = 'wrk' | 'autocannon' | 'bun';

export function hasWrk(): boolean {
  try {
    execFileSync('wrk', ['-v'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // `wrk -v` prints its banner and exits 1; only a missing binary throws ENOENT.
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

async function autocannonModule(): Promise<any | null> {
  try {
    const name = 'autocannon';
    const m = await import(name);
    return m.default ?? m;
  } catch {
    return null;
  }
}

export async function pickClient(wanted: 'auto' | ClientName): Promise<ClientName> {
  if (wanted === 'wrk') {
    if (!hasWrk()) throw new Error('wrk is not installed (apt-get install -y wrk)');
    return 'wrk';
  }
  if (wanted === 'autocannon') {
    if (!(await autocannonModule())) throw new Error('autocannon is not installed (npm install -D autocannon)');
    return 'autocannon';
  }
  if (wanted === 'bun') return 'bun';
  if (hasWrk()) return 'wrk';
  if (await autocannonModule()) return 'autocannon';
  return 'bun';
}

export async function runLoad(client: ClientName, opts: LoadOptions): Promise<LoadResult> {
  if (opts.requests.length === 0) throw new Error('no requests to send');
  if (client === 'wrk') return runWrk(opts);
  if (client === 'autocannon') return runAutocannon(opts);
  return runBunClient(opts);
}

export interface SpreadResult extends LoadResult {
  /** Per instance, in the order of the bases: what its own client sent. */
  perInstance: { base: string; requests: number; rps: number }[];
}

/**
 * One client per instance, all at once, as a load balancer pinning each connection to one
 * instance would spread the load: instance i gets every N-th request of the list and its share
 * of the connections. req/s and counts are summed; a latency percentile is the highest of the
 * instances' (the clients measure apart, so a fleet-wide percentile cannot be computed exactly).
 */
export async function runLoadSpread(client: ClientName, opts: LoadOptions, bases: string[]): Promise<SpreadResult> {
  const n = bases.length;
  if (opts.connections < n) throw new Error(`${opts.connections} connections cannot reach ${n} instances`);
  const parts = await Promise.all(bases.map((base, i) => runLoad(client, {
    ...opts, base,
    requests: opts.requests.filter((_, k) => k % n === i),
    connections: Math.floor(opts.connections / n) + (i < opts.connections % n ? 1 : 0),
  })));
  if (n === 1) return { ...parts[0]!, perInstance: [{ base: bases[0]!, requests: parts[0]!.requests, rps: parts[0]!.rps }] };
  const sum = (f: (r: LoadResult) => number) => parts.reduce((a, r) => a + f(r), 0);
  const max = (f: (r: LoadResult) => number) => Math.max(...parts.map(f));
  const statuses: Record<string, number> = {};
  for (const r of parts) for (const [s, c] of Object.entries(r.statuses)) statuses[s] = (statuses[s] ?? 0) + c;
  return {
    client, requests: sum((r) => r.requests), durationS: max((r) => r.durationS), rps: sum((r) => r.rps),
    p50Ms: max((r) => r.p50Ms), p90Ms: max((r) => r.p90Ms), p99Ms: max((r) => r.p99Ms), maxMs: max((r) => r.maxMs),
    errors: sum((r) => r.errors), statuses, socketErrors: sum((r) => r.socketErrors), exhausted: parts.some((r) => r.exhausted),
    perInstance: parts.map((r, i) => ({ base: bases[i]!, requests: r.requests, rps: r.rps })),
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function countErrors(statuses: Record<string, number>, ok: number[], socketErrors: number): number {
  let errors = socketErrors;
  for (const [s, n] of Object.entries(statuses)) if (!ok.includes(Number(s))) errors += n;
  return errors;
}

// ---------------------------------------------------------------------------------------------
// wrk

const WRK_SCRIPT = String.raw`
-- Generated by bench/lib/load.ts. args: <requests file> <cycle 0|1> <threads>
local threads = {}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs, n, i, cycle, stopping = {}, 0, 0, false, false
counts = {}
extra = 0
function init(args)
  local path, nthreads = args[1], tonumber(args[3])
  cycle = args[2] == "1"
  local line_no = 0
  for line in io.lines(path) do
    if line_no % nthreads == tid then
      local method, p, token, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {}
      if token ~= "" then headers["Authorization"] = "Bearer " .. token end
      if body ~= "" then headers["Content-Type"] = "application/json" else body = nil end
      n = n + 1
      reqs[n] = wrk.format(method, p, headers, body)
    end
    line_no = line_no + 1
  end
end

function request()
  i = i + 1
  if i > n then
    if cycle and n > 0 then i = 1 else
      stopping = true
      extra = extra + 1
      return wrk.format("GET", "/healthz")
    end
  end
  return reqs[i]
end

function response(status, headers, body)
  if stopping then
    wrk.thread:stop()
    return
  end
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local statuses, ex = {}, 0
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do statuses[k] = (statuses[k] or 0) + v end
    ex = ex + (t:get("extra") or 0)
  end
  local parts = {}
  for k, v in pairs(statuses) do table.insert(parts, string.format('"%d":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"durationUs":%d,"extra":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"statuses":{%s},"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, ex, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, ","), e.connect, e.read, e.write, e.timeout))
end
`;

let workDir: string | null = null;
function scratch(): string {
  workDir ??= mkdtempSync(join(tmpdir(), 'bench-load-'));
  return workDir;
}

function writeRequests(reqs: RequestSpec[]): string {
  const path = join(scratch(), `requests-${Date.now()}-${Math.random().toString(36).slice(2)}.tsv`);
  const lines = reqs.map((r) => `${r.method}\t${r.path}\t${r.token ?? ''}\t${r.body ?? ''}`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

async function runWrk(opts: LoadOptions): Promise<LoadResult> {
  const threads = Math.max(1, Math.min(opts.threads ?? 1, opts.connections));
  const script = join(scratch(), 'bench.lua');
  writeFileSync(script, WRK_SCRIPT);
  const file = writeRequests(opts.requests);
  const args = ['-t', String(threads), '-c', String(opts.connections), '-d', `${opts.durationS}s`, '--timeout', '10s',
    '-s', script, opts.base, '--', file, opts.cycle ? '1' : '0', String(threads)];
  const out = await new Promise<string>((resolveOut, reject) => {
    const p = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    // wrk ends by itself after -d; this is only a guard against a hang.
    const guard = setTimeout(() => p.kill('SIGKILL'), (opts.durationS + 30) * 1000);
    p.on('close', (code) => {
      clearTimeout(guard);
      if (code === 0) resolveOut(stdout);
      else reject(new Error(`wrk exited ${code}: ${stderr || stdout}`));
    });
  });
  const line = out.split('\n').find((l) => l.startsWith('BENCHJSON '));
  if (!line) throw new Error(`wrk printed no result: ${out}`);
  const r = JSON.parse(line.slice('BENCHJSON '.length)) as {
    requests: number; durationUs: number; extra: number; p50: number; p90: number; p99: number; max: number;
    statuses: Record<string, number>; connect: number; read: number; write: number; timeout: number;
  };
  const requests = r.requests - r.extra;
  const durationS = r.durationUs / 1e6;
  const socketErrors = r.connect + r.read + r.write + r.timeout;
  return {
    client: 'wrk', requests, durationS, rps: requests / durationS,
    p50Ms: r.p50 / 1000, p90Ms: r.p90 / 1000, p99Ms: r.p99 / 1000, maxMs: r.max / 1000,
    statuses: r.statuses, socketErrors, errors: countErrors(r.statuses, opts.ok, socketErrors), exhausted: r.extra > 0,
  };
}

// ---------------------------------------------------------------------------------------------
// autocannon (optional dev dependency)

async function runAutocannon(opts: LoadOptions): Promise<LoadResult> {
  const autocannon = await autocannonModule();
  if (!autocannon) throw new Error('autocannon is not installed');
  const reqs = opts.requests;
  let next = 0;
  let exhausted = false;
  const statuses: Record<string, number> = {};
  const toRequest = (r: RequestSpec) => ({
    method: r.method, path: r.path, body: r.body,
    headers: {
      ...(r.token ? { authorization: `Bearer ${r.token}` } : {}),
      ...(r.body ? { 'content-type': 'application/json' } : {}),
    },
  });
  const started = performance.now();
  const instance = autocannon({
    url: opts.base, connections: opts.connections, duration: opts.durationS, timeout: 10,
    requests: [{
      setupRequest: (req: object) => {
        if (next >= reqs.length) {
          if (!opts.cycle) {
            exhausted = true;
            instance.stop();
          }
          next = 0;
        }
        return { ...req, ...toRequest(reqs[next++]!) };
      },
    }],
  });
  instance.on('response', (_client: unknown, statusCode: number) => {
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
  });
  const result = await new Promise<any>((resolveResult, reject) => {
    instance.on('done', resolveResult);
    instance.on('error', reject);
  });
  const durationS = (performance.now() - started) / 1000;
  const requests = Object.values(statuses).reduce((a, b) => a + b, 0);
  const socketErrors = Number(result.errors ?? 0) + Number(result.timeouts ?? 0);
  return {
    client: 'autocannon', requests, durationS, rps: requests / durationS,
    p50Ms: result.latency.p50, p90Ms: result.latency.p90, p99Ms: result.latency.p99, maxMs: result.latency.max,
    statuses, socketErrors, errors: countErrors(statuses, opts.ok, socketErrors), exhausted,
  };
}

// ---------------------------------------------------------------------------------------------
// Built-in: N loops of keep-alive fetch

async function runBunClient(opts: LoadOptions): Promise<LoadResult> {
  const prepared = opts.requests.map((r) => ({
    url: opts.base + r.path,
    init: {
      method: r.method,
      body: r.body,
      headers: {
        ...(r.token ? { Authorization: `Bearer ${r.token}` } : {}),
        ...(r.body ? { 'Content-Type': 'application/json' } : {}),
      },
      keepalive: true,
    } as RequestInit,
  }));
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let socketErrors = 0;
  let next = 0;
  let exhausted = false;
  const started = performance.now();
  const deadline = started + opts.durationS * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      let i = next++;
      if (i >= prepared.length) {
        if (!opts.cycle) {
          exhausted = true;
          return;
        }
        i %= prepared.length;
      }
      const r = prepared[i]!;
      const t0 = performance.now();
      try {
        const res = await fetch(r.url, { ...r.init, signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      } catch {
        socketErrors++;
      }
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, loop));
  const durationS = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    client: 'bun', requests: latencies.length, durationS, rps: latencies.length / durationS,
    p50Ms: percentile(latencies, 50), p90Ms: percentile(latencies, 90), p99Ms: percentile(latencies, 99),
    maxMs: latencies[latencies.length - 1] ?? 0,
    statuses, socketErrors, errors: countErrors(statuses, opts.ok, socketErrors), exhausted,
  };
}

export { percentile };
