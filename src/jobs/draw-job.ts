import type { Logger } from '../logger.ts';
import type { Backends } from '../backend/backends.ts';
import type { SaleService } from '../modules/draw/sale.service.ts';

/**
 * Makes the draw of every scheduled sale whose opening has come (once: see recordDraw), and in
 * Redis mode puts recorded draws into Redis's line (again after Redis lost them: applyDraw is
 * idempotent). Every instance runs it; SQL and a Redis lease decide who does the work.
 */
export class DrawJob {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private pass: Promise<void> | null = null;

  constructor(private readonly sale: SaleService, private readonly backends: Backends,
    private readonly log: Logger, private readonly opts: { intervalMs: number; clock: () => number; load: (concertId: number) => Promise<void> }) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = async () => {
      if (!this.running) return;
      this.pass = this.tickOnce(this.opts.clock()).catch((err) => this.log.warn('draw pass failed', { err }));
      await this.pass;
      this.pass = null;
      if (this.running) this.timer = setTimeout(loop, this.opts.intervalMs);
    };
    this.timer = setTimeout(loop, 0);
  }

  stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    return this.pass ?? Promise.resolve();
  }

  async tickOnce(now: number): Promise<void> {
    // While Redis is rebuilt from SQL nothing that Redis owns may change (see ModeController.writable).
    if (!this.backends.writable) return;
    const backend = this.backends.current;
    for (const concertId of await this.sale.dueDraws(now)) {
      await this.sale.drawConcert(concertId, now, backend);
    }
    // Putting draws into Redis's line is Redis mode's work (the rebuild loads them otherwise).
    if (this.backends.current !== this.backends.redis) return;
    for (const concertId of await this.sale.drawnLiveConcerts(now)) {
      // Not in Redis at all: the load writes the drawn line from SQL.
      if ((await this.sale.applyDraw(concertId, now)) === 'unloaded') await this.opts.load(concertId);
    }
  }
}
