/**
 * Steady traffic from many virtual users through the HTTP API, and the ledger of what the
 * service acknowledged: every 201 join (a place in line), every 201 hold, every 201 payment.
 *
 * A user's cycle: user token → charge (first cycle, or when short) → join → poll until
 * admitted (some leave instead) → hold a seat → read it back → pay (some release instead).
 * When an acknowledged place or hold answers as gone without the user having left, released or
 * paid, the user keeps asking about it (bounded) to tell "restored" from "lost".
 */
import { DrillClient, ok, retryable, type Outcome } from './client.ts';

export interface TrafficOptions {
  runId: string;
  users: number;
  /** First user id; users are firstUserId .. firstUserId + users - 1. */
  firstUserId: number;
  concertId: number;
  schedules: { id: number; capacity: number; price: number }[];
  /** Time between a waiting user's polls. */
  pollEveryMs: number;
  /** How long a user keeps asking about a missing place or hold before giving up on it. */
  patienceMs: number;
  leaveRatio: number;
  releaseRatio: number;
  /** Longest a payment (or charge) is retried with its Idempotency-Key on 503. */
  payRetryMs: number;
  random?: () => number;
}

export type Fate = 'live' | 'left' | 'done' | 'missing' | 'restored' | 'lost';

export interface PlaceRecord {
  userId: number;
  seq: number;
  token: string;
  ackAt: number;
  /** live: still ours; left: we left; done: paid (token expired by design); missing/restored/lost: see the file comment. */
  fate: Fate;
  missingSince?: number;
  missingCode?: string;
  missingMessage?: string;
  restoredAt?: number;
  /** The user asked to leave and the service refused (503): the place may still be there. */
  leaveRefused?: boolean;
}

export interface HoldRecord {
  reservationId: string;
  userId: number;
  token: string;
  scheduleId: number;
  seatNumber: number;
  ackAt: number;
  expiresAt: number;
  fate: 'live' | 'paid' | 'released' | 'missing' | 'restored' | 'lost';
  missingSince?: number;
  missingStatus?: string;
  restoredAt?: number;
}

export interface PaymentRecord {
  paymentId: string;
  reservationId: string;
  userId: number;
  amount: number;
  ackAt: number;
}

export interface TrafficLedger {
  places: PlaceRecord[];
  holds: HoldRecord[];
  payments: PaymentRecord[];
  /** Payments that never got a definitive answer (only 503s until the retry budget ran out). */
  unresolvedPayments: { reservationId: string; userId: number; lastCode: string | null }[];
  /** Endpoints that answered 404 "no route": the feature is not deployed. */
  missingFeatures: Set<string>;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

const isNoRoute = (o: Outcome) => o.status === 404 && /no route/i.test(o.message ?? '');

export class Traffic {
  readonly ledger: TrafficLedger = { places: [], holds: [], payments: [], unresolvedPayments: [], missingFeatures: new Set() };
  private stopped = false;
  private running: Promise<void>[] = [];
  private readonly random: () => number;

  constructor(private readonly api: DrillClient, private readonly o: TrafficOptions) {
    this.random = o.random ?? Math.random;
  }

  start(): void {
    for (let i = 0; i < this.o.users; i++) {
      const userId = this.o.firstUserId + i;
      // Users start spread over a second, not all in one burst.
      this.running.push(sleep(Math.floor(this.random() * 1000)).then(() => this.user(userId)).catch((err) => {
        console.error(`drill user ${userId} stopped on an unexpected error: ${(err as Error).stack ?? err}`);
      }));
    }
  }

  /** Stops every user after its current step; resolves once all have returned. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }

  private jitter(ms: number): number {
    return Math.floor(ms * (0.5 + this.random()));
  }

  /** Waits after a refusal; longer when the service asked for it. */
  private async backoff(o: Outcome): Promise<void> {
    const retryAfter = o.status === 429 ? 1000 : 0;
    await sleep(Math.max(retryAfter, this.jitter(150)));
  }

  private async user(userId: number): Promise<void> {
    let cycle = 0;
    let balance = 0;
    while (!this.stopped) {
      cycle++;
      const tokenReply = await this.api.call('token', 'POST', '/v1/tokens', { body: { userId } });
      if (!ok(tokenReply)) { await this.backoff(tokenReply); continue; }
      let token: string = tokenReply.body.token;

      const price = Math.max(...this.o.schedules.map((s) => s.price));
      if (!this.ledger.missingFeatures.has('charge') && balance < price) {
        const charged = await this.charge(userId, token, `${this.o.runId}-charge-${userId}-${cycle}`);
        if (charged !== null) balance = charged;
      }

      const joined = await this.api.call('join', 'POST', `/v1/concerts/${this.o.concertId}/queue`, { token });
      if (joined.status !== 201 && joined.status !== 200) { await this.backoff(joined); continue; }
      token = joined.body.token;
      let place: PlaceRecord | undefined;
      if (joined.status === 201) {
        place = { userId, seq: seqOf(token), token, ackAt: joined.at, fate: 'live' };
        this.ledger.places.push(place);
      } else {
        // 200: the same place as before (its leave was refused); it now answers to the new token.
        place = this.ledger.places.find((p) => p.userId === userId && p.seq === seqOf(token));
        if (place) {
          place.token = token;
          if (place.fate === 'left') place.fate = 'live';
        }
      }

      const admitted = await this.waitForAdmission(place, token);
      if (admitted !== 'active') continue;

      if (this.ledger.missingFeatures.has('hold')) {
        // Nothing to buy on this deployment: give the slot back and start again.
        await this.leave(place, token);
        continue;
      }
      const bought = await this.buy(userId, token, place, balance);
      if (bought.balance !== undefined) balance = bought.balance;
      if (bought.result === 'paid') {
        // The payment expired the queue token by design: the place is done, not lost.
        if (place) place.fate = 'done';
      } else if (bought.result === 'notPaid') {
        await this.leave(place, token);
      }
    }
  }

  private async charge(userId: number, token: string, key: string): Promise<number | null> {
    const deadline = Date.now() + this.o.payRetryMs;
    while (!this.stopped && Date.now() < deadline) {
      const r = await this.api.call('charge', 'POST', '/v1/me/balance/charge', { token, body: { amount: 1_000_000 }, idempotencyKey: key });
      if (ok(r)) return Number(r.body.balance);
      if (isNoRoute(r)) { this.ledger.missingFeatures.add('charge'); return null; }
      if (!retryable(r)) return null;
      await this.backoff(r);
    }
    return null;
  }

  /** Leaves (retrying refusals for a few seconds, as a client would). */
  private async leave(place: PlaceRecord | undefined, token: string): Promise<void> {
    const deadline = Date.now() + 5_000;
    let r = await this.api.call('leave', 'DELETE', '/v1/queue/me', { token });
    while (retryable(r) && Date.now() < deadline) {
      await this.backoff(r);
      r = await this.api.call('leave', 'DELETE', '/v1/queue/me', { token });
    }
    if (!place || place.fate === 'done') return;
    if (ok(r)) place.fate = 'left';
    else if (r.status === 401 && (place.fate === 'live' || place.fate === 'restored')) {
      // The place was already gone: the end of the drill tells whether it comes back.
      place.fate = 'missing';
      place.missingSince = r.at;
      place.missingCode = r.code ?? undefined;
      place.missingMessage = `on leave: ${r.message}`;
    } else if (!ok(r)) {
      // Refused throughout: the leave may or may not have happened; the user meant to go.
      place.leaveRefused = true;
      place.fate = 'left';
    }
  }

  /**
   * Polls until admitted. 'gone' when the place answered as lost (and stayed lost past the
   * user's patience), 'left' when the user chose to leave.
   */
  private async waitForAdmission(place: PlaceRecord | undefined, token: string): Promise<'active' | 'left' | 'gone' | 'stopped'> {
    while (!this.stopped) {
      const r = await this.api.call('poll', 'GET', '/v1/queue/me', { token });
      if (ok(r)) {
        if (r.body.status === 'active') return 'active';
        if (this.random() < this.o.leaveRatio / 10) {
          await this.leave(place, token);
          return 'left';
        }
      } else if (r.status === 401) {
        if (!place || !(await this.chaseMissingPlace(place, r))) return 'gone';
        continue;
      }
      await sleep(this.jitter(this.o.pollEveryMs));
    }
    return 'stopped';
  }

  /** Asks about a place that answered 401 until it answers again or the user gives up. True if restored. */
  private async chaseMissingPlace(place: PlaceRecord, first: Outcome): Promise<boolean> {
    if (place.fate !== 'live' && place.fate !== 'restored') return false;
    place.fate = 'missing';
    place.missingSince = first.at;
    place.missingCode = first.code ?? undefined;
    place.missingMessage = first.message;
    const giveUpAt = first.at + this.o.patienceMs;
    while (!this.stopped && Date.now() < giveUpAt) {
      await sleep(this.jitter(500));
      const r = await this.api.call('poll', 'GET', '/v1/queue/me', { token: place.token });
      if (ok(r)) {
        place.fate = 'restored';
        place.restoredAt = r.at;
        return true;
      }
    }
    // Stopped while missing: the end of the drill checks it once more. Otherwise the user moves on.
    if (!this.stopped) place.fate = 'lost';
    return false;
  }

  private async buy(userId: number, token: string, place: PlaceRecord | undefined, balance: number):
    Promise<{ result: 'paid' | 'notPaid' | 'placeGone'; balance?: number }> {
    const schedule = this.o.schedules[Math.floor(this.random() * this.o.schedules.length)]!;
    if (this.random() < 0.1) await this.api.call('schedules', 'GET', `/v1/concerts/${this.o.concertId}/schedules`, { token });

    let hold: HoldRecord | undefined;
    for (let attempt = 0; attempt < 5 && !this.stopped && !hold; attempt++) {
      const seatNumber = 1 + Math.floor(this.random() * schedule.capacity);
      const r = await this.api.call('hold', 'POST', '/v1/reservations', { token, body: { scheduleId: schedule.id, seatNumber } });
      if (r.status === 201) {
        hold = {
          reservationId: r.body.reservationId, userId, token, scheduleId: schedule.id, seatNumber,
          ackAt: r.at, expiresAt: Date.parse(r.body.expiresAt), fate: 'live',
        };
        this.ledger.holds.push(hold);
      } else if (isNoRoute(r)) {
        this.ledger.missingFeatures.add('hold');
        return { result: 'notPaid' };
      } else if (r.status === 401) {
        if (place && (await this.chaseMissingPlace(place, r))) continue;
        return { result: 'placeGone' };
      } else if (r.status === 403) {
        return { result: 'notPaid' };
      } else if (retryable(r)) {
        await this.backoff(r);
      }
      // 409 SEAT_UNAVAILABLE / HOLD_LIMIT_REACHED: try another seat.
    }
    if (!hold) return { result: 'notPaid' };

    const read = await this.api.call('readHold', 'GET', `/v1/reservations/${hold.reservationId}`, { token });
    const readsGone = (ok(read) && read.body.status !== 'held') || (read.status === 404 && !isNoRoute(read));
    if (readsGone && Date.now() < hold.expiresAt) {
      const why = ok(read) ? `read ${read.body.status}` : 'read 404';
      if (!(await this.chaseMissingHold(hold, why))) return { result: 'notPaid' };
    }

    if (this.random() < this.o.releaseRatio) {
      const r = await this.api.call('release', 'DELETE', `/v1/reservations/${hold.reservationId}`, { token });
      if (ok(r)) hold.fate = 'released';
      return { result: 'notPaid' };
    }
    return this.pay(userId, token, hold, balance);
  }

  /** Reads a hold that answered as gone before its expiry until it reads held again or the user gives up. */
  private async chaseMissingHold(hold: HoldRecord, why: string): Promise<boolean> {
    hold.fate = 'missing';
    hold.missingSince = Date.now();
    hold.missingStatus = why;
    const giveUpAt = Date.now() + this.o.patienceMs;
    while (!this.stopped && Date.now() < giveUpAt && Date.now() < hold.expiresAt) {
      await sleep(this.jitter(500));
      const r = await this.api.call('readHold', 'GET', `/v1/reservations/${hold.reservationId}`, { token: hold.token });
      if (ok(r) && r.body.status === 'held') {
        hold.fate = 'restored';
        hold.restoredAt = r.at;
        return true;
      }
    }
    if (!this.stopped) hold.fate = 'lost';
    return false;
  }

  private async pay(userId: number, token: string, hold: HoldRecord, balance: number):
    Promise<{ result: 'paid' | 'notPaid'; balance?: number }> {
    const key = `${this.o.runId}-pay-${hold.reservationId}`;
    const deadline = Date.now() + this.o.payRetryMs;
    let last: Outcome | undefined;
    let toppedUp = false;
    // A payment once sent is followed to a definitive answer even while the drill stops:
    // only then can "acknowledged but missing in SQL" be told apart from "never acknowledged".
    while (Date.now() < deadline) {
      last = await this.api.call('pay', 'POST', '/v1/payments', { token, body: { reservationId: hold.reservationId }, idempotencyKey: key });
      if (last.status === 201 || last.status === 200) {
        this.ledger.payments.push({
          paymentId: String(last.body.paymentId), reservationId: hold.reservationId, userId, amount: Number(last.body.amount), ackAt: last.at,
        });
        hold.fate = 'paid';
        return { result: 'paid', balance: balance - Number(last.body.amount) };
      }
      if (isNoRoute(last)) { this.ledger.missingFeatures.add('pay'); return { result: 'notPaid' }; }
      if (last.status === 402 && !toppedUp) {
        toppedUp = true;
        const b = await this.charge(userId, token, `${this.o.runId}-topup-${hold.reservationId}`);
        if (b !== null) balance = b;
        continue;
      }
      if (last.code === 'HOLD_EXPIRED' || (last.status === 404 && !isNoRoute(last))) {
        // The hold we were told we had is gone before its time: wait (bounded) for it to come back.
        if (Date.now() < hold.expiresAt && hold.fate !== 'missing' && (await this.chaseMissingHold(hold, `pay ${last.code}`))) continue;
        return { result: 'notPaid' };
      }
      if (!retryable(last)) return { result: 'notPaid' };
      await this.backoff(last);
    }
    this.ledger.unresolvedPayments.push({ reservationId: hold.reservationId, userId, lastCode: last?.code ?? null });
    return { result: 'notPaid' };
  }
}

/** The entry number in a queue token's claims. */
export function seqOf(token: string): number {
  try {
    return Number(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).seq);
  } catch {
    return -1;
  }
}
