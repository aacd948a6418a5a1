import { EventEmitter } from 'node:events';
import { errors } from '../errors.ts';

export type Mode = 'redis' | 'sql' | 'rebuilding';

/**
 * Which store serves requests. `redis` is the fast path; `sql` serves everything from SQL
 * while Redis is out; `rebuilding` keeps serving from SQL while Redis is reloaded.
 */
export class ModeController extends EventEmitter {
  private mode: Mode = 'redis';
  private since = Date.now();
  /**
   * When this instance last moved to SQL mode, on the service clock; 0 before. Redis-mode polls
   * never reach SQL, so on moving to SQL mode every waiting user's grace restarts then.
   */
  private sqlSince = 0;

  constructor(private readonly clock: () => number = Date.now) {
    super();
  }

  get current(): Mode {
    return this.mode;
  }

  get sinceMs(): number {
    return this.since;
  }

  /** When this instance last entered `sql` (service clock), 0 if it never has. */
  get sqlSinceMs(): number {
    return this.sqlSince;
  }

  useRedis(): boolean {
    return this.mode === 'redis';
  }

  /**
   * While Redis is being rebuilt from SQL, changes to Redis-owned state (places, admissions,
   * holds, draws) wait: a change made in SQL after its concert was reloaded would be missing
   * from Redis. Reads and money keep flowing from SQL; the pause lasts as long as the rebuild.
   */
  get writable(): boolean {
    return this.mode !== 'rebuilding';
  }

  assertWritable(): void {
    if (this.mode === 'rebuilding') throw errors.unavailable('the cache is being rebuilt; retry in a moment', 1);
  }

  set(next: Mode, reason: string): void {
    if (next === this.mode) return;
    const prev = this.mode;
    this.mode = next;
    this.since = Date.now();
    if (next === 'sql') this.sqlSince = this.clock();
    this.emit('change', { from: prev, to: next, reason });
  }
}
