import { expect, test } from 'bun:test';
import type { KyselyPlugin } from 'kysely';
import { SaleService } from '../src/modules/draw/sale.service.ts';
import { createHash } from 'node:crypto';
import { drawCommitment, drawOrder, drawTicket } from '../src/modules/draw/algorithm.ts';
import { keepAliveUntilOpening, openSale, poll, prequeue, saleConcert } from './helpers/draw.ts';
import { describeEach, newUserId } from './helpers/harness.ts';
import { call, createConcert, userToken } from './helpers/http.ts';
import { readLine } from '../src/modules/queue/line.ts';
import { queueTokenRecord } from '../src/redis/codecs.ts';
import { keys } from '../src/redis/keys.ts';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describeEach('scheduled sale', {}, (h) => {
  test('the concert shows its opening and the commitment to its seed', async () => {
    const c = await saleConcert(h);
    expect(c.body.saleStartsAt).toBe(c.saleStartsAt);
    const r = await call(h.app, 'GET', `/v1/concerts/${c.id}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: c.id, saleStartsAt: c.saleStartsAt });
    expect(r.body.draw.commitment).toMatch(/^[0-9a-f]{64}$/);
    expect(r.body.draw.commitment).toBe(c.body.draw.commitment);
    const open = await createConcert(h.app);
    const o = await call(h.app, 'GET', `/v1/concerts/${open.id}`);
    expect(o.body).toMatchObject({ id: open.id, saleStartsAt: null, draw: null });
    expect((await call(h.app, 'GET', '/v1/concerts/999999')).status).toBe(404);
  });

  test('a join before the opening is pre-queued with a ticket from the client nonce; joining again keeps it', async () => {
    const c = await saleConcert(h);
    const user = newUserId();
    const nonce = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const p = await prequeue(h, c.id, user, nonce);
    expect(p.reply).toMatchObject({ status: 'prequeue', position: null, opensAt: c.saleStartsAt, concertId: c.id });
    expect(p.ticket).toBe(drawTicket(nonce, user));
    expect(p.ticket).toBe(sha256(`${nonce}:${user}`));
    // The same token again: same token, same ticket, 200.
    const again = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token: p.token, body: { drawNonce: 'ff'.repeat(16) } });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ token: p.token, status: 'prequeue', drawTicket: p.ticket });
    // A retry with the user token the join replaced: the same answer.
    const replay = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token: p.userToken, body: { drawNonce: nonce } });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ token: p.token, status: 'prequeue', drawTicket: p.ticket });
    // Without a nonce the server makes one: a ticket all the same.
    const other = await prequeue(h, c.id, newUserId());
    expect(other.ticket).toMatch(/^[0-9a-f]{64}$/);
  });

  test('a bad nonce is refused with a code and changes nothing', async () => {
    const c = await saleConcert(h);
    const token = await userToken(h.app, newUserId());
    for (const drawNonce of ['abc', 'zz'.repeat(10), 'a'.repeat(65), 12345]) {
      const r = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token, body: { drawNonce } });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('VALIDATION_FAILED');
      expect(r.body.error.message).toContain('drawNonce');
    }
    const unknown = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token, body: { nonce: 'a'.repeat(16) } });
    expect(unknown.status).toBe(400);
    // The user token is still the user's: nothing was recorded.
    const ok = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token });
    expect(ok.status).toBe(201);
  });

  test('a pre-queued poll keeps the heartbeat and spreads the next poll per user', async () => {
    const c = await saleConcert(h, 3_600_000);
    const a = await prequeue(h, c.id, newUserId());
    const b = await prequeue(h, c.id, newUserId());
    const ra = await poll(h, a.token);
    expect(ra.status).toBe(200);
    expect(ra.body).toMatchObject({ status: 'prequeue', concertId: c.id, position: null, opensAt: c.saleStartsAt });
    const window = Math.floor(h.svc.config.queueGraceSeconds / 3);
    expect(ra.body.pollAfterSeconds).toBeGreaterThanOrEqual(Math.ceil(window / 2));
    expect(ra.body.pollAfterSeconds).toBeLessThanOrEqual(window);
    // Deterministic per user: the same answer for the same user at the same time.
    expect((await poll(h, a.token)).body.pollAfterSeconds).toBe(ra.body.pollAfterSeconds);
    expect((await poll(h, b.token)).status).toBe(200);
    // Not admitted anywhere yet.
    const seats = await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules`, { token: a.token });
    expect(seats.status).toBe(403);
    // Polling within the grace keeps the place past several grace periods.
    for (let i = 0; i < 3; i++) {
      h.clock.advance(window * 1000);
      expect((await poll(h, a.token)).body.status).toBe('prequeue');
    }
    h.clock.advance(1000);
    // b stopped polling: its pre-queued place is gone.
    const lost = await poll(h, b.token);
    expect(lost.status).toBe(401);
  });

  test('the draw gives every pre-queued fan a place in the published order, later joiners after them', async () => {
    const c = await saleConcert(h);
    const fans = [];
    for (let i = 0; i < 8; i++) fans.push(await prequeue(h, c.id, newUserId(), (i + 1).toString(16).padStart(32, '0')));
    const before = await call(h.app, 'GET', `/v1/concerts/${c.id}/draw`);
    expect(before.status).toBe(409);
    expect(before.body.error.code).toBe('DRAW_NOT_MADE');
    await keepAliveUntilOpening(h, c.saleStartsAt, fans.map((f) => f.token));
    // Past the opening, before the draw: joins wait.
    h.clock.advance(1);
    const early = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token: await userToken(h.app, newUserId()) });
    expect(early.status).toBe(503);
    await openSale(h, c.saleStartsAt);
    const draw = await call(h.app, 'GET', `/v1/concerts/${c.id}/draw`);
    expect(draw.status).toBe(200);
    expect(drawCommitment(draw.body.seed)).toBe(draw.body.commitment);
    expect(draw.body.commitment).toBe(c.body.draw.commitment);
    expect(draw.body.tickets).toEqual(drawOrder(draw.body.seed, fans.map((f) => f.ticket)));
    expect(typeof draw.body.algorithm).toBe('string');
    // Each fan's position is the ticket's place in the published order.
    for (const f of fans) {
      const r = await poll(h, f.token);
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('waiting');
      expect(r.body.position).toBe(draw.body.tickets.indexOf(f.ticket) + 1);
      // The answer carries a token that names the entry number.
      expect(typeof r.body.token).toBe('string');
      const again = await poll(h, r.body.token);
      expect(again.body.position).toBe(r.body.position);
    }
    const late = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token: await userToken(h.app, newUserId()) });
    expect(late.status).toBe(201);
    expect(late.body.position).toBe(fans.length + 1);
    // The opening can no longer move.
    const patch = await call(h.app, 'PATCH', `/admin/concerts/${c.id}`, { admin: true, body: { saleStartsAt: new Date(h.clock.now() + 60_000).toISOString() } });
    expect(patch.status).toBe(409);
    expect(patch.body.error.code).toBe('SALE_STARTED');
  });

  test('a fan who left or stopped polling is not drawn', async () => {
    const c = await saleConcert(h, 3_600_000);
    const keep = await prequeue(h, c.id, newUserId());
    const gone = await prequeue(h, c.id, newUserId());
    const quiet = await prequeue(h, c.id, newUserId());
    expect((await call(h.app, 'DELETE', '/v1/queue/me', { token: gone.token })).status).toBe(204);
    const step = Math.floor(h.svc.config.queueGraceSeconds / 3) * 1000;
    while (h.clock.now() < Date.parse(c.saleStartsAt)) {
      h.clock.advance(step);
      await poll(h, keep.token);
    }
    await openSale(h, c.saleStartsAt);
    const draw = await call(h.app, 'GET', `/v1/concerts/${c.id}/draw`);
    expect(draw.body.tickets).toEqual([keep.ticket]);
    expect((await poll(h, quiet.token)).status).toBe(401);
    expect((await poll(h, keep.token)).body.position).toBe(1);
  });

  test('the opening moves while it is ahead; input is checked', async () => {
    const c = await saleConcert(h);
    const later = new Date(h.clock.now() + 7_200_000).toISOString();
    const r = await call(h.app, 'PATCH', `/admin/concerts/${c.id}`, { admin: true, body: { saleStartsAt: later } });
    expect(r.status).toBe(200);
    expect(r.body.saleStartsAt).toBe(later);
    expect((await call(h.app, 'GET', `/v1/concerts/${c.id}`)).body.saleStartsAt).toBe(later);
    const past = await call(h.app, 'PATCH', `/admin/concerts/${c.id}`, { admin: true, body: { saleStartsAt: new Date(h.clock.now() - 1000).toISOString() } });
    expect(past.status).toBe(400);
    const bad = await call(h.app, 'PATCH', `/admin/concerts/${c.id}`, { admin: true, body: { saleStartsAt: 'soon' } });
    expect(bad.status).toBe(400);
    const open = await createConcert(h.app);
    const none = await call(h.app, 'PATCH', `/admin/concerts/${open.id}`, { admin: true, body: { saleStartsAt: later } });
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe('SALE_NOT_SCHEDULED');
    expect((await call(h.app, 'GET', `/v1/concerts/${open.id}/draw`)).status).toBe(404);
    const create = await call(h.app, 'POST', '/admin/concerts', {
      admin: true, body: { title: 'x', saleStartsAt: new Date(h.clock.now() - 1).toISOString(), schedules: [{ date: later, seats: 1, price: 1 }] },
    });
    expect(create.status).toBe(400);
  });

  test('two instances racing at the opening make one draw', async () => {
    const c = await saleConcert(h);
    const fans = [];
    for (let i = 0; i < 20; i++) fans.push(await prequeue(h, c.id, newUserId()));
    await keepAliveUntilOpening(h, c.saleStartsAt, fans.map((f) => f.token));
    h.clock.advance(1);
    const others = [h.svc.spawnInstance({ clock: h.clock.now }), h.svc.spawnInstance({ clock: h.clock.now })];
    try {
      for (const o of others) o.ctx.mode.set(h.svc.ctx.mode.current, 'test');
      await Promise.all([h.svc.ctx.drawJob.tickOnce(h.clock.now()), ...others.map((o) => o.ctx.drawJob.tickOnce(h.clock.now()))]);
    } finally {
      for (const o of others) o.close();
    }
    const draw = await call(h.app, 'GET', `/v1/concerts/${c.id}/draw`);
    expect(draw.body.tickets.length).toBe(fans.length);
    const entries = await h.svc.database.db.selectFrom('queue_entries').select('seq').where('concert_id', '=', c.id).orderBy('seq').execute();
    expect(entries.map((e) => e.seq)).toEqual(fans.map((_, i) => i + 1));
    const positions = [];
    for (const f of fans) positions.push((await poll(h, f.token)).body.position);
    expect(positions.sort((a, b) => a - b)).toEqual(fans.map((_, i) => i + 1));
  });
});

describeEach('scheduled sale across a mode switch', { modes: ['redis'] }, (h) => {
  test('pre-queued in Redis mode, drawn in SQL mode, the same line once Redis is rebuilt', async () => {
    const c = await saleConcert(h);
    const fans = [];
    for (let i = 0; i < 6; i++) fans.push(await prequeue(h, c.id, newUserId()));
    await h.svc.ctx.coordinator.enterSql('test');
    try {
      await keepAliveUntilOpening(h, c.saleStartsAt, fans.map((f) => f.token));
      await openSale(h, c.saleStartsAt);
      const draw = (await call(h.app, 'GET', `/v1/concerts/${c.id}/draw`)).body;
      expect(draw.tickets.length).toBe(fans.length);
      const sqlPositions = [];
      for (const f of fans) sqlPositions.push((await poll(h, f.token)).body.position);
      expect(sqlPositions).toEqual(fans.map((f) => draw.tickets.indexOf(f.ticket) + 1));
      await h.svc.ctx.coordinator.rebuildNow();
      expect(h.svc.ctx.mode.current).toBe('redis');
      const redisPositions = [];
      for (const f of fans) redisPositions.push((await poll(h, f.token)).body.position);
      expect(redisPositions).toEqual(sqlPositions);
      const late = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token: await userToken(h.app, newUserId()) });
      expect(late.status).toBe(201);
      expect(late.body.position).toBe(fans.length + 1);
    } finally {
      if (h.svc.ctx.mode.current !== 'redis') await h.svc.ctx.coordinator.rebuildNow().catch(() => {});
    }
  });

  test('drawn in SQL while Redis is mid-way: the draw job applies it to Redis', async () => {
    const c = await saleConcert(h);
    const fans = [];
    for (let i = 0; i < 5; i++) fans.push(await prequeue(h, c.id, newUserId()));
    await keepAliveUntilOpening(h, c.saleStartsAt, fans.map((f) => f.token));
    h.clock.advance(1);
    // The instance that made the draw died before applying it: only SQL has it.
    await h.svc.ctx.sale.drawConcert(c.id, h.clock.now(), h.svc.ctx.backends.redis);
    expect((await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token: await userToken(h.app, newUserId()) })).status).toBe(503);
    for (const f of fans) expect((await poll(h, f.token)).body.status).toBe('prequeue');
    await h.svc.ctx.drawJob.tickOnce(h.clock.now());
    const draw = (await call(h.app, 'GET', `/v1/concerts/${c.id}/draw`)).body;
    for (const f of fans) expect((await poll(h, f.token)).body.position).toBe(draw.tickets.indexOf(f.ticket) + 1);
  });

  test('Redis loses part of an applied draw: the draw job puts back the same places, nothing twice', async () => {
    const c = await saleConcert(h);
    const fans = [];
    for (let i = 0; i < 6; i++) fans.push(await prequeue(h, c.id, newUserId()));
    await keepAliveUntilOpening(h, c.saleStartsAt, fans.map((f) => f.token));
    await openSale(h, c.saleStartsAt);
    const order = (await call(h.app, 'GET', `/v1/concerts/${c.id}/draw`)).body.tickets as string[];
    const r = h.svc.redis;
    const tok = keys.queueTokens(c.id);
    const before = await r.hgetallBuffer(tok);
    // As a failover that lost the last writes might leave it: the flag and some places gone.
    const lost = fans.slice(0, 3).map((f) => f.reply);
    const users = Object.keys(before).slice(0, 3);
    await r.hdel(tok, ...users);
    // Each lost place's 10-byte slot in the line back to zeros (empty).
    for (const u of users) await r.setrange(`{c:${c.id}}:q:line`, queueTokenRecord.decode(before[u]!).seq * 10, Buffer.alloc(10));
    await r.hincrby(`{c:${c.id}}:q:meta`, 'waiting', -users.length);
    await r.hset(`{c:${c.id}}:q:meta`, 'drawn', 0);
    expect(lost.length).toBe(3);
    const early = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token: await userToken(h.app, newUserId()) });
    expect(early.status).toBe(503);
    await h.svc.ctx.drawJob.tickOnce(h.clock.now());
    expect(await r.hgetallBuffer(tok)).toEqual(before);
    expect((await readLine(r, c.id)).map((p) => p.userId).sort()).toEqual(Object.keys(before).map(Number).sort());
    expect(await r.hget(`{c:${c.id}}:q:meta`, 'waiting')).toBe(String(fans.length));
    for (const f of fans) expect((await poll(h, f.token)).body.position).toBe(order.indexOf(f.ticket) + 1);
    const late = await call(h.app, 'POST', `/v1/concerts/${c.id}/queue`, { token: await userToken(h.app, newUserId()) });
    expect(late.body.position).toBe(fans.length + 1);
  });
});

// SQL answers a pre-queue poll in SQL mode, and in Redis mode for a fan Redis does not know.
describeEach('scheduled sale, a poll racing the draw', { modes: ['sql'] }, (h) => {
  test('a pre-queued poll that the draw overtakes between its reads answers the drawn place, not 401', async () => {
    const c = await saleConcert(h);
    const u = newUserId();
    const fan = await prequeue(h, c.id, u);
    await keepAliveUntilOpening(h, c.saleStartsAt, [fan.token]);
    h.clock.advance(1);
    const ctx = h.svc.ctx;
    const sql = ctx.backends.sql; // the mode's backend: pre-queue polls that SQL answers
    // A second instance's sale service whose reads let the draw (made by this one) commit right
    // after its read of the fan's pre-queue row, and before it looks at the sale.
    let armed = true;
    const rowReads = new Set<unknown>();
    const racing: KyselyPlugin = {
      transformQuery: (args) => {
        if (armed && JSON.stringify(args.node).includes('"prequeue_entries"')) rowReads.add(args.queryId);
        return args.node;
      },
      transformResult: async (args) => {
        if (rowReads.delete(args.queryId) && armed) {
          armed = false;
          expect(await ctx.sale.drawConcert(c.id, h.clock.now(), sql)).not.toBeNull();
        }
        return args.result;
      },
    };
    const other = new SaleService(ctx.db.withPlugin(racing), ctx.redis, ctx.config, ctx.tokens, ctx.log, ctx.backends.redis.prequeue);
    const jti = JSON.parse(Buffer.from(fan.token.split('.')[1]!, 'base64url').toString()).jti as string;
    const road = await other.pollPrequeue({ concertId: c.id, userId: u, jti }, h.clock.now(), sql);
    expect(armed).toBe(false);
    expect(road).toEqual({ kind: 'placed', seq: expect.any(Number) });
  });
});
