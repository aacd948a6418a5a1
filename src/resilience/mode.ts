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

  get current(): Mode {
    return this.mode;
  }

  get sinceMs(): number {
    return this.since;
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
    this.emit('change', { from: prev, to: next, reason });
  }
}
