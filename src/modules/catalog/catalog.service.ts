import type { Config } from '../../config.ts';
import { errors } from '../../errors.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import type { Db } from '../../store/connect.ts';
import { findConcert, findSchedules, insertConcert, listConcerts, seatStates, type NewScheduleInput } from './catalog.repo.ts';
import { loadConcertIfMissing, reloadConcert } from './load-concert.ts';

export interface ConcertView { id: number; title: string; startsAt: string; endsAt: string }
export interface ScheduleView {
  id: number; concertId: number; date: string; capacity: number; price: number; available: number; reservable: boolean;
}
export type SeatStatus = 'available' | 'held' | 'sold';
export interface SeatView { seatNumber: number; price: number; status: SeatStatus }

export interface ConcertInfo { id: number; title: string; startsAt: number; endsAt: number }

const LIST_CACHE_SECONDS = 5;
const iso = (ms: number) => new Date(ms).toISOString();
const view = (c: ConcertInfo): ConcertView => ({ id: c.id, title: c.title, startsAt: iso(c.startsAt), endsAt: iso(c.endsAt) });

/**
 * Catalog reads for both modes. In Redis mode the concert, its schedules and seat states come
 * from Redis (loaded from SQL on a miss); in SQL mode straight from SQL.
 */
export class CatalogService {
  /** Concert facts never change after creation; keep them in-process to save round trips. */
  private readonly concerts = new Map<number, ConcertInfo>();
  private readonly scheduleIds = new Map<number, number[]>();

  private readonly createdListeners: (() => void)[] = [];
  private readonly loading = new Map<number, Promise<boolean>>();

  constructor(private readonly db: Db, private readonly redis: RedisClient, private readonly config: Config) {}

  /** Jobs that walk the live concerts learn of a new one at once. */
  onCreated(listener: () => void): void {
    this.createdListeners.push(listener);
  }

  async create(input: { title: string; schedules: NewScheduleInput[]; saleStartsAt?: number | null }, now: number, useRedis: boolean) {
    const created = await insertConcert(this.db, input, {
      maxActive: this.config.defaultMaxActive,
      admitPerSecond: this.config.defaultAdmitPerSecond,
      activeTtlSeconds: this.config.defaultActiveTtlSeconds,
    }, now);
    for (const l of this.createdListeners) l();
    if (useRedis) {
      await reloadConcert(this.db, this.redis, created.concert.id, now);
      await this.redis.del(keys.concertList);
    }
    return created;
  }

  async list(useRedis: boolean): Promise<ConcertView[]> {
    if (useRedis) {
      const cached = await this.redis.get(keys.concertList);
      if (cached) return JSON.parse(cached) as ConcertView[];
    }
    const rows = (await listConcerts(this.db)).map((c) => view({ id: c.id, title: c.title, startsAt: c.starts_at, endsAt: c.ends_at }));
    if (useRedis) await this.redis.set(keys.concertList, JSON.stringify(rows), 'EX', LIST_CACHE_SECONDS);
    return rows;
  }

  /**
   * One concert's public page data, cached in Redis for a few seconds like the list (the sale's
   * part can change until the opening: PATCH forgets the cached copy).
   */
  async detail(id: number, now: number, useRedis: boolean,
    sale: (id: number, now: number) => Promise<{ saleStartsAt: string | null; draw: { commitment: string; drawn: boolean } | null }>) {
    if (useRedis) {
      const cached = await this.redis.get(keys.concertDetail(id));
      if (cached) return JSON.parse(cached) as ConcertView & Awaited<ReturnType<typeof sale>>;
    }
    const out = { ...view(await this.concert(id)), ...(await sale(id, now)) };
    if (useRedis) await this.redis.set(keys.concertDetail(id), JSON.stringify(out), 'EX', LIST_CACHE_SECONDS);
    return out;
  }

  /** Concerts whose queue may still move: the admission ticker and write-behind worker walk these. */
  async liveConcertIds(now: number): Promise<number[]> {
    const rows = await this.db.selectFrom('concerts').select('id').where('ends_at', '>', now - 86_400_000).execute();
    return rows.map((r) => r.id);
  }

  async concert(id: number): Promise<ConcertInfo> {
    const known = this.concerts.get(id);
    if (known) return known;
    const row = await findConcert(this.db, id);
    if (!row) throw errors.notFound('concert');
    const info = { id: row.id, title: row.title, startsAt: row.starts_at, endsAt: row.ends_at };
    this.concerts.set(id, info);
    return info;
  }

  /** Makes sure Redis holds the concert; loads it from SQL when Redis lost or never had it. */
  async ensureLoaded(id: number, now: number): Promise<void> {
    // Requests that miss at once share one load (the load lock serialises instances).
    let loading = this.loading.get(id);
    if (!loading) {
      loading = loadConcertIfMissing(this.db, this.redis, id, now).finally(() => this.loading.delete(id));
      this.loading.set(id, loading);
    }
    if (!(await loading)) throw errors.notFound('concert');
  }

  private async scheduleIdsOf(concertId: number): Promise<number[]> {
    const known = this.scheduleIds.get(concertId);
    if (known) return known;
    // A loaded concert has its schedule ids in Redis too: seat maps keep working while SQL is away.
    const cached = await this.redis.smembers(keys.scheduleIds(concertId)).catch(() => [] as string[]);
    if (cached.length > 0) {
      const ids = cached.map(Number).sort((a, b) => a - b);
      this.scheduleIds.set(concertId, ids);
      return ids;
    }
    const ids = (await findSchedules(this.db, concertId)).map((s) => s.id);
    this.scheduleIds.set(concertId, ids);
    return ids;
  }

  async schedules(concertId: number, now: number, useRedis: boolean): Promise<ScheduleView[]> {
    await this.concert(concertId);
    if (!useRedis) return this.schedulesFromSql(concertId, now);
    const ids = await this.scheduleIdsOf(concertId);
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
        await this.ensureLoaded(concertId, now);
        return this.schedulesFromSql(concertId, now);
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

  private async schedulesFromSql(concertId: number, now: number): Promise<ScheduleView[]> {
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

  async seats(concertId: number, scheduleId: number, now: number, useRedis: boolean): Promise<SeatView[]> {
    await this.concert(concertId);
    const ids = await this.scheduleIdsOf(concertId);
    if (!ids.includes(scheduleId)) throw errors.notFound('schedule');
    if (useRedis) {
      const [[e1, prices], [e2, sold], [e3, held]] = (await this.redis.pipeline()
        .hgetall(keys.seats(concertId, scheduleId))
        .smembers(keys.sold(concertId, scheduleId))
        .zrangebyscore(keys.holds(concertId, scheduleId), `(${now}`, '+inf')
        .exec()) as [[Error | null, Record<string, string>], [Error | null, string[]], [Error | null, string[]]];
      if (e1 || e2 || e3) throw e1 ?? e2 ?? e3;
      if (Object.keys(prices).length > 0) {
        const soldSet = new Set(sold);
        const heldSet = new Set(held);
        return Object.entries(prices)
          .map(([n, price]) => ({
            seatNumber: Number(n), price: Number(price),
            status: soldSet.has(n) ? 'sold' as const : heldSet.has(n) ? 'held' as const : 'available' as const,
          }))
          .sort((a, b) => a.seatNumber - b.seatNumber);
      }
      // A sold-out schedule's seat keys leave Redis; SQL serves its (final) map.
    }
    return (await seatStates(this.db, scheduleId, now)).map(({ seatNumber, price, status }) => ({ seatNumber, price, status }));
  }

  forget(concertId: number): void {
    void this.redis.del(keys.concertDetail(concertId)).catch(() => {});
    this.concerts.delete(concertId);
    this.scheduleIds.delete(concertId);
  }
}
