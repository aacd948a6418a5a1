/*
 * Proof-of-work solver for joins, run as a Web Worker:
 *
 *   const worker = new Worker('/assets/pow-worker.js');
 *   worker.onmessage = (e) => { ... };            // {type: 'progress', tried} now and then,
 *   worker.postMessage({ challenge, bits });      // then {type: 'done', nonce, tried}
 *
 * It finds a nonce such that SHA-256(challenge + ":" + nonce) starts with `bits` zero bits, as
 * GET /v1/challenge asks. One message, one solve; terminate() the worker to give up. A message
 * it cannot use answers {type: 'error', message}.
 *
 * SHA-256 is computed here in plain JavaScript rather than with crypto.subtle.digest: the input
 * is short and only the nonce changes, so the blocks that hold nothing but the challenge are
 * hashed once and each attempt costs a single compression, without a promise per attempt
 * (docs/operations.md has the measured rates of both). It also works on pages served over
 * plain HTTP, where crypto.subtle does not exist. `engine: 'subtle'` in the message uses
 * crypto.subtle instead, for comparison.
 */
'use strict';

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/** Attempts between two progress messages. */
const PROGRESS_EVERY = 1 << 16;
/** Hex digits of the counter part of the nonce: 16^10 attempts, far past any sane difficulty. */
const COUNTER_DIGITS = 10;
const HEX = [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102]; // '0'-'9', 'a'-'f'

const w = new Int32Array(64);

/** One SHA-256 compression of the 64 bytes at `bytes[offset..]` into `state` (8 words). */
function compress(state, bytes, offset) {
  for (let i = 0; i < 16; i++) {
    const j = offset + i * 4;
    w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15];
    const y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = state[0], b = state[1], c = state[2], d = state[3], e = state[4], f = state[5], g = state[6], h = state[7];
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + S1 + ch + K[i] + w[i]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (S0 + maj) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0;
    d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0; state[1] = (state[1] + b) | 0; state[2] = (state[2] + c) | 0; state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0; state[5] = (state[5] + f) | 0; state[6] = (state[6] + g) | 0; state[7] = (state[7] + h) | 0;
}

/** Does a digest whose first word is `word0` start with `bits` (0..32) zero bits? */
function meets(word0, bits) {
  return bits === 0 || (word0 >>> (32 - bits)) === 0;
}

/**
 * Synchronous search. The nonce is a filler of '0's that ends the fixed part (challenge, ':',
 * filler) on a 64-byte block boundary, then a 10-digit hex counter: the fixed blocks are hashed
 * once, and an attempt rewrites the counter's bytes and compresses one block.
 */
function solveJs(challenge, bits, progress) {
  const fixed = new TextEncoder().encode(challenge + ':');
  let filler = (64 - (fixed.length % 64)) % 64;
  // Nonces are at most 64 characters.
  if (filler + COUNTER_DIGITS > 64) filler = 0;
  const headLength = fixed.length + filler;
  const fullBlocks = Math.floor(headLength / 64);
  const messageLength = headLength + COUNTER_DIGITS;
  const tailLength = messageLength - fullBlocks * 64 + 9 <= 64 ? 64 : 128;
  const head = new Uint8Array(fullBlocks * 64 + tailLength);
  head.set(fixed);
  head.fill(48, fixed.length, headLength);
  head.fill(48, headLength, messageLength);
  head[messageLength] = 0x80;
  // Message length in bits, big-endian, in the last 8 bytes (2^53 is plenty).
  const bitLength = messageLength * 8;
  const end = head.length;
  head[end - 4] = (bitLength >>> 24) & 255; head[end - 3] = (bitLength >>> 16) & 255;
  head[end - 2] = (bitLength >>> 8) & 255; head[end - 1] = bitLength & 255;
  head[end - 5] = Math.floor(bitLength / 2 ** 32) & 255;

  const mid = new Int32Array(IV);
  for (let blk = 0; blk < fullBlocks; blk++) compress(mid, head, blk * 64);
  const tailStart = fullBlocks * 64;
  const state = new Int32Array(8);
  const digits = new Uint8Array(COUNTER_DIGITS); // the counter, least significant digit last
  for (let tried = 1; ; tried++) {
    state.set(mid);
    compress(state, head, tailStart);
    if (tailLength === 128) compress(state, head, tailStart + 64);
    if (meets(state[0], bits)) {
      return { nonce: new TextDecoder().decode(head.subarray(fixed.length, messageLength)), tried };
    }
    if ((tried & (PROGRESS_EVERY - 1)) === 0) progress(tried);
    // Next counter value, in place.
    for (let i = COUNTER_DIGITS - 1; i >= 0; i--) {
      const dv = (digits[i] + 1) & 15;
      digits[i] = dv;
      head[headLength + i] = HEX[dv];
      if (dv !== 0) break;
    }
  }
}

/** The same search with crypto.subtle.digest, a batch of digests in flight at a time. */
async function solveSubtle(challenge, bits, progress) {
  const encoder = new TextEncoder();
  const batch = 512;
  let next = 0;
  for (;;) {
    const nonces = [];
    const digests = [];
    for (let i = 0; i < batch; i++) {
      const nonce = (next++).toString(36);
      nonces.push(nonce);
      digests.push(crypto.subtle.digest('SHA-256', encoder.encode(challenge + ':' + nonce)));
    }
    const done = await Promise.all(digests);
    for (let i = 0; i < batch; i++) {
      const v = new DataView(done[i]);
      if (meets(v.getUint32(0) | 0, bits)) return { nonce: nonces[i], tried: next - batch + i + 1 };
    }
    if (next % PROGRESS_EVERY < batch) progress(next);
  }
}

self.onmessage = async (event) => {
  const { challenge, bits, engine } = event.data || {};
  if (typeof challenge !== 'string' || challenge.length === 0 || !Number.isInteger(bits) || bits < 0 || bits > 32) {
    self.postMessage({ type: 'error', message: 'expected {challenge: string, bits: whole number 0..32}' });
    return;
  }
  const progress = (tried) => self.postMessage({ type: 'progress', tried });
  try {
    const found = engine === 'subtle' ? await solveSubtle(challenge, bits, progress) : solveJs(challenge, bits, progress);
    self.postMessage({ type: 'done', nonce: found.nonce, tried: found.tried });
  } catch (err) {
    // crypto.subtle is missing outside secure contexts (plain HTTP other than localhost).
    self.postMessage({ type: 'error', message: String((err && err.message) || err) });
  }
};
