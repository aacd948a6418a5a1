import type { Transaction } from 'kysely';
import type { Db } from './connect.ts';
import type { Database } from './schema.ts';

interface Waiter<T> { item: T; resolve: () => void; reject: (err: unknown) => void }

/**
 * Group commit: small writes that arrive together share one SQL transaction, so that a burst of
 * them costs one BEGIN/COMMIT (one fsync on PostgreSQL) instead of one each. A write waits at most
 * `windowMs` for company, or less once `maxBatch` are waiting; its promise settles only when the
 * transaction holding it has committed (or failed).
 *
 * A failed batch is tried again one item per transaction, so that a row SQL refuses fails its own
 * request only; when SQL itself is failing, each retry fails too and every caller gets the error.
 * `write` must therefore be safe to run again for items a failed commit may have kept.
 */
export class GroupCommitter<T> {
  /** Transactions begun, single retries included (for tests and the bench). */
  transactions = 0;
  private waiting: Waiter<T>[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly db: Db,
    private readonly write: (trx: Transaction<Database>, items: T[]) => Promise<void>,
    private readonly opts: { windowMs: number; maxBatch: number },
  ) {}

  /** Resolves once `item` is committed; rejects with the error that kept it out. */
  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.waiting.length >= this.opts.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.opts.windowMs);
    });
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.waiting;
    this.waiting = [];
    void this.commit(batch);
  }

  private async commit(batch: Waiter<T>[]): Promise<void> {
    try {
      this.transactions++;
      await this.db.transaction().execute((trx) => this.write(trx, batch.map((w) => w.item)));
    } catch (err) {
      if (batch.length === 1) return batch[0]!.reject(err);
      await Promise.all(batch.map((w) => this.commit([w])));
      return;
    }
    for (const w of batch) w.resolve();
  }
}
