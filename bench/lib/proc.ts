/**
 * CPU time of processes from /proc/<pid>/stat (utime + stime, whole thread group), and the
 * machine's load. Linux only; on another system the CPU columns read null.
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch { /* 100 is the Linux default */ }

/** CPU seconds a process has used so far, or null when it is gone or /proc is missing. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return null;
  }
}

/** Sums the CPU seconds of several processes; pids that vanished count as 0. */
export function cpuSecondsOf(pids: number[]): number | null {
  if (pids.length === 0) return null;
  let total = 0;
  let any = false;
  for (const pid of pids) {
    const s = cpuSeconds(pid);
    if (s !== null) {
      total += s;
      any = true;
    }
  }
  return any ? total : null;
}

/** A CPU meter over a window: start(), then stop() gives the share of one core used (1 = 100 %). */
export class CpuMeter {
  private startCpu = new Map<number, number>();
  private startAt = 0;

  constructor(private readonly pids: () => number[] | Promise<number[]>) {}

  async start(): Promise<void> {
    this.startCpu.clear();
    for (const pid of await this.pids()) {
      const s = cpuSeconds(pid);
      if (s !== null) this.startCpu.set(pid, s);
    }
    this.startAt = performance.now();
  }

  /** Returns { cores, seconds } over the window; pids that appeared meanwhile count from 0. */
  async stop(): Promise<{ cores: number; seconds: number } | null> {
    const elapsed = (performance.now() - this.startAt) / 1000;
    const pids = await this.pids();
    if (pids.length === 0 && this.startCpu.size === 0) return null;
    let used = 0;
    for (const pid of new Set([...pids, ...this.startCpu.keys()])) {
      const now = cpuSeconds(pid);
      const before = this.startCpu.get(pid) ?? 0;
      if (now !== null) used += Math.max(0, now - before);
    }
    return { cores: elapsed > 0 ? used / elapsed : 0, seconds: used };
  }
}

export function loadAverage(): [number, number, number] | null {
  try {
    const [a, b, c] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
    return [a!, b!, c!];
  } catch {
    return null;
  }
}

export function cpuCount(): number {
  return navigator.hardwareConcurrency ?? 1;
}
