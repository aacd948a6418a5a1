import type { ModeController } from '../resilience/mode.ts';
import type { RedisBackend } from './redis.ts';
import type { SqlBackend } from './sql.ts';
import type { Backend } from './types.ts';

/**
 * The two backends and the one that serves: Redis in Redis mode, SQL in SQL mode and while
 * Redis is rebuilt. The mode controller moves it; a request reads `current` once and uses that
 * backend throughout (a field read: polls pay nothing for it).
 */
export class Backends {
  private serving: Backend;

  constructor(private readonly mode: ModeController, readonly redis: RedisBackend, readonly sql: SqlBackend) {
    const serving = () => (mode.useRedis() ? redis : sql);
    this.serving = serving();
    mode.on('change', () => { this.serving = serving(); });
  }

  get current(): Backend {
    return this.serving;
  }

  /** The write gate (see ModeController.writable). */
  get writable(): boolean {
    return this.mode.writable;
  }

  assertWritable(): void {
    this.mode.assertWritable();
  }
}
