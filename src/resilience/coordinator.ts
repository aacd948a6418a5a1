import {
  circuitBreaker, CircuitState, ConsecutiveBreaker, handleWhen, TaskCancelledError, timeout, TimeoutStrategy, wrap,
  type CircuitBreakerPolicy, type IPolicy,
} from 'cockatiel';
import { sql } from 'kysely';
import type { Logger } from '../logger.ts';
import { describeRedis, type RedisClient } from '../redis/connection.ts';
import { keys } from '../redis/keys.ts';
import type { Db } from '../store/connect.ts';
import { isRedisFailure } from './failures.ts';
import type { Mode, ModeController } from './mode.ts';
import { sleep } from '../runtime/index.ts';

const REBUILD_HEARTBEAT_MS = 1_000;

export interface CoordinatorOptions {
  instanceId: string;
  /** Longest a Redis probe may take before it counts as a failure. */
  probeTimeoutMs: number;
  probeEveryMs?: number;
  /** How often the shared mode row is read. */
  syncEveryMs?: number;
  /** Consecutive Redis failures (requests or probes) that open the breaker. */
  failureThreshold?: number;
  halfOpenAfterMs?: number;
  /** A rebuild whose owner has not shown life (its heartbeat on the mode row) for this long is taken over. */
  staleRebuildMs?: number;
  /** Moves whatever the write-behind streams still hold into SQL before a rebuild. */
  drain: () => Promise<unknown>;
  /** Reloads Redis from SQL. */
  rebuild: () => Promise<unknown>;
  /**
   * After the switch back: re-applies what SQL-mode requests still in flight during the
   * rebuild may have written (sold seats, new places); gets the rebuild's start time.
   */
  catchUp?: (since: number) => Promise<unknown>;
  /** How long a SQL-mode request may still be running after the fleet saw `rebuilding`. */
  settleMs?: number;
}

/**
 * The mode state machine: redis → (breaker opens) → sql → (Redis answers) → rebuilding → redis.
 *
 * Every instance keeps a circuit breaker in front of Redis, fed by request outcomes and by a
 * background probe. The mode itself lives in one SQL row that every instance follows, so a
 * fleet never splits between Redis and SQL for longer than one sync interval. Only the
 * instance whose conditional UPDATE moves the row from `sql` to `rebuilding` rebuilds.
 */
export class ModeCoordinator {
  breaker!: CircuitBreakerPolicy;
  private policy!: IPolicy;
  private timers: ReturnType<typeof setInterval>[] = [];
  /**
   * This instance is recovering (won the row, rebuilding, switching back): one recovery at a
   * time here, and meanwhile it does not follow the row. Across the fleet the row's
   * conditional update lets one instance rebuild; the Rebuilder's lease covers an owner that
   * was taken over but still writes.
   */
  private recovering = false;
  /** One probe at a time: a probe slower than the interval must not overlap the next one. */
  private probing = false;
  /**
   * False from a start without Redis until this instance first reaches it. Meanwhile its
   * breaker does not move the fleet to SQL: if the others rebuilt and serve from a Redis that
   * only this instance cannot reach (a wrong REDIS_URL, a partition), knocking them back to
   * SQL every few seconds would help nobody; this instance answers 503 and fails /readyz.
   */
  private reachedRedis = true;
  private cutOffWarned = false;

  constructor(private readonly db: Db, private readonly redis: RedisClient, private readonly mode: ModeController,
    private readonly log: Logger, private readonly opts: CoordinatorOptions) {
    this.resetBreaker();
    // Back on Redis (here or by following another instance): start with a closed breaker.
    mode.on('change', ({ to }: { to: Mode }) => { if (to === 'redis') this.resetBreaker(); });
  }

  private resetBreaker(): void {
    const breaker = circuitBreaker(handleWhen((err) => isRedisFailure(err) || err instanceof TaskCancelledError), {
      halfOpenAfter: this.opts.halfOpenAfterMs ?? 1000,
      breaker: new ConsecutiveBreaker(this.opts.failureThreshold ?? 3),
    });
    breaker.onBreak(() => {
      if (this.reachedRedis) return void this.enterSql('redis circuit breaker opened');
      if (!this.cutOffWarned) {
        this.cutOffWarned = true;
        this.log.warn('the fleet serves from Redis, which this instance has not reached since it started: answering 503 and failing /readyz until it does');
      }
    });
    breaker.onSuccess(() => this.reached());
    this.breaker = breaker;
    this.policy = wrap(breaker, timeout(this.opts.probeTimeoutMs, TimeoutStrategy.Aggressive));
  }

  private reached(): void {
    if (this.reachedRedis) return;
    this.reachedRedis = true;
    this.cutOffWarned = false;
    this.log.info('redis answers; this instance reached it for the first time since it started');
  }

  /** In the fleet's `redis` mode without having reached Redis since the start: cannot serve. */
  cutOff(): boolean {
    return !this.reachedRedis && this.mode.current === 'redis';
  }

  /**
   * Redis did not answer at start. The fleet's mode is in SQL: a fleet already on `sql` or
   * `rebuilding` is followed; a fleet on `redis` is moved to `sql` once (SQL is the system of
   * record, so serving from it is always consistent), since this instance cannot tell a lone
   * restart from one instance that cannot reach a Redis the others use. Instances that reach
   * Redis then rebuild it and bring the fleet back; this one follows once Redis answers here.
   * Unlike enterSql, a SQL failure here is thrown: the start cannot go on without the mode.
   */
  async startWithoutRedis(reason: string): Promise<void> {
    this.reachedRedis = false;
    await this.sync();
    if (this.mode.current !== 'redis') return;
    await this.db.updateTable('service_mode')
      .set({ mode: 'sql', epoch: sql`epoch + 1`, owner: this.opts.instanceId, reason, updated_at: Date.now() })
      .where('id', '=', 1).where('mode', '=', 'redis').execute();
    await this.sync();
    // The row left `redis` between the two reads (another instance's breaker, or a rebuild):
    // whatever it says now is followed; it cannot be `redis` again before a rebuild.
    if (this.mode.current === 'redis') this.mode.set('sql', reason);
  }

  breakerState(): string {
    return CircuitState[this.breaker.state]?.toLowerCase() ?? 'unknown';
  }

  start(): void {
    const probeEvery = this.opts.probeEveryMs ?? 250;
    const syncEvery = this.opts.syncEveryMs ?? 250;
    // A probe that fails (SQL down while Redis comes back) must not end the process.
    this.timers.push(setInterval(() => this.track(this.probe().catch((err) => this.log.warn('mode probe failed', { err }))), probeEvery));
    this.timers.push(setInterval(() => this.track(this.sync().catch(() => {})), syncEvery));
  }

  /** Background probes and syncs under way, so that stop() can wait for them before SQL closes. */
  private readonly running = new Set<Promise<void>>();
  private track(p: Promise<void>): void {
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  /** Stops probing and syncing; resolves once those under way (a rebuild included) have ended. */
  stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    return Promise.all([...this.running]).then(() => {});
  }

  async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      if (this.mode.current === 'redis') {
        await this.policy.execute(() => this.redis.ping()).catch(() => {});
      } else if (this.mode.current === 'sql' && !this.recovering) {
        // A node that answers but is (still) a replica, or a master that refuses writes (no
        // good replica yet after a failover: NOREPLICAS), cannot take the rebuild's writes; a
        // rebuild started then fails and the fleet flaps between sql and rebuilding (503s).
        const alive = await Promise.race([
          describeRedis(this.redis).then(async (r) => {
            if (r.role !== 'master' && r.role !== 'cluster') return false;
            await this.redis.set(keys.writeProbe, String(Date.now()), 'PX', 10_000);
            return true;
          }).catch(() => false),
          sleep(this.opts.probeTimeoutMs).then(() => false),
        ]);
        if (alive) this.reached();
        // SQL may be down too (both faults at once): try again at the next probe.
        if (alive) await this.recover().catch((err) => this.log.warn('recovery attempt failed', { err }));
      }
    } finally {
      this.probing = false;
    }
  }

  /** A rebuild by hand takes the same safe path: SQL mode, drain, rebuild, back to Redis. */
  async rebuildNow(): Promise<boolean> {
    if (this.mode.current === 'redis') await this.enterSql('rebuild requested');
    return this.recover();
  }

  /**
   * Redis failed here: move every instance to SQL. Only from `redis`: an instance that is
   * rebuilding already serves from SQL, and the rebuild (with its catch-up of sold seats) is
   * what brings Redis up to date.
   */
  async enterSql(reason: string): Promise<void> {
    if (this.mode.current !== 'redis') return;
    this.mode.set('sql', reason);
    try {
      await this.db.updateTable('service_mode')
        .set({ mode: 'sql', epoch: sql`epoch + 1`, owner: this.opts.instanceId, reason, updated_at: Date.now() })
        .where('id', '=', 1).where('mode', '=', 'redis').execute();
    } catch (err) {
      this.log.error('could not record sql mode', { err });
    }
  }

  /** Follows the shared mode row; takes over a rebuild whose owner went silent. */
  async sync(): Promise<void> {
    const row = await this.db.selectFrom('service_mode').selectAll().where('id', '=', 1).executeTakeFirst();
    if (!row) return;
    const now = Date.now();
    if (row.mode === 'rebuilding' && row.owner !== this.opts.instanceId && now - row.updated_at > (this.opts.staleRebuildMs ?? 10 * REBUILD_HEARTBEAT_MS)) {
      await this.db.updateTable('service_mode').set({ mode: 'sql', reason: 'stale rebuild taken over', updated_at: now })
        .where('id', '=', 1).where('mode', '=', 'rebuilding').where('epoch', '=', row.epoch).execute();
      return;
    }
    if (this.recovering) return;
    if (row.mode !== this.mode.current) this.mode.set(row.mode as Mode, row.reason ?? 'shared mode');
  }

  /** Redis answers again: whoever wins the row rebuilds, then everyone returns to Redis. */
  async recover(): Promise<boolean> {
    if (this.recovering) return false;
    this.recovering = true;
    const me = this.opts.instanceId;
    let beat: ReturnType<typeof setInterval> | undefined;
    try {
      const started = Date.now();
      const won = await this.db.updateTable('service_mode')
        .set({ mode: 'rebuilding', epoch: sql`epoch + 1`, owner: me, reason: 'redis answers again', updated_at: started })
        .where('id', '=', 1).where('mode', '=', 'sql').executeTakeFirst();
      if (Number(won.numUpdatedRows) === 0) return false;
      this.mode.set('rebuilding', 'redis answers again');
      // The row says who rebuilds and since when it last showed life: an owner that dies is
      // taken over within staleRebuildMs instead of holding the fleet in 'rebuilding'.
      beat = setInterval(() => {
        void this.db.updateTable('service_mode').set({ updated_at: Date.now() })
          .where('id', '=', 1).where('owner', '=', me).where('mode', '=', 'rebuilding').execute().catch(() => {});
      }, REBUILD_HEARTBEAT_MS);
      // Let every instance see `rebuilding` and finish the SQL-mode changes it had under way,
      // so that the rebuild reads them.
      await sleep(this.opts.settleMs ?? 2 * (this.opts.syncEveryMs ?? 250) + 250);
      try {
        await this.opts.drain();
        await this.opts.rebuild();
      } catch (err) {
        this.log.error('rebuild failed; staying on sql', { err });
        await this.db.updateTable('service_mode').set({ mode: 'sql', reason: 'rebuild failed', updated_at: Date.now() })
          .where('id', '=', 1).where('owner', '=', me).execute();
        this.mode.set('sql', 'rebuild failed');
        return false;
      }
      await this.db.updateTable('service_mode').set({ mode: 'redis', reason: 'rebuilt', updated_at: Date.now() })
        .where('id', '=', 1).where('owner', '=', me).where('mode', '=', 'rebuilding').execute();
      this.mode.set('redis', `rebuilt in ${Date.now() - started} ms`);
      if (this.opts.catchUp) {
        // Instances still on SQL for up to one sync interval may have sold seats meanwhile.
        setTimeout(() => void this.opts.catchUp!(started).catch((err) => this.log.warn('catch-up failed', { err })),
          2 * (this.opts.syncEveryMs ?? 250));
      }
      return true;
    } finally {
      clearInterval(beat);
      this.recovering = false;
    }
  }
}
