import type { Logger } from '../logger.ts';
import type { Backends } from '../backend/backends.ts';
import type { ModeChange, Sample } from '../modules/console/samples.ts';
import type { ModeController } from '../resilience/mode.ts';

export interface ConsoleSamplerOptions {
  intervalMs: number;
  owner: string;
  concerts: (now: number) => Promise<number[]>;
  /** The service's clock: samples are stamped with it. */
  clock: () => number;
}

/** The mode changes this instance keeps to report with its next sample (a few slots' worth). */
const KEEP_CHANGES = 32;

/**
 * Every interval, one instance of the fleet records each live concert's waiting room for the
 * operator console: counts, admissions so far, write-behind lag and the mode. The slot id is
 * floor(now / interval); the store of the current mode lets one instance claim it, as the
 * admission tick's id does for admissions. In Redis mode the samples go to Redis, otherwise to
 * SQL (see samples.ts).
 */
export class ConsoleSampler {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private pass: Promise<void> | null = null;
  private readonly changes: ModeChange[] = [];

  constructor(private readonly backends: Backends, private readonly mode: ModeController, private readonly log: Logger,
    private readonly opts: ConsoleSamplerOptions) {
    // Every instance follows the fleet's mode within a sync interval, so the one that samples
    // has seen the same changes as the others.
    mode.on('change', ({ from, to }: { from: ModeChange['from']; to: ModeChange['to'] }) => {
      this.changes.push({ at: this.opts.clock(), from, to });
      if (this.changes.length > KEEP_CHANGES) this.changes.shift();
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = async () => {
      if (!this.running) return;
      this.pass = this.sampleOnce().then(() => {}, (err) => this.log.warn('console sample failed', { err }));
      await this.pass;
      this.pass = null;
      if (!this.running) return;
      // On the slot grid, so that the instances meet on the same slot id.
      const now = Date.now();
      this.timer = setTimeout(loop, this.opts.intervalMs - (now % this.opts.intervalMs) + 1);
    };
    this.timer = setTimeout(loop, 0);
  }

  /** Stops the loop; the promise resolves when a pass that was under way has ended. */
  stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    return this.pass ?? Promise.resolve();
  }

  /** Samples the slot of `now` unless another instance has; the samples written (empty when not ours). */
  async sampleOnce(now = this.opts.clock()): Promise<Sample[]> {
    const { intervalMs } = this.opts;
    const slot = Math.floor(now / intervalMs);
    const mode = this.mode.current;
    const backend = this.backends.current;
    const store = backend.samples;
    if (!(await store.claim(slot, this.opts.owner, intervalMs))) return [];
    // A change belongs to the slot it happened in and is reported by the next slot's sample.
    const modeChanges = this.changes.filter((c) => Math.floor(c.at / intervalMs) === slot - 1);
    const concerts = await this.opts.concerts(now);
    const lags = await backend.writeBehind.lagSeconds(concerts);
    const samples: Sample[] = [];
    for (const concertId of concerts) {
      try {
        const c = await backend.queue.counts(concertId, now);
        samples.push({
          concertId, slot, at: now, waiting: c.waiting, active: c.active, admittedTotal: c.admittedTotal,
          lagSeconds: lags.get(concertId) ?? null, mode, modeChanges,
        });
      } catch (err) {
        // One concert that cannot be counted (just ended, not loaded) must not cost the others theirs.
        this.log.debug('console sample skipped a concert', { concertId, err });
      }
    }
    await store.append(samples, now, intervalMs);
    return samples;
  }
}
