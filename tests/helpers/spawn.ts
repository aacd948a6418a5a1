import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Subprocess } from 'bun';

export const ROOT = join(import.meta.dir, '../..');

/**
 * Reads a child's stdout and stderr as they fill (a chatty process would block on a full pipe)
 * into one text; returns a function giving what was read so far.
 */
export function collectOutput(proc: { stdout: ReadableStream<Uint8Array>; stderr: ReadableStream<Uint8Array> }): () => string {
  let out = '';
  const drain = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) out += dec.decode(chunk, { stream: true });
  };
  void drain(proc.stdout);
  void drain(proc.stderr);
  return () => out;
}

/** A process whose stdout is read line by line as it comes, so a test can wait for a line. */
export interface Spawned {
  proc: Subprocess<'ignore', 'pipe', 'pipe'>;
  /** Every stdout line so far. */
  readonly lines: string[];
  /** Resolves with the first stdout line (so far or to come) that matches; throws at the deadline or when the process ends first. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  stderr(): Promise<string>;
  /** Sends the signal (SIGTERM by default) and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

export function spawnLines(argv: string[], env: Record<string, string>): Spawned {
  const proc = Bun.spawn(argv, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdin: 'ignore', stdout: 'pipe', stderr: 'pipe',
  });
  const lines: string[] = [];
  let ended = false;
  const waiters = new Set<() => void>();
  const wake = () => { for (const w of waiters) w(); };
  void (async () => {
    const decoder = new TextDecoder();
    let rest = '';
    for await (const chunk of proc.stdout) {
      rest += decoder.decode(chunk, { stream: true });
      const parts = rest.split('\n');
      rest = parts.pop()!;
      lines.push(...parts);
      wake();
    }
    if (rest) lines.push(rest);
    ended = true;
    wake();
  })();
  const stderrText = new Response(proc.stderr).text();
  return {
    proc, lines,
    async waitForLine(match, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = lines.find(match);
        if (found !== undefined) return found;
        if (ended) throw new Error(`process ended without the line; stdout:\n${lines.join('\n')}\nstderr:\n${await stderrText}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no such line within ${timeoutMs} ms; stdout:\n${lines.join('\n')}`);
        await new Promise<void>((resolve) => {
          const w = () => { waiters.delete(w); clearTimeout(t); resolve(); };
          const t = setTimeout(w, left);
          waiters.add(w);
        });
      }
    },
    stderr: () => stderrText,
    async stop(signal = 'SIGTERM') {
      proc.kill(signal);
      return proc.exited;
    },
  };
}

/** JSON over real HTTP. */
export async function fetchJson<T = any>(base: string, method: string, path: string, opts: {
  body?: unknown; token?: string; adminKey?: string;
} = {}): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.adminKey) headers['X-Admin-Key'] = opts.adminKey;
  const res = await fetch(`${base}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  let body: any = text;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, body };
}

/** Whether a process with this pid still runs (a zombie of ours counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Every descendant of a process (children, their children, ...), from /proc. */
export function descendants(pid: number): number[] {
  const parentOf = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parentOf.get(ppid) ?? [];
      list.push(Number(name));
      parentOf.set(ppid, list);
    } catch { /* gone meanwhile */ }
  }
  const out: number[] = [];
  const walk = (p: number) => { for (const c of parentOf.get(p) ?? []) { out.push(c); walk(c); } };
  walk(pid);
  return out;
}
