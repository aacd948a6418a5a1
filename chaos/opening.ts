/**
 * The opening of a scheduled sale under faults: fans pre-queue for a concert whose sale opens
 * during the run (with a fault planned across the opening), keep the heartbeat as the service
 * asks, and go on polling once drawn. Their requests go to their own history, so the rules of
 * the ordinary line (checker.ts) never judge pre-queue answers; this file's rules judge them:
 * the published draw recomputes from its seed, the drawn order SQL recorded is the published
 * one, every fan who kept the heartbeat has a place, and nobody who joined later is ahead.
 */
import { createHash } from 'node:crypto';
import { drawOrder } from '../src/modules/draw/algorithm.ts';
import type { ChaosClient } from './client.ts';
import type { Violation } from './checker.ts';
import { Rng } from './prng.ts';

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

export interface OpeningFan {
  userId: number;
  nonce: string;
  ticket?: string;
  token?: string;
  /** Run-axis times of answers that kept the heartbeat (a pre-queue join or poll answered 200/201 "prequeue"). */
  beats: number[];
  /** Run-axis time of a 401 while pre-queued (the place was refused as lost). */
  lostMs?: number;
  /** The first position answered after the draw. */
  drawnPosition?: number;
  /** Joins only after the opening: an ordinary place, behind every drawn fan. */
  late: boolean;
}

export class OpeningFans {
  readonly fans: OpeningFan[];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly client: ChaosClient, private readonly opts: {
    concertId: number; firstUserId: number; fans: number; lateFans: number; seed: number; now: () => number; openingMs: number; maxPollMs: number;
  }) {
    const rng = Rng.of(opts.seed, 'opening');
    this.fans = Array.from({ length: opts.fans + opts.lateFans }, (_, i) => ({
      userId: opts.firstUserId + i, nonce: Array.from({ length: 32 }, () => rng.int(0, 15).toString(16)).join(''), beats: [],
      late: i >= opts.fans,
    }));
  }

  start(): void {
    this.running = true;
    this.loops = this.fans.map((f, i) => this.run(f, i));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private call(f: OpeningFan, i: number, op: 'token' | 'challenge' | 'join' | 'poll', method: 'GET' | 'POST', path: string, token?: string, body?: unknown) {
    return this.client.call({ fan: 10_000 + i, userId: f.userId, instance: (i + f.beats.length) % this.client.instanceCount, op, method, path, token, body });
  }

  /** A solved join challenge; null when the service asks for none (404), 'retry' when it did not answer. */
  private async solveChallenge(f: OpeningFan, i: number): Promise<{ challenge: string; nonce: string } | null | 'retry'> {
    const r = await this.call(f, i, 'challenge', 'GET', '/v1/challenge');
    if (r.op.status === 404) return null;
    if (r.op.status !== 200 || typeof r.body?.challenge !== 'string') return 'retry';
    const { challenge, bits } = r.body as { challenge: string; bits: number };
    for (let n = 0; ; n++) {
      const nonce = n.toString(36);
      const word = createHash('sha256').update(`${challenge}:${nonce}`).digest().readUInt32BE(0);
      if (bits === 0 || word >>> (32 - bits) === 0) return { challenge, nonce };
    }
  }

  private async run(f: OpeningFan, i: number): Promise<void> {
    while (f.late && this.running && this.opts.now() < this.opts.openingMs + 1_000) await sleep(200);
    // Join, retrying through faults with the same nonce: the ticket must not change.
    while (this.running && !f.token) {
      const t = await this.call(f, i, 'token', 'POST', '/v1/tokens', undefined, { userId: f.userId });
      if (t.op.status !== 201) { await sleep(500); continue; }
      // With JOIN_POW_BITS the join shows a solved challenge, as every fan's join does.
      const pow = await this.solveChallenge(f, i);
      if (pow === 'retry') { await sleep(500); continue; }
      const j = await this.call(f, i, 'join', 'POST', `/v1/concerts/${this.opts.concertId}/queue`, String(t.body.token),
        { drawNonce: f.nonce, ...(pow ? { pow } : {}) });
      if ((j.op.status === 201 || j.op.status === 200) && j.body.status === 'prequeue') {
        f.token = String(j.body.token);
        f.ticket = String(j.body.drawTicket);
        f.beats.push(j.op.completeMs);
      } else if ((j.op.status === 201 || j.op.status === 200) && f.late) {
        f.token = String(j.body.token);
      } else {
        await sleep(Math.max(300, j.retryAfterMs));
      }
    }
    while (this.running && f.token && f.lostMs === undefined) {
      const r = await this.call(f, i, 'poll', 'GET', '/v1/queue/me', f.token);
      let wait = 1_000;
      if (r.op.status === 200) {
        if (typeof r.body.token === 'string') f.token = r.body.token;
        if (r.body.status === 'prequeue') f.beats.push(r.op.completeMs);
        else if (f.drawnPosition === undefined && typeof r.body.position === 'number') f.drawnPosition = r.body.position;
        wait = Math.min(this.opts.maxPollMs, Number(r.body.pollAfterSeconds ?? 1) * 1000);
      } else if (r.op.status === 401) {
        if (f.drawnPosition === undefined) f.lostMs = r.op.completeMs;
        return;
      } else {
        wait = Math.max(300, r.retryAfterMs);
      }
      await sleep(wait);
    }
  }
}

export interface OpeningFacts {
  /** The commitment the concert showed at creation. */
  commitment: string;
  /** GET /v1/concerts/:id/draw, or null when it never answered 200. */
  published: { seed: string; commitment: string; tickets: string[] } | null;
  /** SQL: the pre-queue in drawn order, and the concert's queue entries. */
  prequeue: { userId: number; ticket: string; drawnSeq: number | null; status: string }[];
  entries: { seq: number; userId: number }[];
  /** When the sale opened, on the run's axis. */
  openingMs: number;
}

/** The opening's rules; violations use the 'opening-draw' invariant. */
export function checkOpening(fans: OpeningFan[], facts: OpeningFacts, cfg: { graceMs: number; graceMarginMs: number }): Violation[] {
  const out: Violation[] = [];
  const v = (message: string, fanIds: number[] = []) => out.push({ invariant: 'opening-draw', message, fans: fanIds, opIds: [] });
  const pub = facts.published;
  if (!pub) {
    v('the draw was never published (GET /v1/concerts/:id/draw did not answer 200 after the opening)');
    return out;
  }
  if (pub.commitment !== facts.commitment) v(`the published commitment ${pub.commitment} is not the one shown at creation ${facts.commitment}`);
  if (createHash('sha256').update(pub.seed, 'utf8').digest('hex') !== pub.commitment) v('the published seed does not hash to the commitment');
  const recomputed = drawOrder(pub.seed, pub.tickets);
  if (recomputed.some((t, i) => t !== pub.tickets[i])) v('the published order is not the order the seed gives its tickets');
  const drawn = facts.prequeue.filter((p) => p.drawnSeq !== null).sort((a, b) => a.drawnSeq! - b.drawnSeq!);
  if (drawn.map((p) => p.ticket).join() !== pub.tickets.join()) {
    v(`the drawn order SQL recorded (${drawn.length} fans) is not the published order (${pub.tickets.length} tickets)`);
  }
  const bySeq = new Map(facts.entries.map((e) => [e.seq, e.userId]));
  const first = drawn[0]?.drawnSeq ?? 0;
  drawn.forEach((p, k) => {
    if (p.drawnSeq !== first + k) v(`drawn entry numbers are not consecutive at ${p.drawnSeq}`, [p.userId]);
    if (bySeq.get(p.drawnSeq!) !== p.userId) v(`entry ${p.drawnSeq} is not the drawn fan ${p.userId}'s`, [p.userId]);
  });
  const lastDrawn = drawn.length ? drawn[drawn.length - 1]!.drawnSeq! : 0;
  const drawnUsers = new Set(drawn.map((p) => p.userId));
  for (const e of facts.entries) {
    if (e.seq <= lastDrawn && !drawnUsers.has(e.userId) && e.seq >= first) v(`entry ${e.seq} inside the draw belongs to ${e.userId}, who was not drawn`, [e.userId]);
    if (e.seq < first) v(`entry ${e.seq} is ahead of the draw: someone took a place before the drawn fans`, [e.userId]);
  }
  for (const f of fans.filter((x) => x.late && x.token)) {
    const own = facts.entries.filter((e) => e.userId === f.userId);
    for (const e of own) if (e.seq <= lastDrawn) v(`fan ${f.userId} joined after the opening yet holds entry ${e.seq}, inside the draw`, [f.userId]);
  }
  const windowStart = facts.openingMs - cfg.graceMs + cfg.graceMarginMs;
  const tickets = new Set(pub.tickets);
  for (const f of fans) {
    if (!f.ticket) continue;
    const kept = f.beats.some((t) => t >= windowStart && t <= facts.openingMs) && (f.lostMs === undefined || f.lostMs > facts.openingMs);
    if (kept && !tickets.has(f.ticket)) v(`fan ${f.userId} kept the heartbeat (last pre-queue answer at ${Math.max(...f.beats)} ms, opening at ${Math.round(facts.openingMs)} ms) but is not in the draw`, [f.userId]);
    if (kept && f.lostMs !== undefined) v(`fan ${f.userId} kept the heartbeat but was told its place was lost`, [f.userId]);
    if (f.drawnPosition !== undefined && !tickets.has(f.ticket)) v(`fan ${f.userId} was given position ${f.drawnPosition} without being drawn`, [f.userId]);
  }
  return out;
}
