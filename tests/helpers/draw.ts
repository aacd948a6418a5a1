import { call, futureIso, userToken } from './http.ts';
import type { Harness } from './harness.ts';

/** A concert whose sale opens `inMs` from the test clock's now. */
export async function saleConcert(h: Harness, inMs = 600_000, seats = 10) {
  const saleStartsAt = new Date(h.clock.now() + inMs).toISOString();
  const r = await call(h.app, 'POST', '/admin/concerts', {
    admin: true, body: { title: 'Scheduled sale', saleStartsAt, schedules: [{ date: futureIso(30), seats, price: 1000 }] },
  });
  if (r.status !== 201) throw new Error(`create concert: ${r.status} ${JSON.stringify(r.body)}`);
  h.clock.advance(1001);
  return { id: r.body.id as number, saleStartsAt, body: r.body };
}

/** Pre-queues a user (with `drawNonce` when given): the join's reply and the queue token. */
export async function prequeue(h: Harness, concertId: number, userId: number, drawNonce?: string) {
  const token = await userToken(h.app, userId);
  const r = await call(h.app, 'POST', `/v1/concerts/${concertId}/queue`, { token, ...(drawNonce ? { body: { drawNonce } } : {}) });
  if (r.status !== 201 || r.body.status !== 'prequeue') throw new Error(`prequeue: ${r.status} ${JSON.stringify(r.body)}`);
  return { userToken: token, token: r.body.token as string, ticket: r.body.drawTicket as string, reply: r.body };
}

/** Moves the clock to the opening in steps the heartbeat grace allows, every token polling at each step. */
export async function keepAliveUntilOpening(h: Harness, saleStartsAt: string, tokens: string[]) {
  const at = Date.parse(saleStartsAt);
  const step = Math.floor(h.svc.config.queueGraceSeconds / 3) * 1000;
  while (h.clock.now() < at) {
    h.clock.advance(Math.min(step, at - h.clock.now()));
    for (const t of tokens) {
      const r = await poll(h, t);
      if (r.status !== 200) throw new Error(`keep-alive poll: ${r.status} ${JSON.stringify(r.body)}`);
    }
  }
}

/** Moves the clock past the opening and runs the draw job once (the draw and, in Redis mode, its application). */
export async function openSale(h: Harness, saleStartsAt: string) {
  const at = Date.parse(saleStartsAt);
  if (h.clock.now() <= at) h.clock.advance(at - h.clock.now() + 1);
  await h.svc.ctx.drawJob.tickOnce(h.clock.now());
}

export async function poll(h: Harness, token: string) {
  return call(h.app, 'GET', '/v1/queue/me', { token });
}
