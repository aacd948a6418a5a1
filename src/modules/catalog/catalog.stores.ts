import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import type { Db } from '../../store/connect.ts';
import { seatStates } from './catalog.repo.ts';
import type { Concerts } from './concerts.ts';
import { reloadConcert } from './load-concert.ts';

export interface ConcertView { id: number; title: string; startsAt: string; endsAt: string }
export interface ScheduleView {
  id: number; concertId: number; date: string; capacity: number; price: number; available: number; reservable: boolean;
}
export type SeatStatus = 'available' | 'held' | 'sold';
export interface SeatView { seatNumber: number; price: number; status: SeatStatus }

const LIST_CACHE_SECONDS = 5;
export const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The catalog's mode-dependent half: where schedules and seat states are read, and whether
 * public pages are cached. Redis mode reads Redis (loaded from SQL on a miss); SQL mode SQL.
 */
export interface CatalogStore {
  /** A concert SQL has just recorded: Redis mode loads it and forgets the cached list. */
  created(concertId: number, now: number): Promise<void>;
  /** A cached public answer (the concert list, a concert's page), or null. */
  cached<T>(key: string): Promise<T | null>;
  cache(key: string, value: unknown): Promise<void>;
  schedules(concertId: number, now: number): Promise<ScheduleView[]>;
  /** Seat states of a schedule the caller knows to be the concert's. */
  seats(concertId: number, scheduleId: number, now: number): Promise<SeatView[]>;
}

export class SqlCatalogStore implements CatalogStore {
  constructor(private readonly db: Db) {}

  async created(): Promise<void> {}

  async cached<T>(): Promise<T | null> {
    return null;
  }

  async cache(): Promise<void> {}

  async schedules(concertId: number, now: number): Promise<ScheduleView[]> {
    const rows = await this.db.selectFrom('schedules as s')
      .leftJoin('seats as t', 't.schedule_id', 's.id')
      .select(['s.id', 's.date', 's.capacity', 's.price'])
      .select((eb) => eb.fn.sum<number>(
        eb.case().when(eb.or([
          eb('t.status', '=', 'sold'),
          eb.and([eb('t.hold_expires_at', 'is not', null), eb('t.hold_expires_at', '>', now)]),
        ])).then(0).else(1).end(),
      ).as('available'))
      .where('s.concert_id', '=', concertId)
      .groupBy(['s.id', 's.date', 's.capacity', 's.price'])
      .orderBy('s.id')
      .execute();
    return rows.map((r) => ({
      id: r.id, concertId, date: iso(r.date), capacity: r.capacity, price: r.price,
      available: Number(r.available ?? 0), reservable: Number(r.available ?? 0) > 0 && r.date > now,
    }));
  }

  async seats(_concertId: number, scheduleId: number, now: number): Promise<SeatView[]> {
    return (await seatStates(this.db, scheduleId, now)).map(({ seatNumber, price, status }) => ({ seatNumber, price, status }));
  }
}

/** Redis mode; what Redis does not have (a concert not fully loaded, a sold-out schedule) SQL answers. */
export class RedisCatalogStore implements CatalogStore {
  constructor(
    private readonly db: Db,
    private readonly redis: RedisClient,
    private readonly concerts: Concerts,
    private readonly sql: SqlCatalogStore,
  ) {}

  async created(concertId: number, now: number): Promise<void> {
    await reloadConcert(this.db, this.redis, concertId, now);
    await this.redis.del(keys.concertList);
  }

  async cached<T>(key: string): Promise<T | null> {
    const cached = await this.redis.get(key);
    return cached ? JSON.parse(cached) as T : null;
  }

  async cache(key: string, value: unknown): Promise<void> {
    await this.redis.set(key, JSON.stringify(value), 'EX', LIST_CACHE_SECONDS);
  }

  forgetDetail(concertId: number): void {
    void this.redis.del(keys.concertDetail(concertId)).catch(() => {});
  }

  async schedules(concertId: number, now: number): Promise<ScheduleView[]> {
    const ids = await this.concerts.scheduleIds(concertId);
    const p = this.redis.pipeline();
    for (const id of ids) {
      p.hmget(keys.schedule(concertId, id), 'date', 'capacity', 'price');
      p.scard(keys.sold(concertId, id));
      p.zcount(keys.holds(concertId, id), `(${now}`, '+inf');
    }
    const res = (await p.exec()) ?? [];
    const out: ScheduleView[] = [];
    for (let i = 0; i < ids.length; i++) {
      const [err, h] = res[i * 3]!;
      if (err) throw err;
      const [date, capacity, price] = h as (string | null)[];
      if (date === null || date === undefined) {
        // A schedule missing from Redis means the concert was not (fully) loaded.
        await this.concerts.ensureLoaded(concertId, now);
        return this.sql.schedules(concertId, now);
      }
      const sold = Number(res[i * 3 + 1]![1]);
      const held = Number(res[i * 3 + 2]![1]);
      const available = Math.max(0, Number(capacity) - sold - held);
      out.push({
        id: ids[i]!, concertId, date: iso(Number(date)), capacity: Number(capacity), price: Number(price),
        available, reservable: available > 0 && Number(date) > now,
      });
    }
    return out;
  }

  async seats(concertId: number, scheduleId: number, now: number): Promise<SeatView[]> {
    const [[e1, prices], [e2, sold], [e3, held]] = (await this.redis.pipeline()
      .hgetall(keys.seats(concertId, scheduleId))
      .smembers(keys.sold(concertId, scheduleId))
      .zrangebyscore(keys.holds(concertId, scheduleId), `(${now}`, '+inf')
      .exec()) as [[Error | null, Record<string, string>], [Error | null, string[]], [Error | null, string[]]];
    if (e1 || e2 || e3) throw e1 ?? e2 ?? e3;
    // A sold-out schedule's seat keys leave Redis; SQL serves its (final) map.
    if (Object.keys(prices).length === 0) return this.sql.seats(concertId, scheduleId, now);
    const soldSet = new Set(sold);
    const heldSet = new Set(held);
    return Object.entries(prices)
      .map(([n, price]) => ({
        seatNumber: Number(n), price: Number(price),
        status: soldSet.has(n) ? 'sold' as const : heldSet.has(n) ? 'held' as const : 'available' as const,
      }))
      .sort((a, b) => a.seatNumber - b.seatNumber);
  }
}
