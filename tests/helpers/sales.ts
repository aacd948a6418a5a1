import { expect } from 'bun:test';
import { keys } from '../../src/redis/keys.ts';
import type { Harness } from './harness.ts';
import { enterMode, newUserId, queueStats } from './harness.ts';
import { call, join, userToken, type Reply } from './http.ts';
import type { TestService } from './service.ts';

type App = TestService['app'];

/** Holds last a minute; admitted users stay admitted and tokens live for the whole suite. */
export const SALES_ENV = {
  HOLD_TTL_SECONDS: '60',
  DEFAULT_ACTIVE_TTL_SECONDS: '86400',
  QUEUE_TOKEN_TTL_SECONDS: '2592000',
  USER_TOKEN_TTL_SECONDS: '2592000',
  DEFAULT_MAX_ACTIVE: '1000000',
  DEFAULT_ADMIT_PER_SECOND: '100000',
};
export const HOLD_TTL_MS = 60_000;

/** Runs fn over items with at most `concurrency` in flight; results in input order. */
export async function inPool<T, R>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  }));
  return out;
}

export interface Buyer { userId: number; token: string }

/**
 * Many admitted users, quickly: in SQL mode they queue and are admitted through Redis (whose
 * write-behind stream then brings their places into SQL), as users who got in before Redis
 * went away; what the test does next runs in the service's own mode.
 */
export async function admitMany(h: Harness, concertId: number, count: number): Promise<Buyer[]> {
  if (h.mode !== 'sql') return admit(h, concertId, count);
  await enterMode(h.svc, 'redis');
  try {
    const buyers = await admit(h, concertId, count);
    await h.svc.ctx.writeBehind.drainOnce(h.clock.now());
    return buyers;
  } finally {
    await enterMode(h.svc, 'sql');
    // SQL mode admits past the numbers Redis reserved and did not give out once no fan can still
    // come back for them: one heartbeat grace after the switch, or sooner when Redis shows its
    // stream drained. Readmissions need that; the grace does it whatever Redis says.
    h.clock.advance(h.svc.config.queueGraceSeconds * 1000 + 1);
  }
}

/** Users with an admitted queue token of the concert (fresh users unless ids are given). */
export async function admit(h: Harness, concertId: number, count: number, ids?: number[]): Promise<Buyer[]> {
  const userIds = ids ?? Array.from({ length: count }, () => newUserId());
  const buyers = await inPool(userIds, 32, async (userId) => {
    const j = await join(h.app, concertId, await userToken(h.app, userId));
    if (j.status !== 201 && j.status !== 200) throw new Error(`join: ${j.status} ${JSON.stringify(j.body)}`);
    return { userId, token: j.body.token as string };
  });
  for (let i = 0; i < 50 && (await queueStats(h.app, concertId)).waiting > 0; i++) await h.tick();
  expect((await queueStats(h.app, concertId)).waiting).toBe(0);
  return buyers;
}

/** A buyer whose queue token was spent on a payment gets a new admitted one (safe to run concurrently). */
export async function readmit(h: Harness, concertId: number, buyer: Buyer): Promise<Buyer> {
  const j = await join(h.app, concertId, await userToken(h.app, buyer.userId));
  if (j.status !== 201 && j.status !== 200) throw new Error(`join: ${j.status} ${JSON.stringify(j.body)}`);
  const token = j.body.token as string;
  for (let i = 0; i < 50; i++) {
    const me = await call(h.app, 'GET', '/v1/queue/me', { token });
    if (me.body?.status === 'active') return { userId: buyer.userId, token };
    await h.tick();
  }
  throw new Error(`user ${buyer.userId} was not admitted`);
}

export const hold = (app: App, b: Buyer, scheduleId: number, seatNumber: number): Promise<Reply> =>
  call(app, 'POST', '/v1/reservations', { token: b.token, body: { scheduleId, seatNumber } });

export const pay = (app: App, b: Buyer, reservationId: string, key?: string): Promise<Reply> =>
  call(app, 'POST', '/v1/payments', { token: b.token, body: { reservationId }, headers: key ? { 'Idempotency-Key': key } : {} });

export const charge = (app: App, token: string, amount: number, key?: string): Promise<Reply> =>
  call(app, 'POST', '/v1/me/balance/charge', { token, body: { amount }, headers: key ? { 'Idempotency-Key': key } : {} });

export async function fund(app: App, b: Buyer, amount: number): Promise<void> {
  const r = await charge(app, b.token, amount);
  if (r.status !== 200) throw new Error(`charge: ${r.status} ${JSON.stringify(r.body)}`);
}

export const errorCode = (r: Reply): string | undefined => r.body?.error?.code;

/** Money invariants: no negative balance and every balance equals the sum of its ledger rows. */
export async function expectLedgerMatchesBalances(svc: TestService): Promise<void> {
  const db = svc.database.db;
  const users = await db.selectFrom('users').select(['id', 'balance']).execute();
  const sums = await db.selectFrom('ledger').select(['user_id', (eb) => eb.fn.sum<number>('amount').as('total')])
    .groupBy('user_id').execute();
  const byUser = new Map(sums.map((s) => [Number(s.user_id), Number(s.total)]));
  for (const u of users) {
    expect(u.balance).toBeGreaterThanOrEqual(0);
    expect({ user: u.id, balance: u.balance }).toEqual({ user: u.id, balance: byUser.get(u.id) ?? 0 });
  }
}

export type SeatState = 'available' | 'sold' | `held:${string}`;

/** Every seat of a schedule as Redis sees it: sold, held by a reservation (key live), or available. */
export async function redisSeatStates(svc: TestService, concertId: number, scheduleId: number, capacity: number, now: number) {
  const r = svc.redis;
  const sold = new Set(await r.smembers(keys.sold(concertId, scheduleId)));
  const out: SeatState[] = [];
  for (let n = 1; n <= capacity; n++) {
    if (sold.has(String(n))) { out.push('sold'); continue; }
    const [holder, until] = await Promise.all([r.get(keys.hold(concertId, scheduleId, n)), r.zscore(keys.holds(concertId, scheduleId), n)]);
    out.push(holder && Number(until) > now ? `held:${holder.split('|')[0]}` : 'available');
  }
  return out;
}

/** The same from SQL's seat rows. */
export async function sqlSeatStates(svc: TestService, scheduleId: number, now: number) {
  const rows = await svc.database.db.selectFrom('seats').selectAll().where('schedule_id', '=', scheduleId).orderBy('seat_number').execute();
  return rows.map((s): SeatState => (s.status === 'sold' ? 'sold'
    : s.hold_expires_at !== null && s.hold_expires_at > now ? `held:${s.hold_reservation_id}` : 'available'));
}
