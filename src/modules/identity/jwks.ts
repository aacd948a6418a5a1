import type { webcrypto } from 'node:crypto';
import { errors } from '../../errors.ts';
import type { Logger } from '../../logger.ts';

/** A key from the identity provider's JWKS, as WebCrypto imports it. */
export type Jwk = webcrypto.JsonWebKey & { kid: string };

/** Keys older than this are fetched again (a provider that retires a key is followed within it). */
const MAX_AGE_MS = 10 * 60_000;
/** Unknown kids refetch at most this often: made-up kids must not turn into a flood of fetches. */
const REFETCH_MIN_MS = 30_000;
/** After a failed fetch, wait this long before the next try; meanwhile answer 503 at once. */
const FAILURE_BACKOFF_MS = 5_000;

/**
 * The identity provider's signing keys (AUTH_JWKS_URL), cached by kid. A fetch has a timeout and
 * at most one runs at a time; while the provider is down, cached keys keep working and tokens
 * that need a key we do not have answer 503 (not 401: the token may be fine).
 */
export class JwksKeys {
  private keys = new Map<string, Jwk>();
  private fetchedAt = -Infinity;
  private triedAt = -Infinity;
  private failure: string | null = null;
  private inFlight: Promise<void> | null = null;
  /** Completed fetch attempts, for tests and metrics. */
  fetches = 0;

  constructor(private readonly url: string, private readonly timeoutMs: number, private readonly clock: () => number,
    private readonly log: Logger, private readonly accept: (key: Jwk) => boolean) {}

  /** The key with this kid; undefined when the provider does not have it. */
  async keyFor(kid: string): Promise<Jwk | undefined> {
    const now = this.clock();
    const known = this.keys.get(kid);
    if (known && now - this.fetchedAt < MAX_AGE_MS) return known;
    // A fetch under way may bring the key: wait for it rather than refuse.
    if (this.inFlight) await this.inFlight;
    else if (now - this.triedAt >= (this.failure ? FAILURE_BACKOFF_MS : REFETCH_MIN_MS) || now < this.triedAt) await this.refresh(now);
    const key = this.keys.get(kid);
    if (key) return key;
    if (this.failure) {
      throw errors.unavailable(`the identity provider's keys (AUTH_JWKS_URL) cannot be fetched: ${this.failure}`,
        Math.ceil(FAILURE_BACKOFF_MS / 1000));
    }
    return undefined;
  }

  private refresh(now: number): Promise<void> {
    this.inFlight ??= this.load(now).finally(() => { this.inFlight = null; });
    return this.inFlight;
  }

  private async load(now: number): Promise<void> {
    this.triedAt = now;
    try {
      const res = await fetch(this.url, { signal: AbortSignal.timeout(this.timeoutMs), headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = (await res.json()) as { keys?: unknown };
      if (!Array.isArray(body?.keys)) throw new Error('the answer has no "keys" array');
      const keys = new Map<string, Jwk>();
      for (const k of body.keys as Jwk[]) {
        if (k && typeof k === 'object' && typeof k.kid === 'string' && this.accept(k)) keys.set(k.kid, k);
      }
      this.keys = keys;
      this.fetchedAt = now;
      this.failure = null;
    } catch (err) {
      const e = err as Error;
      this.failure = e.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : e.message || String(err);
      this.log.warn('identity provider keys could not be fetched', { url: this.url, reason: this.failure });
    } finally {
      this.fetches++;
    }
  }
}
