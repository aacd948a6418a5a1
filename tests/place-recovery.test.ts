/**
 * A place Redis lost while SQL has it (recorded before it was acknowledged) is put back on the
 * fan's next request instead of answering 401. The fault checker caught the loss on a
 * `SENTINEL FAILOVER`: a join acknowledged by the old master in its last second (its WAIT was
 * confirmed by the replica the sentinels were about to reconfigure) was missing on the new
 * master, and the next poll answered 401 until the rebuild. Tokens that were replaced, and
 * places that were left or lapsed, stay 401.
 */
import { expect, test } from 'bun:test';
import { readLine } from '../src/modules/queue/line.ts';
import { keys } from '../src/redis/keys.ts';
import { describeEach, newConcert, newUserId } from './helpers/harness.ts';
import { call, join, userToken } from './helpers/http.ts';
import { SALES_ENV } from './helpers/sales.ts';

describeEach('a place Redis lost', { env: { ...SALES_ENV, QUEUE_GRACE_SECONDS: '60' }, modes: ['redis'] }, (h) => {
  const seqOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).seq as number;
  /** What a promoted replica that missed the place holds: no token record, no slot in the line, one fewer waiting. */
  const forget = async (concertId: number, userId: number, token: string) => {
    const r = h.svc.redis;
    const bit = seqOf(token) * 80;
    const [slotUser] = (await r.bitfield(keys.line(concertId), 'GET', 'u32', bit)) as number[];
    const tx = r.multi().hdel(keys.queueTokens(concertId), String(userId)).zrem(keys.active(concertId), String(userId));
    if (slotUser === userId) tx.call('BITFIELD', keys.line(concertId), 'SET', 'u32', bit, 0, 'SET', 'u48', bit + 32, 0).hincrby(keys.queueMeta(concertId), 'waiting', -1);
    await tx.exec();
  };

  test('is put back from SQL on the next poll or hold, waiting or admitted, with its entry number', async () => {
    const c = await newConcert(h, [{ seats: 5, price: 1000 }]);
    const [a, b] = [newUserId(), newUserId()];
    const ja = await join(h.app, c.id, await userToken(h.app, a));
    await h.tick();
    const jb = await join(h.app, c.id, await userToken(h.app, b));
    await h.svc.ctx.writeBehind.drainOnce(h.clock.now()); // SQL knows a is admitted
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: ja.body.token })).body.status).toBe('active');

    await forget(c.id, a, ja.body.token);
    await forget(c.id, b, jb.body.token);
    const pollB = await call(h.app, 'GET', '/v1/queue/me', { token: jb.body.token });
    expect([pollB.status, pollB.body.status]).toEqual([200, 'waiting']);
    expect((await readLine(h.svc.redis, c.id)).find((p) => p.userId === b)?.seq).toBe(seqOf(jb.body.token));
    const holdA = await call(h.app, 'POST', '/v1/reservations', { token: ja.body.token, body: { scheduleId: c.schedules[0]!.id, seatNumber: 1 } });
    expect(holdA.status).toBe(201);
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: ja.body.token })).body.status).toBe('active');
  });

  test('stays unknown when the token was replaced, the place was left, or it lapsed', async () => {
    const c = await newConcert(h);
    const [u1, u2, u3] = [newUserId(), newUserId(), newUserId()];
    const first = await join(h.app, c.id, await userToken(h.app, u1));
    const again = await join(h.app, c.id, await userToken(h.app, u1)); // a new user token rotates the queue token
    expect(again.status).toBe(200);
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: first.body.token })).status).toBe(401);

    const leaver = await join(h.app, c.id, await userToken(h.app, u2));
    expect((await call(h.app, 'DELETE', '/v1/queue/me', { token: leaver.body.token })).status).toBe(204);
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: leaver.body.token })).status).toBe(401);

    const silent = await join(h.app, c.id, await userToken(h.app, u3));
    h.clock.advance(61_000);
    // The first poll finds the heartbeat gone (the place ends in Redis, SQL learns it behind)...
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: silent.body.token })).status).toBe(401);
    // ...and the next one, unknown to Redis, is not brought back from a SQL that lagged.
    expect((await call(h.app, 'GET', '/v1/queue/me', { token: silent.body.token })).status).toBe(401);
    expect(await h.svc.redis.hexists(keys.queueTokens(c.id), String(u3))).toBe(0);
  });
});
