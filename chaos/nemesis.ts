/**
 * The nemesis: a fault schedule drawn from the run's seed (planFaults, pure), and its
 * execution against the real processes, one fault at a time, each healed before the next.
 */
import { sendCommand, type Topology } from '../sentinel/topology.ts';
import type { PgCluster } from './cluster.ts';
import type { FaultKind, FaultRecord, History, RunClock } from './history.ts';
import type { Rng } from './prng.ts';
import { adminStatus, type AppInstance } from './services.ts';

export interface PlannedFault {
  kind: FaultKind;
  /** Planned start, ms from the start of the traffic. */
  atMs: number;
  /** How long the fault lasts before its heal begins. */
  durationMs: number;
  /** A number in [0, 1) that chooses the target where there is a choice (which app). */
  pick: number;
}

export interface PlanOptions {
  warmupMs?: number;
  /** Quiet time left at the end for the last heal. */
  tailMs?: number;
  gapMs?: [number, number];
  durationMs?: [number, number];
}

/**
 * A fault every 8–15 s (start to start), lasting 2–6 s; kinds drawn from a shuffled bag so a
 * short run still sees different kinds. Pure: the same seed gives the same plan.
 */
export function planFaults(rng: Rng, kinds: readonly FaultKind[], runMs: number, opts: PlanOptions = {}): PlannedFault[] {
  const warmup = opts.warmupMs ?? 4_000;
  const tail = opts.tailMs ?? 3_000;
  const [gapMin, gapMax] = opts.gapMs ?? [8_000, 15_000];
  const [durMin, durMax] = opts.durationMs ?? [2_000, 6_000];
  const plan: PlannedFault[] = [];
  if (kinds.length === 0) return plan;
  let bag: FaultKind[] = [];
  let at = warmup + rng.int(0, 2_000);
  for (;;) {
    if (bag.length === 0) {
      bag = [...kinds];
      for (let i = bag.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [bag[i], bag[j]] = [bag[j]!, bag[i]!];
      }
    }
    const kind = bag.pop()!;
    // app-kill: the instance is back after a second or two.
    const durationMs = kind === 'app-kill' ? rng.int(1_000, 2_000) : rng.int(durMin, durMax);
    const pick = rng.next();
    if (at + durationMs + tail > runMs) break;
    plan.push({ kind, atMs: at, durationMs, pick });
    at += rng.int(gapMin, gapMax);
  }
  return plan;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

export interface NemesisDeps {
  topology: Topology;
  pg: PgCluster;
  apps: AppInstance[];
  adminKey: string;
  history: History;
  clock: RunClock;
  log: (line: string) => void;
}

export class Nemesis {
  private nextId = 1;
  private stopped = false;

  constructor(private readonly d: NemesisDeps) {}

  stop(): void {
    this.stopped = true;
  }

  /** Runs the plan; `t0` is the run-clock time the plan's offsets count from. Resolves after the last heal. */
  async run(plan: PlannedFault[], t0: number): Promise<void> {
    let earliest = 0;
    for (const f of plan) {
      const startAt = Math.max(t0 + f.atMs, earliest);
      while (!this.stopped && this.d.clock.now() < startAt) await sleep(Math.min(200, startAt - this.d.clock.now()));
      if (this.stopped) return;
      const rec = await this.apply(f);
      // Quiet time after each heal, whatever the plan said.
      earliest = rec.healMs + 2_000;
    }
  }

  private async apply(f: PlannedFault): Promise<FaultRecord> {
    const { clock, topology, pg, apps, log } = this.d;
    const rec: FaultRecord = { id: this.nextId++, kind: f.kind, target: '', startMs: clock.now(), healMs: 0, notes: [] };
    this.d.history.faults.push(rec);
    const note = (s: string) => rec.notes.push(s);
    try {
      switch (f.kind) {
        case 'kill': {
          const master = await topology.currentMaster();
          const node = topology.nodeByPort(master.port)!;
          rec.target = `redis master ${master.port}`;
          rec.startMs = clock.now();
          await node.kill();
          await sleep(f.durationMs);
          // An empty node back before the sentinels elected another master would be followed as master.
          await topology.waitForNewMaster(master.port, 15_000).then(
            (m) => note(`new master ${m.port}`), (err) => note(`no new master: ${(err as Error).message}`));
          await node.restart();
          break;
        }
        case 'freeze': {
          const master = await topology.currentMaster();
          const node = topology.nodeByPort(master.port)!;
          rec.target = `redis master ${master.port}`;
          rec.startMs = clock.now();
          node.freeze();
          await sleep(f.durationMs);
          node.thaw();
          break;
        }
        case 'failover': {
          const master = await topology.currentMaster();
          rec.target = `redis master ${master.port}`;
          rec.startMs = clock.now();
          await this.sentinelFailover();
          await topology.waitForNewMaster(master.port, 10_000).then(
            (m) => note(`new master ${m.port}`), (err) => note(`no new master: ${(err as Error).message}`));
          break;
        }
        case 'redis-down': {
          rec.target = `redis nodes ${topology.nodes.map((n) => n.port).join(',')}`;
          rec.startMs = clock.now();
          await Promise.all(topology.nodes.map((n) => n.kill()));
          await sleep(f.durationMs);
          await Promise.all(topology.nodes.map((n) => n.restart()));
          break;
        }
        case 'pg-restart': {
          rec.target = `postgres :${pg.port}`;
          rec.startMs = clock.now();
          await pg.crash();
          await sleep(f.durationMs);
          await pg.start();
          break;
        }
        case 'app-kill': {
          const app = apps[Math.floor(f.pick * apps.length)]!;
          rec.target = `app${app.index} :${app.port}`;
          // Ideally while it drains the write-behind: wait (briefly) for pending entries.
          const until = Date.now() + 2_000;
          while (Date.now() < until) {
            const s = await adminStatus(app, this.d.adminKey, 500);
            if (s && (s.pending ?? 0) > 0) { note(`write-behind pending ${s.pending}`); break; }
            await sleep(50);
          }
          rec.startMs = clock.now();
          await app.kill();
          await sleep(f.durationMs);
          await app.start();
          break;
        }
      }
    } catch (err) {
      note(`fault step failed: ${(err as Error).message.split('\n')[0]}`);
      await this.healAll().catch((e) => note(`heal failed: ${(e as Error).message.split('\n')[0]}`));
    }
    rec.healMs = clock.now();
    log(`fault #${rec.id} ${rec.kind} ${rec.target}: ${((rec.healMs - rec.startMs) / 1000).toFixed(1)} s${rec.notes.length ? ` (${rec.notes.join('; ')})` : ''}`);
    return rec;
  }

  private async sentinelFailover(): Promise<void> {
    const errors: string[] = [];
    for (const s of this.d.topology.sentinelProcs) {
      try {
        await sendCommand(s.port, ['SENTINEL', 'FAILOVER', this.d.topology.masterName], 2_000);
        return;
      } catch (err) {
        errors.push(`${s.port}: ${(err as Error).message}`);
      }
    }
    throw new Error(`no sentinel accepted SENTINEL FAILOVER (${errors.join('; ')})`);
  }

  /** Everything back: thawed, restarted, started. Safe to call at any time. */
  async healAll(): Promise<void> {
    const { topology, pg, apps } = this.d;
    for (const n of topology.nodes) n.thaw();
    for (const n of topology.nodes) if (!n.running) await n.restart();
    if (!pg.running) await pg.start();
    for (const a of apps) if (!a.running) await a.start();
  }
}
