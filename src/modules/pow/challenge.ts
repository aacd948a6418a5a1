import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** How long a challenge may be answered. */
export const CHALLENGE_LIFE_MS = 120_000;

export interface IssuedChallenge { challenge: string; bits: number; expiresAt: number }

/** A challenge whose signature held: what it says about itself. */
export interface OpenedChallenge { id: string; bits: number; expiresAt: number }

// bits . expiry (epoch ms) . 12 random bytes . 16 bytes of HMAC-SHA-256, all URL-safe ASCII.
const SHAPE = /^(\d{1,2})\.(\d{13})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{22})$/;

/** Does `digest` start with at least `bits` zero bits? */
export function hasLeadingZeroBits(digest: Uint8Array, bits: number): boolean {
  const whole = bits >> 3;
  for (let i = 0; i < whole; i++) if (digest[i] !== 0) return false;
  const rest = bits & 7;
  return rest === 0 || (digest[whole]! >> (8 - rest)) === 0;
}

/** SHA-256 of `challenge:nonce` as the client hashes it (UTF-8). */
export function powDigest(challenge: string, nonce: string): Buffer {
  return createHash('sha256').update(`${challenge}:${nonce}`, 'utf8').digest();
}

/**
 * Stateless join challenges: everything a check needs travels in the string, signed with a key
 * derived from JWT_SECRET under a label of its own (a challenge can never pass for a token, nor
 * the reverse), so any instance sharing the secret checks any instance's challenge.
 */
export class ChallengeCodec {
  private readonly key: Buffer;

  constructor(jwtSecret: string) {
    this.key = createHmac('sha256', jwtSecret).update('ticketing/join-pow-challenge/v1').digest();
  }

  issue(bits: number, now: number): IssuedChallenge {
    const expiresAt = now + CHALLENGE_LIFE_MS;
    const body = `${bits}.${expiresAt}.${randomBytes(12).toString('base64url')}`;
    return { challenge: `${body}.${this.mac(body).toString('base64url')}`, bits, expiresAt };
  }

  /** What the challenge says, when this service signed it; null for anything else. */
  open(challenge: string): OpenedChallenge | null {
    const m = SHAPE.exec(challenge);
    if (!m) return null;
    const body = challenge.slice(0, challenge.lastIndexOf('.'));
    const given = Buffer.from(m[4]!, 'base64url');
    if (given.length !== 16 || !timingSafeEqual(given, this.mac(body))) return null;
    return { id: m[3]!, bits: Number(m[1]), expiresAt: Number(m[2]) };
  }

  private mac(body: string): Buffer {
    return createHmac('sha256', this.key).update(body).digest().subarray(0, 16);
  }
}
