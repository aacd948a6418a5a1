/**
 * Runs many callers' small SQL writes as one batch (group commit): a caller hands in its item
 * and waits for the batch it lands in. At most `inFlight` batches are under way at a time; items
 * that arrive while all are busy wait and then go together in the next one (at most `maxBatch`
 * each), so the batches grow with the load and a lone caller waits for one batch only. `run` answers
 * per item, in order: a result, or an Error for that item alone; a thrown error fails the batch.
 * Unlike GroupCommitter (src/store/group-commit.ts, for writes that either land or fail), the
 * batch itself decides which items it refuses and answers each, and nothing is retried here.
 * 100 items a batch keep a batch's widest INSERT (9 columns) under SQLite's 999 bound parameters.
 */
export class GroupCommit<I, O> {
  private queue: { item: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = [];
  private running = 0;

  constructor(private readonly run: (items: I[]) => Promise<(O | Error)[]>, private readonly maxBatch = 100,
    private readonly inFlight = 2) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.running < this.inFlight) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running++;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const out = await this.run(batch.map((b) => b.item));
          batch.forEach((b, i) => {
            const o = out[i];
            if (o instanceof Error) b.reject(o);
            else b.resolve(o as O);
          });
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.running--;
    }
  }
}
