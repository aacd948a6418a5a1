/**
 * The ceilings of a poll and of a join that keep the service's design.
 *
 * Poll (one pollQueue script call per poll):
 * a bare Hono route that runs the service's own pollQueue script for a waiting user of a line it
 * loads itself, and answers poll-shaped JSON. No auth, no middleware, no service code around the
 * call. The request's Bearer value starts with the number of the user to poll (the bench's bare
 * routes are sent `<n>xxx…`, the length of a real queue token); the route checks nothing else.
 *
 * Against the MGET route, the difference is the script's own cost (Redis's work for the token,
 * place and heartbeat checks, and the larger command and reply); against the service, it is
 * everything the service adds around the call.
 *
 * Join (`POST /v1/concerts/:id/queue`): what a join costs with no SQL at all, the floor of any
 * join whose token and place are recorded behind. It does the Redis and token work a join with
 * a user token cannot skip: verify the user token's signature, check its record (`EXISTS`),
 * run the service's joinQueue script on a line of its own, sign the queue token, and drop the
 * replaced user token (`DEL`). No claim, no record, no middleware. `POST /bench/user-tokens`
 * (outside the measurement) gives out user tokens it has signed and recorded.
 */
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { queueTokenRecord } from '../src/redis/codecs.ts';
import { ScriptCode } from '../src/redis/codes.ts';
import { decodePollQueue, joinQueue, type PollQueueRaw } from '../src/redis/script-calls.ts';
import { JwtCodec } from '../src/modules/tokens/jwt.ts';
import { newQueueTokenId, newUserTokenId } from '../src/modules/tokens/token-slots.ts';
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
  seqCeiling: USERS + 1,
}).zadd(keys.active(CONCERT), now + 3_600_000, '0').hset(keys.queueTokens(CONCERT), '0', queueTokenRecord.encode(jtiOf(0), 1));
const places = Array.from({ length: USERS }, (_, i) => ({ seq: i + 2, userId: i + 1, seenMs: now }));
load.setrange(keys.line(CONCERT), 2 * SLOT_BYTES, packSlots(2, USERS + 1, places));
for (let u = 1; u <= USERS; u++) load.hset(keys.queueTokens(CONCERT), String(u), queueTokenRecord.encode(jtiOf(u), u + 1));
await load.exec();

const app = new Hono();
app.get('/healthz', (c) => c.json({ status: 'ok' }));
app.get('/v1/queue/me', async (c) => {
  const u = 1 + ((parseInt((c.req.header('Authorization') ?? '').slice(7), 10) || 0) % USERS);
  const r = decodePollQueue(await runScript(redis, 'pollQueue', qKeys, [u, jtiOf(u), Date.now(), GRACE_MS]) as PollQueueRaw);
  if (r.code !== ScriptCode.Ok) return c.json({ code: r.code }, 500);
  const position = r.seq - r.lastAdmitted;
  return c.json({
    status: r.status, concertId: CONCERT, position, ahead: position - 1, estimatedWaitSeconds: position,
    paused: r.paused, pollAfterSeconds: 30, activeUntil: null,
  });
});

// The join's line: concert 2, its one admission slot taken (no tick runs here anyway), so every join waits.
const JOIN_CONCERT = 2;
const TOKEN_TTL_MS = 3_600_000;
const jwt = new JwtCodec('bench-script-server-secret-of-32-bytes!');
await redis.del(keys.queueMeta(JOIN_CONCERT), keys.line(JOIN_CONCERT), keys.active(JOIN_CONCERT), keys.queueTokens(JOIN_CONCERT),
  keys.stream(JOIN_CONCERT));
await redis.hset(keys.queueMeta(JOIN_CONCERT), {
  lastSeq: 0, lastAdmitted: 0, lineHead: 0, waiting: 0, admittedTotal: 0, maxActive: 1, admitPerSecond: 1, activeTtl: 600,
  paused: 0, lastTick: 0, rate: 0, credit: 0, loadingUntil: 0, saleAt: '', drawn: 0,
  // No SQL behind this bench: every entry number counts as reserved (the service reserves blocks in SQL).
  seqCeiling: Number.MAX_SAFE_INTEGER,
});
await redis.zadd(keys.active(JOIN_CONCERT), now + 3_600_000, '0');
let nextUser = 1_000_000;

app.post('/bench/user-tokens', async (c) => {
  const n = Math.min(10_000, Number(c.req.query('n') ?? 1));
  const now = Date.now();
  const tokens: string[] = [];
  const p = redis.pipeline();
  for (let i = 0; i < n; i++) {
    const jti = newUserTokenId(1_000_000);
    const userId = nextUser++;
    tokens.push(await jwt.sign({ typ: 'user', sub: String(userId), jti, iat: Math.floor(now / 1000), exp: Math.floor((now + TOKEN_TTL_MS) / 1000) }));
    p.set(keys.userToken(jti), String(userId), 'PX', TOKEN_TTL_MS);
  }
  await p.exec();
  return c.json({ tokens });
});

app.post('/v1/concerts/:id/queue', async (c) => {
  const now = Date.now();
  const claims = await jwt.verify((c.req.header('Authorization') ?? '').slice(7), Math.floor(now / 1000));
  if (!claims || claims.typ !== 'user') return c.json({ code: 'UNAUTHENTICATED' }, 401);
  if (!(await redis.exists(keys.userToken(claims.jti)))) return c.json({ code: 'UNAUTHENTICATED' }, 401);
  const userId = Number(claims.sub);
  const jti = newQueueTokenId();
  const r = await joinQueue(redis, { concertId: JOIN_CONCERT, userId, jti, now, graceMs: GRACE_MS });
  if (r.code !== ScriptCode.Ok) return c.json({ code: r.code }, 500);
  const expiresAt = now + TOKEN_TTL_MS;
  const token = await jwt.sign({
    typ: 'queue', sub: claims.sub, jti, cid: JOIN_CONCERT, seq: r.seq, iat: Math.floor(now / 1000), exp: Math.floor(expiresAt / 1000),
  });
  await redis.del(keys.userToken(claims.jti));
  const position = Math.max(1, r.seq - r.lastAdmitted);
  return c.json({
    created: r.fresh, token, expiresAt,
    place: { status: r.status, concertId: JOIN_CONCERT, position, ahead: position - 1, estimatedWaitSeconds: position, paused: false,
      pollAfterSeconds: 30, activeUntil: null },
  }, 201);
});

serveUntilSignal(app.fetch, () => redis.disconnect());
