/**
 * The workload: N fans, each a loop that does what a real client does, over plain HTTP against
 * a randomly chosen instance: user token → charge → join → poll at the interval the server
 * asks for (bounded) → sometimes leave → once active: schedules, seat map, hold, sometimes
 * release, pay (sometimes with an Idempotency-Key), read the reservation and the balance →
 * start over. Every choice comes from the fan's own seeded stream (prng.ts).
 *
 * GET /v1/me/reservations does not exist yet (another issue adds it), so fans do not call it.
 */
import { createHash } from 'node:crypto';
import type { ChaosClient, CallResult, CallSpec } from './client.ts';
import type { OpKind, Phase } from './history.ts';
import { Rng } from './prng.ts';
import type { ConcertSetup } from './services.ts';

export interface FanOptions {
  fans: number;
  firstUserId: number;
  concerts: ConcertSetup[];
  seed: number;
  /** Longest time between two polls of a waiting fan (the grace is much longer). */
  maxPollMs: number;
}

export interface PaidReservation {
  reservationId: string;
  scheduleId: number;
  seatNumber: number;
}

const CHARGE = 1_000_000;

/** A solved join challenge; expiresMs on the run's axis. */
interface Pow { challenge: string; nonce: string; expiresMs: number }

class Stop {
  stopped = false;
  private wake: (() => void)[] = [];
  stop() {
    this.stopped = true;
    for (const w of this.wake.splice(0)) w();
  }
  sleep(ms: number): Promise<void> {
    if (this.stopped || ms <= 0) return Promise.resolve();
    return new Promise<void>((done) => {
      const t = setTimeout(() => { this.wake = this.wake.filter((w) => w !== finish); done(); }, ms);
      const finish = () => { clearTimeout(t); done(); };
      this.wake.push(finish);
    });
  }
}

export class Fan {
  userToken: string | undefined;
  /** The queue token of the place the fan believes it holds, if any. */
  queueToken: string | undefined;
  readonly paid: PaidReservation[] = [];
  private balance = 0;
  private cycle = 0;

  constructor(
    readonly index: number,
    readonly userId: number,
    private readonly rng: Rng,
    private readonly client: ChaosClient,
    private readonly o: FanOptions,
    private readonly stop: Stop,
  ) {}

  call(op: OpKind, method: CallSpec['method'], path: string, extra: Partial<CallSpec> = {}, phase: Phase = 'run'): Promise<CallResult> {
    const instance = this.rng.int(0, this.client.instanceCount - 1);
    return this.client.call({ fan: this.index, userId: this.userId, instance, op, method, path, phase, ...extra });
  }

  /** After a refusal: honour Retry-After up to ~1 s. */
  private backoff(r: CallResult): Promise<void> {
    if (r.op.status === 503) return this.stop.sleep(Math.min(1_000, Math.max(r.retryAfterMs, 200)) * (0.5 + this.rng.next() * 0.5));
    return this.stop.sleep(this.rng.jitter(200));
  }

  async run(): Promise<void> {
    await this.stop.sleep(this.rng.int(0, 2_000));
    while (!this.stop.stopped) {
      this.cycle++;
      try {
        await this.oneCycle();
      } catch (err) {
        console.error(`fan ${this.index}: unexpected error ${(err as Error).stack ?? err}`);
        await this.stop.sleep(500);
      }
    }
  }

  private async getUserToken(): Promise<boolean> {
    while (!this.stop.stopped) {
      const r = await this.call('token', 'POST', '/v1/tokens', { body: { userId: this.userId } });
      if (r.op.status === 201 && typeof r.body?.token === 'string') { this.userToken = r.body.token; return true; }
      await this.backoff(r);
    }
    return false;
  }

  private async readReservation(p: PaidReservation | { reservationId: string }, token: string): Promise<CallResult> {
    return this.call('readRes', 'GET', `/v1/reservations/${p.reservationId}`, { token, req: { reservationId: p.reservationId } });
  }

  private async oneCycle(): Promise<void> {
    const rng = this.rng;
    if (!this.userToken && !(await this.getUserToken())) return;
    if (this.paid.length > 0 && rng.chance(0.5)) await this.readReservation(rng.pick(this.paid), this.userToken!);
    if (rng.chance(0.3)) await this.call('balance', 'GET', '/v1/me/balance', { token: this.userToken! });
    const concert = rng.pick(this.o.concerts);
    const price = Math.max(...concert.schedules.map((s) => s.price));
    if (this.balance < price * 2) await this.charge();

    // Join. A join whose answer was lost may have happened and replaced the user token: the
    // retry with that token is answered with the same place (JOIN_REPLAY_SECONDS; the checker's
    // no-lockout rule). A 401 (the place it made has ended) sends the fan to sign in again.
    // With JOIN_POW_BITS, every attempt of one join shows the same solved challenge (a retry is
    // the same join); a new one only when the service refuses it.
    let joined: CallResult | undefined;
    let pow: Pow | null | undefined;
    for (let attempt = 0; attempt < 30 && !this.stop.stopped; attempt++) {
      if (pow === undefined) {
        const got = await this.solveChallenge();
        if (got === 'retry') continue;
        pow = got;
      }
      const r = await this.call('join', 'POST', `/v1/concerts/${concert.id}/queue`, {
        token: this.userToken!,
        ...(pow ? { body: { pow: { challenge: pow.challenge, nonce: pow.nonce } } } : {}),
        req: { concertId: concert.id, ...(pow ? { challenge: pow.challenge, challengeExpiresMs: pow.expiresMs } : {}) },
      });
      if ((r.op.status === 201 || r.op.status === 200) && typeof r.body?.token === 'string') { joined = r; break; }
      if (r.op.code === 'CHALLENGE_FAILED' || r.op.code === 'CHALLENGE_REQUIRED') { pow = undefined; continue; }
      if (r.op.status === 401) { this.userToken = undefined; if (!(await this.getUserToken())) return; continue; }
      if (r.op.status === 503 || r.op.status === 0 || r.op.status === 429) { await this.backoff(r); continue; }
      await this.stop.sleep(rng.jitter(500));
      return;
    }
    if (!joined) return;
    this.userToken = undefined; // revoked by the join
    this.queueToken = joined.body.token;

    const admitted = await this.waitForAdmission(joined);
    if (admitted !== 'active') return;
    await this.buy(concert);
  }

  /**
   * GET /v1/challenge, solved by counting nonces (a scripted client). Null when joins need no
   * proof of work (404); 'retry' after a failed request (already backed off).
   */
  private async solveChallenge(): Promise<Pow | null | 'retry'> {
    const r = await this.call('challenge', 'GET', '/v1/challenge');
    if (r.op.status === 404) return null;
    if (r.op.status !== 200 || typeof r.body?.challenge !== 'string') { await this.backoff(r); return 'retry'; }
    const { challenge, bits } = r.body as { challenge: string; bits: number };
    for (let i = 0; ; i++) {
      const nonce = i.toString(36);
      const word = createHash('sha256').update(`${challenge}:${nonce}`).digest().readUInt32BE(0);
      if (bits === 0 || word >>> (32 - bits) === 0) return { challenge, nonce, expiresMs: r.op.res?.expiresAtMs ?? Infinity };
    }
  }

  private async charge(): Promise<void> {
    const key = `chaos-${this.o.seed}-f${this.index}-c${this.cycle}-${this.rng.hex(8)}`;
    for (let attempt = 0; attempt < 20 && !this.stop.stopped; attempt++) {
      const r = await this.call('charge', 'POST', '/v1/me/balance/charge', {
        token: this.userToken!, body: { amount: CHARGE }, idempotencyKey: key, req: { amount: CHARGE, idempotencyKey: key },
      });
      if (r.op.status === 200) { this.balance = Number(r.body?.balance ?? 0); return; }
      if (r.op.status === 401) { this.userToken = undefined; if (!(await this.getUserToken())) return; continue; }
      if (r.op.status !== 503 && r.op.status !== 0) return;
      await this.backoff(r);
    }
  }

  /** Polls until active. 'gone' when the place answered as lost; 'left' when the fan left. */
  private async waitForAdmission(joined: CallResult): Promise<'active' | 'left' | 'gone' | 'stopped'> {
    if (joined.body?.status === 'active' && this.rng.chance(0.5)) return 'active';
    let waitMs = Math.min(this.o.maxPollMs, Math.max(300, Number(joined.body?.pollAfterSeconds ?? 1) * 1000));
    while (!this.stop.stopped) {
      await this.stop.sleep(this.rng.jitter(waitMs));
      if (this.stop.stopped) break;
      const r = await this.poll();
      if (r.op.status === 200) {
        if (r.body?.status === 'active') return 'active';
        if (this.rng.chance(0.02)) { await this.leave(); return 'left'; }
        waitMs = Math.min(this.o.maxPollMs, Math.max(300, Number(r.body?.pollAfterSeconds ?? 1) * 1000));
      } else if (r.op.status === 401 || r.op.status === 403 || r.op.status === 404) {
        this.queueToken = undefined;
        return 'gone';
      } else {
        await this.backoff(r);
      }
    }
    return 'stopped';
  }

  async poll(phase: Phase = 'run'): Promise<CallResult> {
    const r = await this.call('poll', 'GET', '/v1/queue/me', { token: this.queueToken! }, phase);
    // A refreshed queue token (same place, new exp): use it from now on.
    if (r.op.status === 200 && typeof r.body?.token === 'string') this.queueToken = r.body.token;
    return r;
  }

  private async leave(): Promise<void> {
    for (let attempt = 0; attempt < 5 && !this.stop.stopped; attempt++) {
      const r = await this.call('leave', 'DELETE', '/v1/queue/me', { token: this.queueToken! });
      if (r.op.status !== 503 && r.op.status !== 0) break;
      await this.backoff(r);
    }
    // Left, or tried to: the fan no longer counts on the place.
    this.queueToken = undefined;
  }

  /**
   * Holds one seat of the schedule, trying others when one is taken. undefined when none could
   * be held (or a limit was reached), 'gone' when the place answered as lost.
   */
  private async holdSeat(token: string, scheduleId: number, pickSeat: () => number, available: number[], exclude: number[], tries = 8):
    Promise<PaidReservation | 'gone' | undefined> {
    let seat = pickSeat();
    for (let attempt = 0; attempt < tries && !this.stop.stopped; attempt++) {
      if (exclude.includes(seat)) { seat = pickSeat(); continue; }
      const r = await this.call('hold', 'POST', '/v1/reservations', {
        token, body: { scheduleId, seatNumber: seat }, req: { scheduleId, seatNumber: seat },
      });
      if ((r.op.status === 201 || r.op.status === 200) && typeof r.body?.reservationId === 'string') {
        return { reservationId: r.body.reservationId, scheduleId, seatNumber: seat };
      }
      if (r.op.status === 409) {
        const i = available.indexOf(seat);
        if (i >= 0) available.splice(i, 1);
        if (r.op.code === 'HOLD_LIMIT_REACHED' || r.op.code === 'TICKET_LIMIT_REACHED') return undefined;
        seat = pickSeat();
      } else if (r.op.status === 503 || r.op.status === 0) {
        await this.backoff(r); // same seat again: a lost answer may have taken it for us
      } else {
        return 'gone'; // 401 / 403 NOT_ADMITTED: the slot is gone (timed out or lost)
      }
    }
    return undefined;
  }

  private async buy(concert: ConcertSetup): Promise<void> {
    const rng = this.rng;
    const token = this.queueToken!;
    if (rng.chance(0.04)) { await this.leave(); return; }
    if (rng.chance(0.3)) await this.call('schedules', 'GET', `/v1/concerts/${concert.id}/schedules`, { token });

    // Pick a schedule and a seat, from the seat map when the fan reads one.
    let schedule = rng.pick(concert.schedules);
    let available: number[] = [];
    if (rng.chance(0.85)) {
      for (let tries = 0; tries < 3 && available.length === 0; tries++) {
        const r = await this.call('seats', 'GET', `/v1/concerts/${concert.id}/schedules/${schedule.id}/seats`, { token, req: { scheduleId: schedule.id } });
        if (r.op.status === 200 && Array.isArray(r.body?.seats)) {
          available = r.body.seats.filter((s: any) => s.status === 'available').map((s: any) => Number(s.seatNumber));
          if (available.length === 0) schedule = rng.pick(concert.schedules);
        } else if (r.op.status === 401 || r.op.status === 403) {
          this.queueToken = undefined;
          return;
        } else await this.backoff(r);
      }
    }
    const pickSeat = () => (available.length > 0 ? rng.pick(available) : rng.int(1, schedule.capacity));
    await this.stop.sleep(rng.int(200, 1_200));

    const first = await this.holdSeat(token, schedule.id, pickSeat, available, []);
    if (first === 'gone') { this.queueToken = undefined; return; }
    if (!first) { await this.leave(); return; }
    const holds = [first];
    // Now and then a second seat, paid together with the first (one payment of a list).
    if (rng.chance(0.25)) {
      const second = await this.holdSeat(token, schedule.id, pickSeat, available, [first.seatNumber], 4);
      if (second === 'gone') { this.queueToken = undefined; return; }
      if (second) holds.push(second);
    }

    if (rng.chance(0.5)) await this.readReservation(first, token);
    if (rng.chance(0.4)) {
      const r = await this.poll();
      if (r.op.status === 401) { this.queueToken = undefined; return; }
    }
    await this.stop.sleep(rng.int(200, 1_200));

    if (rng.chance(0.15)) {
      for (const h of holds) {
        await this.call('release', 'DELETE', `/v1/reservations/${h.reservationId}`, { token, req: { reservationId: h.reservationId } });
      }
      if (rng.chance(0.5)) await this.readReservation(first, token);
      await this.leave();
      return;
    }

    const key = rng.chance(0.5) ? `chaos-${this.o.seed}-f${this.index}-p${this.cycle}-${rng.hex(8)}` : undefined;
    const body = holds.length > 1 ? { reservationIds: holds.map((h) => h.reservationId) } : { reservationId: first.reservationId };
    const reqs = holds.map((h) => ({
      reservationId: h.reservationId, scheduleId: h.scheduleId, seatNumber: h.seatNumber, ...(key ? { idempotencyKey: key } : {}),
    }));
    let paid = false;
    for (let attempt = 0; attempt < 20 && !this.stop.stopped; attempt++) {
      const r = await this.call('pay', 'POST', '/v1/payments', { token, body, idempotencyKey: key, reqs });
      if (r.op.status === 201) { paid = true; this.balance = Math.max(0, this.balance - Number(r.body?.amount ?? 0)); break; }
      if (r.op.code === 'ALREADY_PAID') { paid = true; break; }
      if (r.op.status === 402) {
        this.userToken = undefined;
        if (!(await this.getUserToken())) return;
        await this.charge();
        continue;
      }
      if (r.op.status === 503 || r.op.status === 0) { await this.backoff(r); continue; }
      break; // HOLD_EXPIRED, SEAT_UNAVAILABLE, NOT_FOUND, 401, 403: this purchase is over
    }
    if (!paid) { await this.leave(); return; }
    this.paid.push(...holds);
    // Paying the last live hold ended the place and its queue token; reading needs a live token
    // of the owner: a new user token.
    this.queueToken = undefined;
    this.userToken = undefined;
    if (!(await this.getUserToken())) return;
    await this.readReservation(rng.pick(holds), this.userToken!);
    if (rng.chance(0.5)) await this.call('balance', 'GET', '/v1/me/balance', { token: this.userToken! });
  }
}

export class Fans {
  readonly fans: Fan[];
  private readonly stopper = new Stop();
  private running: Promise<void>[] = [];

  constructor(client: ChaosClient, o: FanOptions) {
    this.fans = Array.from({ length: o.fans }, (_, i) => new Fan(i, o.firstUserId + i, Rng.of(o.seed, `fan-${i}`), client, o, this.stopper));
  }

  start(): void {
    this.running = this.fans.map((f) => f.run());
  }

  /** Stops every fan after its current request; resolves once all have returned. */
  async stop(): Promise<void> {
    this.stopper.stop();
    await Promise.all(this.running);
  }
}
