import { EventEmitter } from 'node:events';

export type Mode = 'redis' | 'sql' | 'rebuilding';

/**
 * Which store serves requests. `redis` is the fast path; `sql` serves everything from SQL
 * while Redis is out; `rebuilding` keeps serving from SQL while Redis is reloaded.
 */
export class ModeController extends EventEmitter {
  private mode: Mode = 'redis';
  private since = Date.now();

  get current(): Mode {
    return this.mode;
  }

  get sinceMs(): number {
    return this.since;
  }

  useRedis(): boolean {
    return this.mode === 'redis';
  }

  set(next: Mode, reason: string): void {
    if (next === this.mode) return;
    const prev = this.mode;
    this.mode = next;
    this.since = Date.now();
    this.emit('change', { from: prev, to: next, reason });
  }
}
