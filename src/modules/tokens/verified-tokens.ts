/**
 * Tokens whose signature has been checked, keyed by the exact token string, so that a poll does
 * not verify the same string again (hono/jwt's WebCrypto HMAC costs more than the rest of a poll's
 * token handling). Safe to skip the check on a hit: the same bytes were verified before, and only
 * verified tokens get in (a made-up string can never fill it). Revocation is not this cache's
 * business: the stores check the token's server-side record on every use anyway.
 *
 * Bounded: at most `cap` entries, the least recently used going first (a Map keeps insertion
 * order; a hit moves its entry to the end). A hit on an entry that is among the newest half
 * (fewer than cap / 2 entries were added or moved after it) leaves it where it is: it is not
 * next in line to go, and the move would cost a delete and an insert of the key on every poll.
 * So every hit keeps its entry for at least cap / 2 further additions. An entry is served only
 * strictly before its token's exp, by the caller's clock, whatever the verification leeway: past
 * exp the token is verified again (and judged with the leeway) rather than answered from here.
 */
export class VerifiedTokens<V extends { exp: number }> {
  private readonly entries = new Map<string, { value: V; stamp: number }>();
  /** Counts additions and moves: an entry's stamp says how many happened before it got its place. */
  private stamps = 0;

  constructor(readonly cap: number) {
    if (!Number.isSafeInteger(cap) || cap < 0) throw new Error(`cache cap must be a whole number ≥ 0, got ${cap}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entry for `token` if its exp (seconds) is still ahead of `nowMs`; an expired one is dropped. */
  get(token: string, nowMs: number): V | undefined {
    const e = this.entries.get(token);
    if (e === undefined) return undefined;
    if (e.value.exp * 1000 <= nowMs) {
      this.entries.delete(token);
      return undefined;
    }
    if (this.stamps - e.stamp >= this.cap / 2) {
      this.entries.delete(token);
      e.stamp = ++this.stamps;
      this.entries.set(token, e);
    }
    return e.value;
  }

  /** Remembers a verified token (not one already past its exp), evicting the least recently used. */
  set(token: string, value: V, nowMs: number): void {
    if (this.cap === 0 || value.exp * 1000 <= nowMs) return;
    this.entries.delete(token);
    if (this.entries.size >= this.cap) {
      // A Map iterates in insertion order: its first key is the least recently used.
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(token, { value, stamp: ++this.stamps });
  }

  clear(): void {
    this.entries.clear();
  }
}
