/** How long a read of the live concerts is reused. */
const FRESH_MS = 1000;

/**
 * The set of live concerts, for the jobs that walk it every tick. It changes only when a concert
 * is created (the catalog then calls `forget`) or ends; it is read from SQL at most once a second.
 */
export class LiveConcerts {
  private last: { at: number; ids: Promise<number[]> } | null = null;

  constructor(private readonly read: (now: number) => Promise<number[]>) {}

  ids(now: number): Promise<number[]> {
    const last = this.last;
    // A clock that reads earlier than the cached entry (stepped back) must not pin a stale list.
    if (last && now - last.at <= FRESH_MS && now >= last.at) return last.ids;
    const ids = this.read(now);
    this.last = { at: now, ids };
    ids.catch(() => { this.last = null; });
    return ids;
  }

  forget(): void {
    this.last = null;
  }
}
