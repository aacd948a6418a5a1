import type { Config } from '../../config.ts';
import { errors } from '../../errors.ts';
import type { Backends } from '../../backend/backends.ts';
import { keys } from '../../redis/keys.ts';
import type { Db } from '../../store/connect.ts';
import { insertConcert, listConcerts, type NewScheduleInput } from './catalog.repo.ts';
import { iso, type ConcertView, type ScheduleView, type SeatView } from './catalog.stores.ts';
import type { ConcertInfo, Concerts } from './concerts.ts';

export type { ConcertView, ScheduleView, SeatStatus, SeatView } from './catalog.stores.ts';
export type { ConcertInfo } from './concerts.ts';

const view = (c: ConcertInfo): ConcertView => ({ id: c.id, title: c.title, startsAt: iso(c.startsAt), endsAt: iso(c.endsAt) });

/**
 * Catalog reads for both modes. In Redis mode the concert, its schedules and seat states come
 * from Redis (loaded from SQL on a miss), and public pages are cached there for a few seconds;
 * in SQL mode everything comes straight from SQL (see CatalogStore).
 */
export class CatalogService {
  private readonly createdListeners: (() => void)[] = [];

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly backends: Backends,
    private readonly concerts: Concerts,
  ) {}

  /** Jobs that walk the live concerts learn of a new one at once. */
  onCreated(listener: () => void): void {
    this.createdListeners.push(listener);
  }

  async create(input: { title: string; schedules: NewScheduleInput[]; saleStartsAt?: number | null }, now: number) {
    const backend = this.backends.current;
    const created = await insertConcert(this.db, input, {
      maxActive: this.config.defaultMaxActive,
      admitPerSecond: this.config.defaultAdmitPerSecond,
      activeTtlSeconds: this.config.defaultActiveTtlSeconds,
    }, now);
    for (const l of this.createdListeners) l();
    await backend.catalog.created(created.concert.id, now);
    return created;
  }

  async list(): Promise<ConcertView[]> {
    const store = this.backends.current.catalog;
    const cached = await store.cached<ConcertView[]>(keys.concertList);
    if (cached) return cached;
    const rows = (await listConcerts(this.db)).map((c) => view({ id: c.id, title: c.title, startsAt: c.starts_at, endsAt: c.ends_at }));
    await store.cache(keys.concertList, rows);
    return rows;
  }

  /**
   * One concert's public page data, cached in Redis for a few seconds like the list (the sale's
   * part can change until the opening: PATCH forgets the cached copy).
   */
  async detail(id: number, now: number,
    sale: (id: number, now: number) => Promise<{ saleStartsAt: string | null; draw: { commitment: string; drawn: boolean } | null }>) {
    const store = this.backends.current.catalog;
    const cached = await store.cached<ConcertView & Awaited<ReturnType<typeof sale>>>(keys.concertDetail(id));
    if (cached) return cached;
    const out = { ...view(await this.concert(id)), ...(await sale(id, now)) };
    await store.cache(keys.concertDetail(id), out);
    return out;
  }

  /** Concerts whose queue may still move: the admission ticker and write-behind worker walk these. */
  liveConcertIds(now: number): Promise<number[]> {
    return this.concerts.liveConcertIds(now);
  }

  concert(id: number): Promise<ConcertInfo> {
    return this.concerts.concert(id);
  }

  /** Makes sure Redis holds the concert; loads it from SQL when Redis lost or never had it. */
  ensureLoaded(id: number, now: number): Promise<void> {
    return this.concerts.ensureLoaded(id, now);
  }

  async schedules(concertId: number, now: number): Promise<ScheduleView[]> {
    const store = this.backends.current.catalog;
    await this.concert(concertId);
    return store.schedules(concertId, now);
  }

  async seats(concertId: number, scheduleId: number, now: number): Promise<SeatView[]> {
    const store = this.backends.current.catalog;
    await this.concert(concertId);
    const ids = await this.concerts.scheduleIds(concertId);
    if (!ids.includes(scheduleId)) throw errors.notFound('schedule');
    return store.seats(concertId, scheduleId, now);
  }

  forget(concertId: number): void {
    // The cached page is Redis's in every mode: a later Redis mode must not serve the old one.
    this.backends.redis.catalog.forgetDetail(concertId);
    this.concerts.forget(concertId);
  }
}
