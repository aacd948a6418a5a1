/**
 * An instance learns of a mode change by reading the shared mode row, every 250 ms; under load
 * its reads wait for a pooled connection and it may learn late. The fault checker caught one
 * that stayed in SQL mode through another instance's whole rebuild: a fan's leave (204) and
 * new join (201) made there never reached Redis, and the left place came back. SQL-mode writes
 * now check the row inside their own transaction (FOR SHARE on PostgreSQL) and refuse unless
 * it says `sql`; the rebuild's move to `rebuilding` waits for those under way.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { enterMode, newUserId } from './helpers/harness.ts';
import { call, createConcert, join, userToken } from './helpers/http.ts';
import { startService, type TestService } from './helpers/service.ts';
import { SQL_TARGETS } from './helpers/sql.ts';

for (const target of SQL_TARGETS) {
  describe(`an instance that has not followed the mode row [${target}]`, () => {
    let svc: TestService;
    let late: ReturnType<TestService['spawnInstance']>;
    beforeAll(async () => {
      svc = await startService({ sql: target });
      late = svc.spawnInstance();
    });
    afterAll(async () => {
      late?.close();
      await svc?.stop();
    });

    test('cannot change places or admit in SQL after the fleet has moved on; the rebuilt Redis stays the truth', async () => {
      const c = await createConcert(svc.app, [{ seats: 5, price: 1000 }]);
      const fan = await join(svc.app, c.id, await userToken(svc.app, newUserId()));
      expect(fan.status).toBe(201);

      // Redis fails: the fleet goes to SQL mode, then this instance rebuilds and returns to Redis.
      await enterMode(svc, 'sql');
      late.ctx.mode.set('sql', 'test: followed the row');
      expect(await svc.ctx.coordinator.recover()).toBe(true);
      expect(svc.ctx.mode.current).toBe('redis');

      // The late instance still believes in SQL mode: it must refuse, not write where nobody reads.
      const leave = await call(late.app, 'DELETE', '/v1/queue/me', { token: fan.body.token });
      const newcomer = await join(late.app, c.id, await userToken(late.app, newUserId()));
      for (const r of [leave, newcomer]) {
        expect([r.status, r.body.error.code, r.headers.get('Retry-After')]).toEqual([503, 'UNAVAILABLE', '1']);
      }
      await expect(late.ctx.ticker.tickOnce(Date.now())).rejects.toMatchObject({ status: 503, code: 'UNAVAILABLE' });

      // What Redis serves is still the whole truth: the fan's place is there, nobody else's.
      const poll = await call(svc.app, 'GET', '/v1/queue/me', { token: fan.body.token });
      expect(poll.status).toBe(200);
      const entries = await svc.database.db.selectFrom('queue_entries').select(['seq', 'status']).where('concert_id', '=', c.id).execute();
      expect(entries).toEqual([{ seq: 1, status: 'waiting' }]);
      expect((await svc.database.db.selectFrom('queue_state').select('last_tick').where('concert_id', '=', c.id)
        .executeTakeFirstOrThrow()).last_tick).toBe(0);
    });
  });
}
