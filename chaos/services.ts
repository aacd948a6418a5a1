/**
 * The service under test as separate processes (`bun src/main.ts`), one per instance, each on
 * its own loopback port, all against the same Sentinel topology and the same private
 * PostgreSQL. Each instance's stdout/stderr goes to its own log file in the run dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

function bunBinary(): string {
  const local = join(REPO_ROOT, 'node_modules', '.bin', 'bun');
  return existsSync(local) ? local : process.execPath;
}

export class AppInstance {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private alive = false;
  /** Down on purpose (killed by the nemesis, or starting again): no answer is expected. */
  expectedDown = false;
  /** Called when the process exits while nobody meant it to (a crash). */
  onCrash: ((app: AppInstance, how: string) => void) | undefined;

  constructor(readonly index: number, readonly port: number, readonly logFile: string, private readonly env: Record<string, string>) {}

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.alive;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  /** Spawns the process and waits for /healthz. */
  async start(timeoutMs = 30_000): Promise<void> {
    if (this.alive) return;
    this.expectedDown = true;
    const fd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(bunBinary(), ['src/main.ts'], {
        cwd: REPO_ROOT, stdio: ['ignore', fd, fd], env: { ...process.env, ...this.env, PORT: String(this.port), HOST: '127.0.0.1' },
      });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.alive = true;
    liveApps.add(child);
    this.exited = new Promise<void>((done) => {
      child.once('exit', (code, sig) => {
        this.alive = false;
        liveApps.delete(child);
        if (!this.expectedDown) {
          this.expectedDown = true;
          this.onCrash?.(this, sig ? `signal ${sig}` : `exit code ${code}`);
        }
        done();
      });
      child.once('error', () => { this.alive = false; liveApps.delete(child); done(); });
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.alive) throw new Error(`app${this.index} exited during start-up\n--- ${this.logFile} ---\n${this.logTail()}`);
      try {
        const r = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) { this.expectedDown = false; return; }
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    throw new Error(`app${this.index} did not answer /healthz within ${timeoutMs} ms\n--- ${this.logFile} ---\n${this.logTail()}`);
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    this.expectedDown = true;
    if (this.alive) this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, SIGKILL after 5 s. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.expectedDown = true;
    this.child?.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }

  logTail(lines = 30): string {
    try { return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n'); } catch { return '(no log)'; }
  }
}

const liveApps = new Set<ChildProcess>();
let hookInstalled = false;
function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.on('exit', () => { for (const c of liveApps) c.kill('SIGKILL'); });
}

export async function startApps(count: number, ports: number[], dir: string, env: Record<string, string>): Promise<AppInstance[]> {
  installExitHook();
  const apps = Array.from({ length: count }, (_, i) => new AppInstance(i, ports[i]!, join(dir, `app${i}.log`), env));
  try {
    // One after the other: both run the migrations at start.
    for (const app of apps) await app.start();
  } catch (err) {
    await Promise.all(apps.map((a) => a.kill()));
    throw err;
  }
  return apps;
}

// ---------------------------------------------------------------------------------------------
// Admin API

export interface ConcertSetup {
  id: number;
  schedules: { id: number; capacity: number; price: number }[];
}

async function admin(app: AppInstance, key: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(app.baseUrl + path, {
    method, signal: AbortSignal.timeout(5_000),
    headers: { 'X-Admin-Key': key, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: any = text;
  try { parsed = JSON.parse(text); } catch { /* text */ }
  return { status: res.status, body: parsed };
}

export async function createConcert(app: AppInstance, key: string, title: string, schedules: number, seats: number, price: number,
  saleStartsAt?: string): Promise<ConcertSetup & { commitment?: string }> {
  const day = 86_400_000;
  const r = await admin(app, key, 'POST', '/admin/concerts', {
    title, ...(saleStartsAt ? { saleStartsAt } : {}),
    schedules: Array.from({ length: schedules }, (_, i) => ({ date: new Date(Date.now() + (7 + i) * day).toISOString(), seats, price })),
  });
  if (r.status !== 201) throw new Error(`POST /admin/concerts answered ${r.status}: ${JSON.stringify(r.body)}`);
  return {
    id: r.body.id, schedules: r.body.schedules.map((s: any) => ({ id: s.id, capacity: s.capacity, price: s.price })),
    commitment: r.body.draw?.commitment,
  };
}

export async function adminStatus(app: AppInstance, key: string, timeoutMs = 2_000): Promise<{ mode: string | null; pending: number | null; lagSeconds: number | null } | null> {
  try {
    const res = await fetch(`${app.baseUrl}/admin/status`, { headers: { 'X-Admin-Key': key }, signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    const b: any = await res.json();
    return { mode: b.mode ?? null, pending: b.writeBehind?.pending ?? null, lagSeconds: b.writeBehind?.lagSeconds ?? null };
  } catch {
    return null;
  }
}

export async function readyz(app: AppInstance, timeoutMs: number): Promise<number> {
  try {
    const res = await fetch(`${app.baseUrl}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}
