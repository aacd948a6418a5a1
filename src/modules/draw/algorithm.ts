import { createHash, createHmac, randomBytes } from 'node:crypto';

/**
 * The draw of a scheduled sale, written so that anyone can recompute it (docs/architecture.md,
 * "Scheduled sale"; scripts/verify-draw.ts does). Everything here is pure: the same seed and
 * tickets give the same order on every machine.
 */
export const DRAW_ALGORITHM =
  'sort tickets ascending; for i = n-1 down to 1: j = uniform in [0, i] from HMAC-SHA256(key = seed, message = "<i>:<attempt>"), '
  + 'first 6 bytes big-endian, rejecting values >= 2^48 - (2^48 mod (i+1)); swap tickets i and j';

/** A draw nonce the client may send: 16 to 64 hexadecimal characters. */
export const DRAW_NONCE = /^[0-9a-fA-F]{16,64}$/;

const RANGE = 2 ** 48;

const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** A new secret seed: 32 random bytes as lowercase hex (the seed string is what the commitment hashes). */
export function newDrawSeed(): string {
  return randomBytes(32).toString('hex');
}

/** What is published from creation on: lowercase hex SHA-256 of the seed's UTF-8 bytes. */
export function drawCommitment(seed: string): string {
  return sha256Hex(seed);
}

/** A nonce for a fan whose client sent none. */
export function newDrawNonce(): string {
  return randomBytes(16).toString('hex');
}

/**
 * A fan's draw ticket: SHA-256 of `<nonce lowercased>:<userId>`. The nonce comes from the fan's
 * client, so the server cannot pick tickets that land where it wants; the user id makes two fans
 * who chose the same nonce hold different tickets.
 */
export function drawTicket(nonce: string, userId: number): string {
  return sha256Hex(`${nonce.toLowerCase()}:${userId}`);
}

/** A uniform whole number in [0, bound) for step `step`: rejection sampling, so no value is favoured. */
export function uniformIndex(key: Buffer, step: number, bound: number): number {
  const limit = RANGE - (RANGE % bound);
  for (let attempt = 0; ; attempt++) {
    const mac = createHmac('sha256', key).update(`${step}:${attempt}`, 'utf8').digest();
    const x = mac.readUIntBE(0, 6);
    if (x < limit) return x % bound;
  }
}

/**
 * The drawn order of `tickets` under `seed`: the tickets sorted ascending (as strings; they are
 * lowercase hex), then a Fisher–Yates shuffle whose step i (from the last index down to 1)
 * swaps index i with the uniform index j ≤ i drawn from HMAC-SHA256(seed, "<i>:<attempt>").
 */
export function drawOrder(seed: string, tickets: readonly string[]): string[] {
  const order = [...tickets].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const key = Buffer.from(seed, 'utf8');
  for (let i = order.length - 1; i >= 1; i--) {
    const j = uniformIndex(key, i, i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}
