import { hasLeadingZeroBits, powDigest } from '../../src/modules/pow/challenge.ts';
import type { createApp } from '../../src/http/app.ts';
import { call } from './http.ts';

type App = ReturnType<typeof createApp>;

/** The first counter nonce (0, 1, 2, ... in base 36) whose digest meets `bits`: what a client's solver does. */
export function solvePow(challenge: string, bits: number): string {
  for (let i = 0; ; i++) {
    const nonce = i.toString(36);
    if (hasLeadingZeroBits(powDigest(challenge, nonce), bits)) return nonce;
  }
}

/** A nonce whose digest does not meet `bits` (a wrong answer). */
export function wrongNonce(challenge: string, bits: number): string {
  for (let i = 0; ; i++) {
    const nonce = `x${i}`;
    if (!hasLeadingZeroBits(powDigest(challenge, nonce), bits)) return nonce;
  }
}

export async function getChallenge(app: App): Promise<{ challenge: string; bits: number; expiresAt: string }> {
  const r = await call(app, 'GET', '/v1/challenge');
  if (r.status !== 200) throw new Error(`challenge: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A fresh challenge, solved. */
export async function solvedChallenge(app: App): Promise<{ challenge: string; nonce: string }> {
  const c = await getChallenge(app);
  return { challenge: c.challenge, nonce: solvePow(c.challenge, c.bits) };
}

export function joinWith(app: App, concertId: number, token: string, body?: unknown) {
  return call(app, 'POST', `/v1/concerts/${concertId}/queue`, { token, body });
}
