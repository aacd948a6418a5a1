import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Backends } from '../backend/backends.ts';

/**
 * Every tick, one admission step per live concert. The step itself (a Lua script in Redis
 * mode, a locked row in SQL mode) makes sure only one instance acts per concert per tick.
 */
export class AdmissionTicker {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private pass: Promise<void> | null = null;

  constructor(private readonly backends: Backends, private readonly log: Logger, private readonly metrics: Metrics,
    private readonly opts: { tickMs: number; concerts: (now: number) => Promise<number[]> }) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = async () => {
      if (!this.running) return;
      this.pass = this.tickOnce().catch((err) => this.log.warn('admission tick failed', { err }));
      await this.pass;
      this.pass = null;
      if (!this.running) return;
      // Align to the tick grid so instances meet on the same tick id.
      const now = Date.now();
      this.timer = setTimeout(loop, this.opts.tickMs - (now % this.opts.tickMs) + 1);
    };
    this.timer = setTimeout(loop, 0);
  }

  /** Stops the loop; the promise resolves when a tick that was under way has ended. */
  stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    return this.pass ?? Promise.resolve();
  }

  async tickOnce(now = Date.now()): Promise<void> {
    // The tick's start in ms: monotonic even when ADMISSION_TICK_MS changes between runs.
    const tickId = Math.floor(now / this.opts.tickMs) * this.opts.tickMs;
    if (!this.backends.writable) return;
    const backend = this.backends.current;
    const store = backend.queue;
    for (const concertId of await this.opts.concerts(now)) {
      // Admissions are stream entries too: none while the concert's record is too far behind.
      if (backend.writeBehind.full(concertId)) continue;
      const out = await store.admitTick(concertId, now, tickId);
      if (!out) continue;
      if (out.unrecorded !== undefined) this.log.warn('admissions wait: SQL did not record them', { concertId, err: out.unrecorded });
      const label = String(concertId);
      this.metrics.waiting.set({ concert: label }, out.waiting);
      this.metrics.active.set({ concert: label }, out.active);
      if (out.admitted) this.metrics.admissions.inc({ concert: label }, out.admitted);
      if (out.skipped) this.metrics.lapsed.inc({ concert: label }, out.skipped);
    }
  }
}
