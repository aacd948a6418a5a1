import { errors } from '../../errors.ts';
import type { RedisClient } from '../../redis/connection.ts';
import { keys } from '../../redis/keys.ts';
import type { Db } from '../../store/connect.ts';
import { findConcert, findSchedules } from './catalog.repo.ts';
import { loadConcertIfMissing } from './load-concert.ts';

export interface ConcertInfo { id: number; title: string; startsAt: number; endsAt: number }

/**
 * What every mode knows of a concert: its facts (never changed after creation, so kept
 * in-process), its schedule ids, and the load of a concert into Redis.
 */
export class Concerts {
  private readonly concerts = new Map<number, ConcertInfo>();
  private readonly scheduleIdMemo = new Map<number, number[]>();
  private readonly loading = new Map<number, Promise<boolean>>();

  constructor(private readonly db: Db, private readonly redis: RedisClient) {}

  async concert(id: number): Promise<ConcertInfo> {
    const known = this.concerts.get(id);
    if (known) return known;
    const row = await findConcert(this.db, id);
    if (!row) throw errors.notFound('concert');
    const info = { id: row.id, title: row.title, startsAt: row.starts_at, endsAt: row.ends_at };
    this.concerts.set(id, info);
    return info;
  }

  /** Concerts whose queue may still move: the admission ticker and write-behind worker walk these. */
  async liveConcertIds(now: number): Promise<number[]> {
    const rows = await this.db.selectFrom('concerts').select('id').where('ends_at', '>', now - 86_400_000).execute();
    return rows.map((r) => r.id);
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

  async scheduleIds(concertId: number): Promise<number[]> {
    const known = this.scheduleIdMemo.get(concertId);
    if (known) return known;
    // A loaded concert has its schedule ids in Redis too: seat maps keep working while SQL is away.
    const cached = await this.redis.smembers(keys.scheduleIds(concertId)).catch(() => [] as string[]);
    if (cached.length > 0) {
      const ids = cached.map(Number).sort((a, b) => a - b);
      this.scheduleIdMemo.set(concertId, ids);
      return ids;
    }
    const ids = (await findSchedules(this.db, concertId)).map((s) => s.id);
    this.scheduleIdMemo.set(concertId, ids);
    return ids;
  }

  forget(concertId: number): void {
    this.concerts.delete(concertId);
    this.scheduleIdMemo.delete(concertId);
  }
}
