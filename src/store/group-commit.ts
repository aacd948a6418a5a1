interface Waiter<T> { item: T; resolve: () => void; reject: (err: unknown) => void }

/**
 * Group commit: small writes that arrive together are committed together, so that a burst of
 * them costs one commit (one round trip and one WAL flush on PostgreSQL) instead of one each.
 * While fewer than `inFlight` commits are under way a write goes at once (a lone write waits for
 * nobody); otherwise it waits for one of them to return, at most `windowMs`, or less once
 * `maxBatch` are waiting, and goes with everything that came meanwhile. So batches grow with the
 * load and no write waits for a timer it does not need. Its promise settles only when the commit
 * holding it has returned.
 *
 * `commit` must write all of its items atomically (one transaction, or one statement). A failed
 * batch is tried again one item per commit, so that a row SQL refuses fails its own caller only;
 * when SQL itself is failing, each retry fails too and every caller gets the error. `commit` must
 * therefore be safe to run again for items a failed commit may have kept.
 */
export class GroupCommitter<T> {
  /** Commits begun, single retries included (for tests and the bench). */
  commits = 0;
  private waiting: Waiter<T>[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = 0;

  constructor(
    private readonly commit: (items: T[]) => Promise<void>,
    private readonly opts: { windowMs: number; maxBatch: number; inFlight: number },
  ) {}

  /** Resolves once `item` is committed; rejects with the error that kept it out. */
  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.running < this.opts.inFlight || this.waiting.length >= this.opts.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.opts.windowMs);
    });
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.waiting.length === 0) return;
    const batch = this.waiting;
    this.waiting = [];
    this.running++;
    void this.write(batch).finally(() => {
      this.running--;
      // What arrived while this commit ran goes now, rather than at its timer.
      if (this.waiting.length > 0 && this.running < this.opts.inFlight) this.flush();
    });
  }

  private async write(batch: Waiter<T>[]): Promise<void> {
    try {
      this.commits++;
      await this.commit(batch.map((w) => w.item));
    } catch (err) {
      if (batch.length === 1) return batch[0]!.reject(err);
      await Promise.all(batch.map((w) => this.write([w])));
      return;
    }
    for (const w of batch) w.resolve();
  }
}
