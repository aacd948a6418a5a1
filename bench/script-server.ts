/**
 * The ceiling of a poll that keeps the service's design (one pollQueue script call per poll):
 * a bare Hono route that runs the service's own pollQueue script for a waiting user of a line it
 * loads itself, and answers poll-shaped JSON. No auth, no middleware, no service code around the
 * call. The request's Bearer value starts with the number of the user to poll (the bench's bare
 * routes are sent `<n>xxx…`, the length of a real queue token); the route checks nothing else.
 *
 * Against the MGET route, the difference is the script's own cost (Redis's work for the token,
 * place and heartbeat checks, and the larger command and reply); against the service, it is
 * everything the service adds around the call.
 */
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { queueTokenRecord } from '../src/redis/codecs.ts';
import { keys } from '../src/redis/keys.ts';
import { registerScripts, runScript } from '../src/redis/scripts.ts';
import { packSlots, SLOT_BYTES } from '../src/modules/queue/line.ts';
import { serveUntilSignal } from './lib/serve-until-signal.ts';

const USERS = 2000;
const CONCERT = 1;
const GRACE_MS = 3_600_000;

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
redis.on('error', () => {});
registerScripts(redis);
const qKeys = [keys.queueMeta(CONCERT), keys.line(CONCERT), keys.active(CONCERT), keys.queueTokens(CONCERT), keys.stream(CONCERT)];
// A line as the service keeps it: meta, the line string (a slot per entry number: user id and
// last poll), and each user's token record (a 10-character jti and the entry number); user 0 is
// the admitted one, users 1..USERS wait.
const jtiOf = (u: number) => `jti-${u}`.padStart(10, '0');
const now = Date.now();
const load = redis.pipeline().hset(keys.queueMeta(CONCERT), {
  lastSeq: USERS + 1, lastAdmitted: 1, lineHead: 1, waiting: USERS, admittedTotal: 1, rate: 0, admitPerSecond: 1, maxActive: 1, activeTtl: 600, paused: 0,
}).zadd(keys.active(CONCERT), now + 3_600_000, '0').hset(keys.queueTokens(CONCERT), '0', queueTokenRecord.encode(jtiOf(0), 1));
const places = Array.from({ length: USERS }, (_, i) => ({ seq: i + 2, userId: i + 1, seenMs: now }));
load.setrange(keys.line(CONCERT), 2 * SLOT_BYTES, packSlots(2, USERS + 1, places));
for (let u = 1; u <= USERS; u++) load.hset(keys.queueTokens(CONCERT), String(u), queueTokenRecord.encode(jtiOf(u), u + 1));
await load.exec();

const app = new Hono();
app.get('/healthz', (c) => c.json({ status: 'ok' }));
app.get('/v1/queue/me', async (c) => {
  const u = 1 + ((parseInt((c.req.header('Authorization') ?? '').slice(7), 10) || 0) % USERS);
  const r = await runScript(redis, 'pollQueue', qKeys, [u, jtiOf(u), Date.now(), GRACE_MS]);
  if (r[0] !== 0) return c.json({ code: r[0] }, 500);
  const position = Number(r[2]) - Number(r[3]);
  return c.json({
    status: r[1] === 1 ? 'active' : 'waiting', concertId: CONCERT, position, ahead: position - 1, estimatedWaitSeconds: position,
    paused: r[7] === 1, pollAfterSeconds: 30, activeUntil: null,
  });
});

serveUntilSignal(app.fetch, () => redis.disconnect());
