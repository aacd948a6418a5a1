/**
 * Validation answers say what is wrong in words a client developer understands: the first
 * problem in the message ("seatNumber: must be a whole number ≥ 1"), every problem in details
 * as {field, problem}. Until now every body error read "invalid json", also for valid JSON of
 * the wrong type. Bad input never changes anything.
 */
import { expect, test } from 'bun:test';
import { describeEach, newUserId } from './helpers/harness.ts';
import { admit } from './helpers/sales.ts';
import { call, createConcert, futureIso, userToken } from './helpers/http.ts';

const expect400 = (r: { status: number; body: any }, message: string, details?: unknown[]) => {
  expect({ status: r.status, code: r.body?.error?.code, message: r.body?.error?.message })
    .toEqual({ status: 400, code: 'VALIDATION_FAILED', message });
  if (details) expect(r.body.error.details).toEqual(details);
};

describeEach('validation messages', {}, (h) => {
  const tokenCount = async () => Number((await h.svc.database.db.selectFrom('tokens')
    .select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);

  test.each([
    ['not JSON', '{"userId": 1', 'body is not JSON', [{ field: 'body', problem: 'is not JSON' }]],
    ['an array', '[{"userId": 1}]', 'body must be a JSON object', [{ field: 'body', problem: 'must be a JSON object' }]],
    ['null', 'null', 'body must be a JSON object', [{ field: 'body', problem: 'must be a JSON object' }]],
    ['a string', '"userId"', 'body must be a JSON object', [{ field: 'body', problem: 'must be a JSON object' }]],
    ['a number', '7', 'body must be a JSON object', [{ field: 'body', problem: 'must be a JSON object' }]],
    ['empty', '', 'body is empty: send a JSON object', [{ field: 'body', problem: 'is required' }]],
    ['a field of the wrong type', '{"userId": "7"}', 'userId: must be a whole number ≥ 1', [{ field: 'userId', problem: 'must be a whole number ≥ 1' }]],
    ['a fraction', '{"userId": 7.5}', 'userId: must be a whole number ≥ 1', undefined],
    ['zero', '{"userId": 0}', 'userId: must be a whole number ≥ 1', undefined],
    ['past the safe integers', '{"userId": 9007199254740993}', 'userId: must be a whole number ≤ 9007199254740991', undefined],
    ['a missing field', '{}', 'userId: is required', [{ field: 'userId', problem: 'is required' }]],
    ['unknown fields', '{"userId": 7, "foo": 1, "bar": 2}', 'unknown field: foo',
      [{ field: 'foo', problem: 'unknown field' }, { field: 'bar', problem: 'unknown field' }]],
  ] as const)('POST /v1/tokens, body %s → %p', async (_what, raw, message, details) => {
    const before = await tokenCount();
    expect400(await call(h.app, 'POST', '/v1/tokens', { raw }), message, details as unknown[] | undefined);
    expect(await tokenCount()).toBe(before);
  });

  test('a Content-Type other than JSON, or none, is named as the problem', async () => {
    const form = await call(h.app, 'POST', '/v1/tokens', { raw: 'userId=1', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    expect400(form, 'Content-Type must be application/json, got "application/x-www-form-urlencoded"',
      [{ field: 'Content-Type', problem: 'must be application/json' }]);
    const text = await call(h.app, 'POST', '/v1/tokens', { raw: '{"userId": 1}', headers: { 'Content-Type': 'text/plain' } });
    expect400(text, 'Content-Type must be application/json, got "text/plain"');
    const res = await h.app.request('/v1/tokens', { method: 'POST', body: '{"userId": 1}', headers: {} });
    expect400({ status: res.status, body: await res.json() }, 'Content-Type must be application/json, got none');
    // JSON with a charset, and JSON media types with a suffix, are JSON.
    const ok = await call(h.app, 'POST', '/v1/tokens', { raw: `{"userId": ${newUserId()}}`, headers: { 'Content-Type': 'application/json; charset=utf-8' } });
    expect(ok.status).toBe(201);
  });

  test('nested fields are named by their path; every problem is in details, one per field', async () => {
    const r = await call(h.app, 'POST', '/admin/concerts', {
      admin: true, body: { schedules: [{ date: futureIso(), seats: 10, price: 100 }, { date: 'tomorrow', seats: 0, price: -1, vip: true }] },
    });
    expect400(r, 'title: is required', [
      { field: 'title', problem: 'is required' },
      { field: 'schedules.1.date', problem: 'must be an ISO-8601 date-time such as 2026-12-24T19:00:00Z' },
      { field: 'schedules.1.seats', problem: 'must be a whole number ≥ 1' },
      { field: 'schedules.1.price', problem: 'must be a whole number ≥ 0' },
      { field: 'schedules.1.vip', problem: 'unknown field' },
    ]);
    expect400(await call(h.app, 'POST', '/admin/concerts', { admin: true, body: { title: 'x', schedules: 'all' } }),
      'schedules: must be a list of schedules');
    expect400(await call(h.app, 'POST', '/admin/concerts', { admin: true, body: { title: '', schedules: [] } }),
      'title: must be a text of 1 to 200 characters', [
        { field: 'title', problem: 'must be a text of 1 to 200 characters' },
        { field: 'schedules', problem: 'must list at least 1 schedule' },
      ]);
  });

  test('queue settings: a body-wide rule and a wrong type', async () => {
    const c = await createConcert(h.app);
    expect400(await call(h.app, 'PATCH', `/admin/concerts/${c.id}/queue`, { admin: true, body: {} }),
      'give at least one of maxActive, admitPerSecond, activeTtlSeconds, paused');
    expect400(await call(h.app, 'PATCH', `/admin/concerts/${c.id}/queue`, { admin: true, body: { paused: 'yes' } }),
      'paused: must be true or false', [{ field: 'paused', problem: 'must be true or false' }]);
    expect400(await call(h.app, 'PATCH', `/admin/concerts/${c.id}/queue`, { admin: true, body: { maxActive: 20_000_000 } }),
      'maxActive: must be a whole number ≤ 10000000');
  });

  test('path parameters and headers are named too', async () => {
    for (const bad of ['abc', '0', '-1', '1.5', '01']) {
      expect400(await call(h.app, 'GET', `/admin/concerts/${bad}/queue`, { admin: true }),
        'concertId: must be a positive whole number', [{ field: 'concertId', problem: 'must be a positive whole number' }]);
    }
    const token = await userToken(h.app, newUserId());
    expect400(await call(h.app, 'GET', '/v1/concerts/1/schedules/x/seats', { token }), 'scheduleId: must be a positive whole number');
    expect400(await call(h.app, 'GET', '/v1/reservations/nope', { token }), 'id: must be a reservation id (<concertId>-<uuid>)');
    const charge = await call(h.app, 'POST', '/v1/me/balance/charge', {
      token, body: { amount: 100 }, headers: { 'Idempotency-Key': 'k'.repeat(201) },
    });
    expect400(charge, 'Idempotency-Key: must be 1 to 200 printable ASCII characters',
      [{ field: 'Idempotency-Key', problem: 'must be 1 to 200 printable ASCII characters' }]);
    expect400(await call(h.app, 'POST', '/v1/me/balance/charge', { token, body: { amount: 0 } }), 'amount: must be a whole number ≥ 1');
    expect((await call(h.app, 'GET', '/v1/me/balance', { token })).body.balance).toBe(0);
  });

  test('holds and payments: the seat and reservation fields', async () => {
    const c = await createConcert(h.app, [{ seats: 3, price: 100 }]);
    const s = c.schedules[0]!.id;
    const [a] = await admit(h, c.id, 1);
    const hold = (body: unknown) => call(h.app, 'POST', '/v1/reservations', { token: a!.token, body });
    expect400(await hold({ scheduleId: s, seatNumber: 0 }), 'seatNumber: must be a whole number ≥ 1',
      [{ field: 'seatNumber', problem: 'must be a whole number ≥ 1' }]);
    expect400(await hold({ scheduleId: s, seatNumber: '2' }), 'seatNumber: must be a whole number ≥ 1');
    expect400(await hold({ seatNumber: 1 }), 'scheduleId: is required');
    expect400(await hold({ scheduleId: s, seatNumber: 1, seat: 1 }), 'unknown field: seat');
    expect400(await call(h.app, 'POST', '/v1/payments', { token: a!.token, body: { reservationId: 42 } }),
      'reservationId: must be a reservation id (<concertId>-<uuid>)');
    const seats = await call(h.app, 'GET', `/v1/concerts/${c.id}/schedules/${s}/seats`, { token: a!.token });
    expect(seats.body.seats.map((x: { status: string }) => x.status)).toEqual(['available', 'available', 'available']);
  });
});
