/**
 * The ceiling of any poll: a bare Hono route that does one Redis MGET and answers JSON shaped
 * like GET /v1/queue/me. No auth, no middleware, no script: whatever the real poll costs above
 * this is the service's own work. Same runtime (Bun.serve), same client library (ioredis).
 */
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { serveUntilSignal } from './lib/serve-until-signal.ts';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
redis.on('error', () => {});
await redis.mset('bench:mget:lastAdmitted', '1000', 'bench:mget:seq', '5000');

const app = new Hono();
app.get('/healthz', (c) => c.json({ status: 'ok' }));
app.get('/v1/queue/me', async (c) => {
  const [lastAdmitted, seq] = await redis.mget('bench:mget:lastAdmitted', 'bench:mget:seq');
  const position = Number(seq) - Number(lastAdmitted);
  return c.json({ status: 'waiting', concertId: 1, position, ahead: position - 1, estimatedWaitSeconds: position, activeUntil: null });
});

serveUntilSignal(app.fetch, () => redis.disconnect());
