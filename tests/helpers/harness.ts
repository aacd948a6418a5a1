import { afterAll, beforeAll, describe } from 'bun:test';
import { call, createConcert } from './http.ts';
import { startService, type TestService, type TestServiceOptions } from './service.ts';
import { SQL_TARGETS, type SqlTarget } from './sql.ts';

export type ServiceMode = 'redis' | 'sql';
/** Every endpoint of the waiting room works in both modes with the same semantics. */
export const MODES: ServiceMode[] = ['redis', 'sql'];

/**
 * A clock only the test moves: grace periods and TTLs pass at once, and a slow machine never
 * skips an admission tick. It starts at the wall clock (Redis key TTLs are wall-clock time).
 */
export class TestClock {
  private at = Date.now();
  readonly now = () => this.at;
  advance(ms: number): void {
    this.at += ms;
  }
}

export interface Harness {
  svc: TestService;
  app: TestService['app'];
  clock: TestClock;
  sql: SqlTarget;
  mode: ServiceMode;
  /** One admission tick at the next tick time (moves the clock by one tick length). */
  tick(): Promise<void>;
}

export interface HarnessOptions extends Omit<TestServiceOptions, 'sql' | 'clock'> {
  modes?: ServiceMode[];
  sqlTargets?: SqlTarget[];
}

/**
 * Waits until SQL has the concert's Redis-mode records (places, queue tokens, admissions, leaves:
 * the write-behind stream drained), as it has a moment after the answers in a running service.
 */
export async function recorded(h: Harness, concertId: number): Promise<void> {
  await h.svc.ctx.writeBehind.drainConcertFully(concertId);
}

/**
 * Puts a service in a mode the way the fleet is put there: the shared mode row and the
 * instance's own mode, so that a rebuild or a second instance sees the same thing.
 */
export async function enterMode(svc: TestService, mode: ServiceMode): Promise<void> {
  if (mode === 'sql') return svc.ctx.coordinator.enterSql('test');
  await svc.database.db.updateTable('service_mode').set({ mode: 'redis', reason: 'test', updated_at: Date.now() })
    .where('id', '=', 1).execute();
  svc.ctx.mode.set('redis', 'test');
}

interface Shared { svc: Promise<TestService>; clock: TestClock }
const shared = new Map<string, Shared>();
let cleanupRegistered = false;

/** One service per SQL target and options in a file, shared by its describes; stopped at file end. */
function sharedService(sql: SqlTarget, opts: Omit<TestServiceOptions, 'sql' | 'clock'>): Shared {
  const key = `${sql}|${JSON.stringify(opts)}`;
  let s = shared.get(key);
  if (!s) {
    const clock = new TestClock();
    s = { clock, svc: startService({ ...opts, sql, clock: clock.now }) };
    s.svc.catch(() => {});
    shared.set(key, s);
  }
  return s;
}

/**
 * Declares `body` once per SQL target × service mode. The describes of one SQL target (and one
 * set of options) share a service of their own (own redis-server, own database) whose clock the
 * test controls; each describe forces its mode first. Tests own their concerts and users.
 */
export function describeEach(name: string, opts: HarnessOptions, body: (h: Harness) => void): void {
  const { modes = MODES, sqlTargets = SQL_TARGETS, ...serviceOpts } = opts;
  // A suite pinned to one engine still runs only where TEST_SQL_TARGETS allows it.
  const targets = sqlTargets.filter((t) => SQL_TARGETS.includes(t));
  if (!cleanupRegistered) {
    cleanupRegistered = true;
    afterAll(async () => {
      const all = [...shared.values()];
      shared.clear();
      cleanupRegistered = false;
      for (const s of all) await (await s.svc.catch(() => null))?.stop();
    });
  }
  for (const sql of targets) {
    for (const mode of modes) {
      describe(`${name} [${sql}, ${mode} mode]`, () => {
        const h = { sql, mode } as Harness;
        h.tick = async () => {
          h.clock.advance(h.svc.config.admissionTickMs);
          await h.svc.ctx.ticker.tickOnce(h.clock.now());
        };
        beforeAll(async () => {
          const s = sharedService(sql, serviceOpts);
          h.clock = s.clock;
          h.svc = await s.svc;
          h.app = h.svc.app;
          await enterMode(h.svc, mode);
        });
        body(h);
      });
    }
  }
}

/** Queue statistics of a concert as the admin endpoint reports them. */
export async function queueStats(app: TestService['app'], concertId: number) {
  const r = await call(app, 'GET', `/admin/concerts/${concertId}/queue`, { admin: true });
  if (r.status !== 200) throw new Error(`queue stats: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as {
    concertId: number; waiting: number; active: number; admittedTotal: number; lastEntry: number; lastAdmittedEntry: number;
    config: { maxActive: number; admitPerSecond: number; activeTtlSeconds: number; paused: boolean };
  };
}

export async function patchQueue(app: TestService['app'], concertId: number, body: Record<string, unknown>) {
  const r = await call(app, 'PATCH', `/admin/concerts/${concertId}/queue`, { admin: true, body });
  if (r.status !== 200) throw new Error(`patch queue: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A fresh user id per call, so tests never share users. */
let lastUser = 1000;
export const newUserId = () => ++lastUser;

/**
 * Creates a concert and moves the clock past the one-second cache of live concerts, so the
 * next admission tick already includes it (as it would a second later in production).
 */
export async function newConcert(h: Harness, schedules?: { seats: number; price: number }[]) {
  const concert = await createConcert(h.app, schedules);
  h.clock.advance(1001);
  return concert;
}
