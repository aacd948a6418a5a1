import type { ZodObject, ZodType } from 'zod';
import type { Config } from '../config.ts';
import * as res from './responses.ts';
import {
  chargeBody, concertParam, concertPatchBody, createConcertBody, holdBody, idempotencyHeader, idTokenBody, joinBody, paymentBody, queueConfigBody,
  reservationParam, samplesQuery, scheduleParams, tokenBody,
} from './schemas.ts';

/**
 * Every route the service answers, as the OpenAPI document (openapi-document.ts) shows it.
 * Request parts are the very schemas the routes validate with; response bodies come from
 * responses.ts. A route the app serves and this list lacks fails tests/openapi.test.ts.
 */

export type Tag = 'tokens' | 'queue' | 'catalog' | 'reservations' | 'money' | 'admin' | 'operations' | 'pages';

export const TAGS: Record<Tag, string> = {
  tokens: 'Who the user is: a user token to start with.',
  queue: 'The waiting room: join, poll (the heartbeat), leave.',
  catalog: 'Concerts, their schedules and seats.',
  reservations: 'Seat holds and their lifecycle.',
  money: 'Balance and payments. Send an `Idempotency-Key` and retry safely.',
  admin: 'Operator endpoints; they need the `X-Admin-Key` header.',
  operations: 'Health, readiness and metrics for load balancers and monitoring.',
  pages: 'The service\'s own web pages and this reference.',
};

/** Every error code the API answers with: its status and when. */
export const ERROR_CODES = {
  VALIDATION_FAILED: [400, 'malformed JSON, wrong types, out-of-range numbers, unknown fields, ids of the wrong shape'],
  UNAUTHENTICATED: [401, 'no token, bad signature, expired, revoked, or a queue place that was lost'],
  INSUFFICIENT_BALANCE: [402, 'the balance is below the price'],
  NOT_ADMITTED: [403, 'a queue token still waiting, or of another concert'],
  FORBIDDEN: [403, 'another user\'s reservation, or a wrong admin key'],
  NOT_FOUND: [404, 'unknown concert, schedule, seat or reservation'],
  SEAT_UNAVAILABLE: [409, 'the seat is held by someone else or sold'],
  HOLD_EXPIRED: [409, 'the hold has expired or was released'],
  ALREADY_PAID: [409, 'the reservation is already paid'],
  HOLD_LIMIT_REACHED: [409, 'the user already holds MAX_HOLDS_PER_USER seats'],
  TICKET_LIMIT_REACHED: [409, 'held + paid seats of this concert would pass MAX_TICKETS_PER_USER'],
  QUEUE_CLOSED: [409, 'the queue is paused or the concert is over'],
  CHALLENGE_FAILED: [400, 'a proof-of-work answer that is wrong, expired or already used by another join'],
  CHALLENGE_REQUIRED: [428, 'joining needs a solved proof-of-work challenge (JOIN_POW_BITS > 0)'],
  DRAW_NOT_MADE: [409, 'the draw of a scheduled sale is made (and published) when the sale opens'],
  SALE_STARTED: [409, 'the sale has opened or its draw was made: its opening can no longer move'],
  SALE_NOT_SCHEDULED: [409, 'the concert opened at creation: it has no scheduled sale to move'],
  PAYLOAD_TOO_LARGE: [413, 'a request body over 16 KiB'],
  IDEMPOTENCY_KEY_REUSED: [422, 'this Idempotency-Key was used with a different request'],
  RATE_LIMITED: [429, 'the client\'s rate limit; `Retry-After` says when to retry'],
  UNAVAILABLE: [503, 'the service cannot serve this right now; `Retry-After` says when to retry'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Who may call. `user`/`queue`: a Bearer token of that kind (either, when both are listed);
 * `active`: a queue token of the concert whose holder has been admitted; `admin`: X-Admin-Key.
 */
export type Caller = 'user' | 'queue' | 'active' | 'admin';

export interface Answer {
  description: string;
  /** A JSON body: one of responses.ts's schemas. */
  json?: ZodType;
  /** A body of another type (a page, a script, metrics text). */
  media?: string;
}

export interface RouteDoc {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** OpenAPI form: `/v1/concerts/{concertId}/queue`. */
  path: string;
  summary: string;
  description?: string;
  tag: Tag;
  callers?: Caller[];
  /** The schemas the route hands to validate('param' | 'query' | 'header', ...). */
  params?: ZodObject;
  query?: ZodObject;
  headers?: ZodObject;
  body?: { name: string; schema: ZodType; example: unknown };
  answers: Record<number, Answer>;
  /** Errors of the route's own; validation, auth, rate-limit and outage codes are added by the builder. */
  errors?: ErrorCode[];
}

const HTML = 'text/html';
const page = (path: string, summary: string): RouteDoc =>
  ({ method: 'get', path, summary, tag: 'pages', answers: { 200: { description: 'the page', media: HTML } } });

/** The routes of a service with this configuration (the token body follows AUTH_MODE). */
export function routeCatalogue(config: Pick<Config, 'maxHoldsPerUser' | 'auth'>): RouteDoc[] {
  const jwtMode = config.auth.mode === 'jwt';
  return [
    {
      method: 'post', path: '/v1/tokens', tag: 'tokens', summary: 'Get a user token',
      description: jwtMode
        ? 'Exchanges the identity provider\'s token (`idToken`) for a user token of this service.'
        : 'AUTH_MODE=open: names the user by `userId`; an unknown user is created with balance 0.',
      body: jwtMode
        ? { name: 'IdTokenRequest', schema: idTokenBody, example: { idToken: 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln' } }
        : { name: 'TokenRequest', schema: tokenBody, example: { userId: 42 } },
      answers: { 201: { description: 'a user token', json: res.issuedToken } },
      errors: jwtMode ? ['UNAUTHENTICATED'] : [],
    },
    {
      method: 'post', path: '/v1/concerts/{concertId}/queue', tag: 'queue', summary: 'Join a concert\'s queue',
      description: 'The answer\'s queue token replaces the token the join was made with. Joining again with the live '
        + 'queue token of this concert, or retrying a join whose answer was lost, answers 200 with the same place.',
      callers: ['user', 'queue'], params: concertParam,
      body: { name: 'JoinRequest', schema: joinBody, example: { pow: { challenge: '<from GET /v1/challenge>', nonce: '52113' } } },
      answers: {
        201: { description: 'a new place and its queue token', json: res.joinedQueue },
        200: { description: 'the place the user already has', json: res.joinedQueue },
      },
      errors: ['NOT_FOUND', 'QUEUE_CLOSED', 'CHALLENGE_REQUIRED', 'CHALLENGE_FAILED'],
    },
    {
      method: 'get', path: '/v1/challenge', tag: 'queue', summary: 'A proof-of-work challenge for one join',
      description: 'Find a nonce such that SHA-256 of `challenge + ":" + nonce` starts with `bits` zero bits, and send '
        + '`{"pow": {"challenge", "nonce"}}` with the join. Signed, lives 120 s, good for one join. 404 while JOIN_POW_BITS is 0.',
      answers: { 200: { description: 'a challenge', json: res.challenge } },
      errors: ['NOT_FOUND'],
    },
    {
      method: 'get', path: '/v1/queue/me', tag: 'queue', summary: 'Poll my place',
      description: 'The heartbeat: a waiting user who does not poll for QUEUE_GRACE_SECONDS loses the place (then 401).',
      callers: ['queue'],
      answers: { 200: { description: 'the place now', json: res.queuePlace } },
    },
    {
      method: 'delete', path: '/v1/queue/me', tag: 'queue', summary: 'Leave the queue', callers: ['queue'],
      description: 'Leaves the line, or frees the active slot at once.',
      answers: { 204: { description: 'left' } },
    },
    {
      method: 'get', path: '/v1/concerts', tag: 'catalog', summary: 'List concerts',
      answers: { 200: { description: 'the concerts on sale', json: res.concertList } },
    },
    {
      method: 'get', path: '/v1/concerts/{concertId}', tag: 'catalog', summary: 'Read a concert and its scheduled sale',
      description: 'With a scheduled sale, `draw.commitment` (SHA-256 of the draw\'s secret seed) is shown from creation on.',
      params: concertParam,
      answers: { 200: { description: 'the concert', json: res.concertDetail } },
      errors: ['NOT_FOUND'],
    },
    {
      method: 'get', path: '/v1/concerts/{concertId}/draw', tag: 'catalog', summary: 'The published draw of a scheduled sale',
      description: 'After the opening: the seed and the draw tickets in drawn order, so anyone can recompute the order '
        + '(docs/architecture.md, "Scheduled sale"; scripts/verify-draw.ts).',
      params: concertParam,
      answers: { 200: { description: 'the draw', json: res.publishedDraw } },
      errors: ['NOT_FOUND', 'DRAW_NOT_MADE'],
    },
    {
      method: 'get', path: '/v1/concerts/{concertId}/schedules', tag: 'catalog', summary: 'List a concert\'s schedules',
      callers: ['active'], params: concertParam,
      answers: { 200: { description: 'the schedules with their free seats', json: res.scheduleList } },
      errors: ['NOT_FOUND'],
    },
    {
      method: 'get', path: '/v1/concerts/{concertId}/schedules/{scheduleId}/seats', tag: 'catalog', summary: 'List a schedule\'s seats',
      callers: ['active'], params: scheduleParams,
      answers: { 200: { description: 'every seat with its state', json: res.seatList } },
      errors: ['NOT_FOUND'],
    },
    {
      method: 'post', path: '/v1/reservations', tag: 'reservations', summary: 'Hold a seat',
      description: 'A hold lasts HOLD_TTL_SECONDS. Holding a seat you already hold answers 200 with that reservation.',
      callers: ['active'], headers: idempotencyHeader,
      body: { name: 'HoldRequest', schema: holdBody, example: { scheduleId: 1, seatNumber: 7 } },
      answers: {
        201: { description: 'the seat is held', json: res.reservation },
        200: { description: 'the seat was already held by you: that reservation', json: res.reservation },
      },
      errors: ['NOT_FOUND', 'SEAT_UNAVAILABLE', 'HOLD_LIMIT_REACHED', 'TICKET_LIMIT_REACHED', 'IDEMPOTENCY_KEY_REUSED'],
    },
    {
      method: 'get', path: '/v1/reservations/{id}', tag: 'reservations', summary: 'Read a reservation',
      callers: ['user', 'queue'], params: reservationParam,
      answers: { 200: { description: 'the reservation (own reservations only)', json: res.reservation } },
      errors: ['FORBIDDEN', 'NOT_FOUND'],
    },
    {
      method: 'delete', path: '/v1/reservations/{id}', tag: 'reservations', summary: 'Release a hold',
      callers: ['user', 'queue'], params: reservationParam,
      answers: { 204: { description: 'released' } },
      errors: ['FORBIDDEN', 'NOT_FOUND', 'HOLD_EXPIRED', 'ALREADY_PAID'],
    },
    {
      method: 'get', path: '/v1/me/reservations', tag: 'reservations', summary: 'List my reservations',
      callers: ['user', 'queue'],
      answers: { 200: { description: 'the newest 100 of the user\'s reservations, newest first', json: res.reservationList } },
    },
    {
      method: 'get', path: '/v1/me/balance', tag: 'money', summary: 'Read my balance', callers: ['user', 'queue'],
      answers: { 200: { description: 'the balance', json: res.balance } },
    },
    {
      method: 'post', path: '/v1/me/balance/charge', tag: 'money', summary: 'Add to my balance',
      callers: ['user', 'queue'], headers: idempotencyHeader,
      body: { name: 'ChargeRequest', schema: chargeBody, example: { amount: 100_000 } },
      answers: { 200: { description: 'the new balance', json: res.balance } },
      errors: ['IDEMPOTENCY_KEY_REUSED'],
    },
    {
      method: 'post', path: '/v1/payments', tag: 'money', summary: 'Pay for held seats',
      description: '`reservationId`, or `reservationIds` (1 to MAX_HOLDS_PER_USER distinct ids): all or nothing, '
        + 'in one transaction. Without an `Idempotency-Key` a second payment answers 409 ALREADY_PAID.',
      callers: ['active'], headers: idempotencyHeader,
      body: {
        name: 'PaymentRequest', schema: paymentBody(config.maxHoldsPerUser),
        example: { reservationId: '12-6f1c2a0e-8b7d-4c3e-9a41-2d5b7e9f0c13' },
      },
      answers: { 201: { description: 'paid: the seats are sold for good', json: res.payment } },
      errors: ['INSUFFICIENT_BALANCE', 'FORBIDDEN', 'NOT_FOUND', 'HOLD_EXPIRED', 'ALREADY_PAID', 'SEAT_UNAVAILABLE', 'IDEMPOTENCY_KEY_REUSED'],
    },
    {
      method: 'post', path: '/admin/concerts', tag: 'admin', summary: 'Create a concert', callers: ['admin'],
      description: 'Seats of a schedule are numbered 1..seats.',
      body: {
        name: 'CreateConcertRequest', schema: createConcertBody,
        example: { title: 'New Year Gala', schedules: [{ date: '2026-12-31T19:00:00Z', seats: 500, price: 80_000 }] },
      },
      answers: { 201: { description: 'the concert and its schedules with their ids', json: res.createdConcert } },
    },
    {
      method: 'patch', path: '/admin/concerts/{concertId}', tag: 'admin', summary: 'Move a scheduled sale\'s opening',
      description: 'Only while the opening is still ahead and the draw not made.',
      callers: ['admin'], params: concertParam,
      body: { name: 'ConcertPatchRequest', schema: concertPatchBody, example: { saleStartsAt: '2099-06-01T10:00:00Z' } },
      answers: { 200: { description: 'the scheduled sale now', json: res.saleSchedule } },
      errors: ['NOT_FOUND', 'SALE_STARTED', 'SALE_NOT_SCHEDULED'],
    },
    {
      method: 'get', path: '/admin/concerts/{concertId}/queue', tag: 'admin', summary: 'Read a queue\'s state',
      callers: ['admin'], params: concertParam,
      answers: { 200: { description: 'counts and configuration', json: res.queueStats } },
      errors: ['NOT_FOUND'],
    },
    {
      method: 'patch', path: '/admin/concerts/{concertId}/queue', tag: 'admin', summary: 'Change a queue\'s configuration',
      callers: ['admin'], params: concertParam,
      body: { name: 'QueueConfigRequest', schema: queueConfigBody, example: { admitPerSecond: 50, paused: false } },
      answers: { 200: { description: 'the new configuration', json: res.queueConfig } },
      errors: ['NOT_FOUND'],
    },
    {
      method: 'get', path: '/admin/status', tag: 'admin', summary: 'Read the service\'s mode and backends', callers: ['admin'],
      answers: { 200: { description: 'mode, breaker, Redis and write-behind state', json: res.serviceStatus } },
    },
    {
      method: 'post', path: '/admin/cache/rebuild', tag: 'admin', summary: 'Rebuild Redis from SQL', callers: ['admin'],
      description: 'Drains the write-behind streams and reloads Redis from SQL, serving from SQL meanwhile.',
      answers: { 202: { description: 'the rebuild runs in the background', json: res.rebuildAccepted } },
    },
    {
      method: 'get', path: '/admin/overview', tag: 'admin', summary: 'Every live concert\'s waiting room at a glance', callers: ['admin'],
      description: 'What the operator console shows per concert: counts, settings, the measured admission rate, '
        + 'the last fan\'s estimated wait, the mode and the write-behind lag.',
      answers: { 200: { description: 'one row per live concert', json: res.consoleOverview } },
    },
    {
      method: 'get', path: '/admin/concerts/{concertId}/samples', tag: 'admin', summary: 'A concert\'s last hour, sampled',
      description: 'One sample per CONSOLE_SAMPLE_SECONDS, taken by one instance of the fleet and kept an hour, '
        + 'in Redis or in SQL by the mode at the time; both are read, so the series spans a mode switch.',
      callers: ['admin'], params: concertParam, query: samplesQuery,
      answers: { 200: { description: 'the samples, oldest first, and the mode changes among them', json: res.concertSamples } },
      errors: ['NOT_FOUND'],
    },
    {
      method: 'get', path: '/healthz', tag: 'operations', summary: 'Liveness',
      answers: { 200: { description: 'the process lives', json: res.health } },
    },
    {
      method: 'get', path: '/readyz', tag: 'operations', summary: 'Readiness',
      answers: {
        200: { description: 'this instance can serve', json: res.readiness },
        503: { description: 'it cannot, or it is shutting down', json: res.readiness },
      },
    },
    {
      method: 'get', path: '/metrics', tag: 'operations', summary: 'Prometheus metrics',
      answers: { 200: { description: 'Prometheus text exposition', media: 'text/plain' } },
    },
    page('/', 'Concerts (the fans\' start page)'),
    page('/concerts/{concertId}', 'A concert\'s waiting room and purchase'),
    page('/admin', 'Operator console'),
    page('/docs', 'This API reference'),
    {
      method: 'get', path: '/openapi.json', tag: 'pages', summary: 'This API description (OpenAPI 3.1)',
      answers: { 200: { description: 'the OpenAPI document', media: 'application/json' } },
    },
    {
      method: 'get', path: '/docs/api-reference.js', tag: 'pages', summary: 'The script that renders /docs',
      answers: { 200: { description: 'JavaScript', media: 'text/javascript' } },
    },
    {
      method: 'get', path: '/assets/{name}', tag: 'pages', summary: 'A script, style sheet or image of the pages',
      answers: {
        200: { description: 'the file, revalidated by ETag', media: '*/*' },
        304: { description: 'not modified (If-None-Match)' },
        404: { description: 'no such asset', json: res.errorResponse },
      },
    },
  ];
}
