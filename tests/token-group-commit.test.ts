/**
 * POST /v1/tokens records its tokens by group commit: requests that arrive together share one SQL
 * transaction, and each is answered only once its own row has committed. What a client must
 * never see is a 201 for a token SQL does not have: a row SQL refuses fails that request alone,
 * and a batch lost with the database fails every request in it.
 */
import { describe, expect, test } from 'bun:test';
import { sql } from 'kysely';
import { tagLimit, tagOf, TOKEN_TAGS_MAX, tokenTags, newUserTokenId } from '../src/modules/tokens/token-slots.ts';
import { keys } from '../src/redis/keys.ts';
import { GroupCommitter } from '../src/store/group-commit.ts';
import { isPostgres, type Db } from '../src/store/connect.ts';
import { describeEach, enterMode, MODES, newUserId, TestClock, type Harness } from './helpers/harness.ts';
import { call, eventually, type Reply } from './helpers/http.ts';
import { holdInTransaction, privatePgBin, usePrivatePg } from './helpers/private-pg.ts';
import type { TestService } from './helpers/service.ts';

/** Issues a token for each user at once; the answers in the same order. */
const issueAll = (app: TestService['app'], users: number[]) =>
  Promise.all(users.map((userId) => call(app, 'POST', '/v1/tokens', { body: { userId } })));

/** Every 201 names a token that verifies, belongs to its user and is a live row in SQL (and in Redis in redis mode). */
async function expectRecorded(svc: TestService, users: number[], answers: Reply[], now: number, inRedis: boolean) {
  const answered = new Map<string, number>();
  for (const [i, r] of answers.entries()) {
    if (r.status !== 201) continue;
    const p = (await svc.ctx.tokens.decode(r.body.token, now))!;
    expect(p).toMatchObject({ typ: 'user', userId: users[i] });
    answered.set(p.jti, users[i]!);
    if (inRedis) expect(await svc.redis.exists(keys.userToken(p.jti))).toBe(1);
  }
  if (answered.size === 0) return;
  // One query, so that the check adds one transaction to PostgreSQL's count, not one a token.
  const rows = await svc.database.db.selectFrom('tokens').select(['jti', 'user_id', 'typ', 'revoked_at'])
    .where('jti', 'in', [...answered.keys()]).execute();
  expect(new Map(rows.map((r) => [r.jti, r]))).toEqual(new Map([...answered].map(([jti, userId]) => [jti, { jti, user_id: userId, typ: 'user' as const, revoked_at: null }])));
}

async function tokenRowsOf(db: Db, userIds: number[]): Promise<number> {
  const r = await db.selectFrom('tokens').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', 'in', userIds).executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Transactions committed in the current PostgreSQL database, as the server counts them. */
async function pgCommits(db: Db): Promise<number> {
  const r = await sql<{ n: string }>`SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()`.execute(db);
  return Number(r.rows[0]!.n);
}

/**
 * The count once earlier work has reached it: backends report their counts lazily (up to about
 * 10 s after going idle), so the count is read every second until it stops moving (each read is
 * a transaction of its own, reported by the next one).
 */
async function settledPgCommits(db: Db): Promise<number> {
  let last = await pgCommits(db);
  return eventually(async () => {
    const now = await pgCommits(db);
    const settled = now - last <= 1;
    last = now;
    return settled ? now : undefined;
  }, 30_000, 1000);
}

/** A real refusal by SQL: a trigger that aborts the insert of any token of one user. */
async function refuseTokensOf(db: Db, userId: number): Promise<() => Promise<void>> {
  if (isPostgres(db)) {
    await sql.raw(`CREATE FUNCTION refuse_tokens_${userId}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.user_id = ${userId} THEN RAISE EXCEPTION 'tokens of user ${userId} refused'; END IF; RETURN NEW; END $$`).execute(db);
    await sql.raw(`CREATE TRIGGER refuse_tokens_${userId} BEFORE INSERT ON tokens FOR EACH ROW EXECUTE FUNCTION refuse_tokens_${userId}()`).execute(db);
    return async () => {
      await sql.raw(`DROP TRIGGER refuse_tokens_${userId} ON tokens`).execute(db);
      await sql.raw(`DROP FUNCTION refuse_tokens_${userId}()`).execute(db);
    };
  }
  await sql.raw(`CREATE TRIGGER refuse_tokens_${userId} BEFORE INSERT ON tokens WHEN NEW.user_id = ${userId}
    BEGIN SELECT RAISE(ABORT, 'tokens of user ${userId} refused'); END`).execute(db);
  return async () => { await sql.raw(`DROP TRIGGER refuse_tokens_${userId}`).execute(db); };
}

describeEach('POST /v1/tokens by group commit', {}, (h: Harness) => {
  test('many concurrent issues commit in far fewer transactions than requests; every answered token is recorded', async () => {
    const n = 300;
    const users = Array.from({ length: n }, () => newUserId());
    const db = h.svc.database.db;
    const pgBefore = h.sql === 'postgres' ? await settledPgCommits(db) : 0;
    const before = h.svc.ctx.tokens.userTokenCommits.commits;
    const answers = await issueAll(h.app, users);
    expect(answers.map((r) => r.status)).toEqual(users.map(() => 201));
    const transactions = h.svc.ctx.tokens.userTokenCommits.commits - before;
    expect(transactions).toBeGreaterThanOrEqual(Math.ceil(n / 64));
    expect(transactions).toBeLessThan(n / 4);
    if (h.sql === 'postgres') {
      // PostgreSQL's own count (its statistics reach the view a little later). Everything else the
      // service did meanwhile adds to it, so it is an upper bound: one transaction per token would
      // be at least n.
      const pgDelta = await eventually(async () => {
        const d = (await pgCommits(db)) - pgBefore;
        return d >= transactions ? d : undefined;
      }, 20_000, 200);
      expect(pgDelta).toBeLessThan(n / 2);
    }
    await expectRecorded(h.svc, users, answers, h.clock.now(), h.mode === 'redis');
    expect(await tokenRowsOf(db, users)).toBe(n);
  }, 60_000);

  test('a row SQL refuses fails its own request only; the rest of its batch is recorded', async () => {
    const users = Array.from({ length: 30 }, () => newUserId());
    const refused = users[13]!;
    const db = h.svc.database.db;
    const allow = await refuseTokensOf(db, refused);
    let answers: Reply[];
    try {
      answers = await issueAll(h.app, users);
    } finally {
      await allow();
    }
    expect(answers[13]!.status).not.toBe(201);
    expect(answers.filter((r) => r.status === 201)).toHaveLength(users.length - 1);
    expect(await tokenRowsOf(db, [refused])).toBe(0);
    await expectRecorded(h.svc, users, answers, h.clock.now(), h.mode === 'redis');
    // The same user is served again once SQL takes the row.
    expect((await call(h.app, 'POST', '/v1/tokens', { body: { userId: refused } })).status).toBe(201);
  }, 60_000);

  test('issued together, a user twice and a user already known: every row as issued, known users untouched, new ones at balance 0', async () => {
    const db = h.svc.database.db;
    const known = newUserId();
    expect((await call(h.app, 'POST', '/v1/tokens', { body: { userId: known } })).status).toBe(201);
    await db.updateTable('users').set({ balance: 777 }).where('id', '=', known).execute();
    const knownCreated = (await db.selectFrom('users').select('created_at').where('id', '=', known).executeTakeFirstOrThrow()).created_at;
    h.clock.advance(5_000);
    const twice = newUserId();
    const fresh = newUserId();
    const users = [known, twice, fresh, twice];
    const answers = await issueAll(h.app, users);
    expect(answers.map((r) => r.status)).toEqual(users.map(() => 201));
    const now = h.clock.now();
    const issued = await Promise.all(answers.map(async (r) => ({
      jti: (await h.svc.ctx.tokens.decode(r.body.token, now))!.jti, expiresAt: Date.parse(r.body.expiresAt),
    })));
    expect(new Set(issued.map((t) => t.jti)).size).toBe(users.length);
    const rows = await db.selectFrom('tokens').selectAll().where('jti', 'in', issued.map((t) => t.jti)).execute();
    const byJti = new Map(rows.map((r) => [r.jti, { ...r, user_id: Number(r.user_id), expires_at: Number(r.expires_at), created_at: Number(r.created_at) }]));
    expect(issued.map((t) => byJti.get(t.jti))).toEqual(issued.map((t, i) => ({
      jti: t.jti, user_id: users[i]!, typ: 'user', concert_id: null, seq: null, expires_at: t.expiresAt, revoked_at: null, created_at: now,
    })));
    const userRows = await db.selectFrom('users').select(['id', 'balance', 'created_at']).where('id', 'in', [known, twice, fresh]).orderBy('id').execute();
    expect(userRows.map((u) => ({ id: Number(u.id), balance: Number(u.balance), created_at: Number(u.created_at) }))).toEqual([
      { id: known, balance: 777, created_at: Number(knownCreated) },
      { id: twice, balance: 0, created_at: now },
      { id: fresh, balance: 0, created_at: now },
    ].sort((a, b) => a.id - b.id));
    await expectRecorded(h.svc, users, answers, now, h.mode === 'redis');
  }, 60_000);
});

describe('user token tags', () => {
  test('small limits use one tag, counted exactly; large ones split into shares that sum to the limit', () => {
    expect([0, 1, 2, 4096].map(tokenTags)).toEqual([1, 1, 1, 1]);
    expect(tokenTags(4097)).toBe(2);
    expect(tokenTags(100_000)).toBe(25);
    expect(tokenTags(1_000_000_000)).toBe(TOKEN_TAGS_MAX);
    for (const limit of [0, 2, 4097, 100_000, 1_000_003]) {
      const shares = Array.from({ length: tokenTags(limit) }, (_, i) => tagLimit(limit, i));
      expect(shares.reduce((a, b) => a + b, 0)).toBe(limit);
      expect(Math.max(...shares) - Math.min(...shares)).toBeLessThanOrEqual(1);
    }
  });

  test('a new token id is a UUID whose first byte is a tag in use', () => {
    for (const limit of [2, 100_000]) {
      for (let i = 0; i < 200; i++) {
        const jti = newUserTokenId(limit);
        expect(jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(tagOf(jti)).toBeLessThan(tokenTags(limit));
        expect(keys.userToken(jti)).toBe(`{tok:${jti.slice(0, 2)}}:${jti}`);
        expect(keys.liveUserTokens(jti)).toBe(`{tok:${jti.slice(0, 2)}}:live`);
      }
    }
  });
});

const pgBin = privatePgBin;
if (!pgBin) console.log('skip: initdb not found, the lost-batch test needs a private PostgreSQL');

describe.skipIf(!pgBin)('a batch lost with PostgreSQL', () => {
  const clock = new TestClock();
  const pg = usePrivatePg(clock, 5000);

  test('PostgreSQL stopped while a batch waits: no 201 for any of its tokens, and none recorded', async () => {
    for (const mode of MODES) {
      await enterMode(pg.svc, mode);
      const early = Array.from({ length: 5 }, () => newUserId());
      const earlyAnswers = await issueAll(pg.svc.app, early);
      expect(earlyAnswers.map((r) => r.status)).toEqual(early.map(() => 201));

      // Another session holds the tokens table, so the next batch waits inside its transaction.
      // It holds the lock until the server has gone away: its COMMIT then fails.
      const locker = holdInTransaction(pg.cluster.url, (trx) => sql`LOCK TABLE tokens IN SHARE MODE`.execute(trx));
      await locker.locked;
      const lost = Array.from({ length: 20 }, () => newUserId());
      const pending = issueAll(pg.svc.app, lost);
      await eventually(async () => {
        const r = await sql<{ n: string }>`SELECT count(*) AS n FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query ILIKE '%insert into "tokens"%'`.execute(pg.svc.database.db);
        return Number(r.rows[0]!.n) >= 1;
      }, 10_000, 50);
      await pg.cluster.crash();
      const ended = locker.end({ mayFail: true });
      const answers = await pending;
      await ended;
      expect(answers.map((r) => `${r.status} ${r.body?.error?.code}`)).toEqual(lost.map(() => '503 UNAVAILABLE'));

      await pg.cluster.start();
      await eventually(() => pg.svc.database.db.selectFrom('tokens').select('jti').limit(1).execute().then(() => true, () => false), 20_000, 200);
      expect(await tokenRowsOf(pg.svc.database.db, lost)).toBe(0);
      await expectRecorded(pg.svc, early, earlyAnswers, clock.now(), mode === 'redis');
      // Back up: tokens are issued and recorded again.
      const after = Array.from({ length: 5 }, () => newUserId());
      const afterAnswers = await issueAll(pg.svc.app, after);
      expect(afterAnswers.map((r) => r.status)).toEqual(after.map(() => 201));
      await expectRecorded(pg.svc, after, afterAnswers, clock.now(), mode === 'redis');
    }
  }, 120_000);
});

describe('GroupCommitter: when a batch goes', () => {
  /** A commit the test ends by hand; records each batch as it starts. */
  function manual() {
    const batches: number[][] = [];
    const ends: (() => void)[] = [];
    let started: (() => void) | null = null;
    const commit = (items: number[]) => new Promise<void>((resolve) => {
      batches.push(items);
      ends.push(resolve);
      started?.();
    });
    const nextStart = () => new Promise<void>((r) => { started = r; });
    return { batches, ends, commit, nextStart };
  }

  test('a lone write goes at once; writes that come while a commit runs go together when it returns', async () => {
    const m = manual();
    const g = new GroupCommitter(m.commit, { windowMs: 60_000, maxBatch: 64, inFlight: 1 });
    const first = g.submit(1);
    expect(m.batches).toEqual([[1]]);
    const rest = [2, 3, 4].map((i) => g.submit(i));
    expect(m.batches).toEqual([[1]]);
    const second = m.nextStart();
    m.ends[0]!();
    await first;
    await second;
    expect(m.batches).toEqual([[1], [2, 3, 4]]);
    m.ends[1]!();
    await Promise.all(rest);
    expect(g.commits).toBe(2);
  });

  test('a full batch goes without waiting; a commit that takes too long does not hold the next past the window', async () => {
    const m = manual();
    const g = new GroupCommitter(m.commit, { windowMs: 5, maxBatch: 3, inFlight: 1 });
    void g.submit(1);
    void g.submit(2);
    void g.submit(3);
    expect(m.batches).toEqual([[1]]);
    void g.submit(4);
    expect(m.batches).toEqual([[1], [2, 3, 4]]);
    // Both commits still run: the next write waits for the window (5 ms), not for them.
    const third = m.nextStart();
    void g.submit(5);
    await third;
    expect(m.batches).toEqual([[1], [2, 3, 4], [5]]);
  });
});
