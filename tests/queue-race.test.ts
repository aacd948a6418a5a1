/**
 * FIFO and maxActive under real concurrency: 200 users join at once, then admission ticks
 * while admitted users depart, until everyone has been admitted. After every tick: never more
 * than maxActive active, never more than a tick's budget admitted, and the newly admitted are
 * exactly the next entries in line. Both service modes, both SQL engines.
 */
import { expect, test } from 'bun:test';
import { keys } from '../src/redis/keys.ts';
import { describeEach, newConcert, newUserId, patchQueue, type Harness } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';

const USERS = 200;
const MAX_ACTIVE = 20;
const PER_TICK = 15;

/** Entry numbers of the users active now, read from the store of the current mode. */
async function activeSeqs(h: Harness, concertId: number, seqOfUser: Map<number, number>): Promise<number[]> {
  const now = h.clock.now();
  if (h.mode === 'redis') {
    const users = await h.svc.redis.zrangebyscore(keys.active(concertId), `(${now}`, '+inf');
    return users.map((u) => seqOfUser.get(Number(u))!).sort((a, b) => a - b);
  }
  const rows = await h.svc.database.db.selectFrom('queue_entries').select('seq')
    .where('concert_id', '=', concertId).where('status', '=', 'active').where('active_until', '>', now).orderBy('seq').execute();
  return rows.map((r) => r.seq);
}

describeEach('queue race', {}, (h) => {
  test(`${USERS} concurrent joins are admitted strictly in entry order, never more than ${MAX_ACTIVE} at once`, async () => {
    const concert = await newConcert(h);
    await patchQueue(h.app, concert.id, { maxActive: MAX_ACTIVE, admitPerSecond: PER_TICK });

    const userIds = Array.from({ length: USERS }, () => newUserId());
    const userTokens = await Promise.all(userIds.map((u) => userToken(h.app, u)));
    const joined = await Promise.all(userTokens.map((t) => join(h.app, concert.id, t)));
    expect(joined.every((r) => r.status === 201)).toBe(true);

    const seqOfUser = new Map<number, number>();
    const tokenOfSeq = new Map<number, string>();
    for (const [i, r] of joined.entries()) {
      const seq = (await h.svc.ctx.tokens.decode(r.body.token, h.clock.now()))!.seq!;
      seqOfUser.set(userIds[i]!, seq);
      tokenOfSeq.set(seq, r.body.token);
      expect(r.body.position).toBe(seq);
    }
    // Every entry number exactly once: 1..200.
    expect([...tokenOfSeq.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: USERS }, (_, i) => i + 1));

    let lastAdmitted = 0;
    let boundBit = false;
    const departed = new Set<number>();
    for (let tick = 1; lastAdmitted < USERS; tick++) {
      expect(tick).toBeLessThan(100);
      await h.tick();
      const active = await activeSeqs(h, concert.id, seqOfUser);
      expect(active.length).toBeLessThanOrEqual(MAX_ACTIVE);
      const fresh = active.filter((s) => s > lastAdmitted);
      // The newly admitted are exactly the next entries in line, within one tick's budget.
      expect(fresh).toEqual(Array.from({ length: fresh.length }, (_, i) => lastAdmitted + 1 + i));
      expect(fresh.length).toBeLessThanOrEqual(PER_TICK);
      // Nobody admitted earlier came back, nobody who departed is active.
      for (const s of active) expect(departed.has(s)).toBe(false);
      if (active.length === MAX_ACTIVE && fresh.length < PER_TICK && lastAdmitted + fresh.length < USERS) boundBit = true;
      lastAdmitted += fresh.length;

      // What the users see agrees: the last admitted is active, the next in line is first.
      if (fresh.length) {
        const me = await call(h.app, 'GET', '/v1/queue/me', { token: tokenOfSeq.get(lastAdmitted) });
        expect(me.body.status).toBe('active');
      }
      if (lastAdmitted < USERS) {
        const next = await call(h.app, 'GET', '/v1/queue/me', { token: tokenOfSeq.get(lastAdmitted + 1) });
        expect(next.body).toMatchObject({ status: 'waiting', position: 1 });
      }

      // The earliest admitted depart, freeing their slots at once: 3 or 10 of them a tick.
      const leaving = active.slice(0, tick % 2 ? 3 : 10);
      const left = await Promise.all(leaving.map((s) => call(h.app, 'DELETE', '/v1/queue/me', { token: tokenOfSeq.get(s) })));
      expect(left.map((r) => r.status)).toEqual(leaving.map(() => 204));
      for (const s of leaving) departed.add(s);
    }
    expect(boundBit).toBe(true);
    const stats = (await call(h.app, 'GET', `/admin/concerts/${concert.id}/queue`, { admin: true })).body;
    expect(stats).toMatchObject({ waiting: 0, admittedTotal: USERS });
  }, 30_000);
});
