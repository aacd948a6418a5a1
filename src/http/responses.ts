import { z } from 'zod';

/**
 * The JSON bodies the API answers with, one schema per shape, for the OpenAPI document
 * (openapi.ts). Each lists exactly the fields its route sends (strict objects, so a test that
 * parses real answers notices a field added to a route and not here); the document itself
 * lets clients expect more fields, since the contract adds fields freely.
 */

const isoTime = z.iso.datetime({ offset: true }).describe('ISO-8601 UTC time');
const entityId = z.int().min(1);

export const fieldProblem = z.strictObject({
  field: z.string().describe('the field, header or "body": `schedules.0.seats`, `Idempotency-Key`'),
  problem: z.string().describe('what the value must be: "must be a whole number ≥ 1", "unknown field", "is required"'),
});

export const errorResponse = z.strictObject({
  error: z.strictObject({
    code: z.string().describe('machine-readable: VALIDATION_FAILED, SEAT_UNAVAILABLE, ... (see the operation)'),
    message: z.string().describe('the problem in words, for the client developer'),
    details: z.array(fieldProblem).optional().describe('VALIDATION_FAILED only: every problem found, first one first'),
  }),
}).describe('Every 4xx and 5xx answer. 429 and 503 also carry `Retry-After` (seconds).');

export const issuedToken = z.strictObject({
  token: z.string().describe('a user token (JWT); send as `Authorization: Bearer <token>`'),
  expiresAt: isoTime,
  userId: entityId,
});

const queueStatus = z.enum(['waiting', 'active', 'prequeue']);

const placeFields = {
  status: queueStatus,
  concertId: entityId,
  position: z.int().min(0).nullable().describe('0 once active; null while pre-queued'),
  ahead: z.int().min(0).nullable().describe('null while pre-queued'),
  estimatedWaitSeconds: z.int().min(0).nullable().describe('null while the queue is paused'),
  paused: z.boolean(),
  pollAfterSeconds: z.int().min(1).describe('poll again after this long: polling is the heartbeat that keeps the place'),
  activeUntil: isoTime.nullable().describe('while active: the end of the buying window'),
  opensAt: isoTime.optional().describe('pre-queued: when the sale opens and the draw is made'),
  drawTicket: z.string().regex(/^[0-9a-f]{64}$/).optional()
    .describe('pre-queued: SHA-256 of drawNonce + ":" + userId, published in the drawn order after the draw'),
};

export const joinedQueue = z.strictObject({
  token: z.string().describe('the queue token (JWT) of this place; it replaces the token the join was made with'),
  expiresAt: isoTime,
  ...placeFields,
});

export const queuePlace = z.strictObject({
  ...placeFields,
  token: z.string().optional().describe('past half of the queue token\'s life: the same place with a later expiry; use it from now on'),
});

const concertSummary = z.strictObject({ id: entityId, title: z.string(), startsAt: isoTime, endsAt: isoTime });

export const challenge = z.strictObject({
  challenge: z.string().describe('opaque, signed'),
  bits: z.int().min(1).max(32).describe('leading zero bits the hash must show'),
  expiresAt: isoTime,
});

export const concertList = z.strictObject({ concerts: z.array(concertSummary) });

export const scheduleList = z.strictObject({
  schedules: z.array(z.strictObject({
    id: entityId, concertId: entityId, date: isoTime,
    capacity: z.int().min(1), price: z.int().min(0),
    available: z.int().min(0), reservable: z.boolean(),
  })),
});

export const seatList = z.strictObject({
  seats: z.array(z.strictObject({
    seatNumber: z.int().min(1), price: z.int().min(0), status: z.enum(['available', 'held', 'sold']),
  })),
});

export const reservation = z.strictObject({
  reservationId: z.string().describe('<concertId>-<uuid>'),
  status: z.enum(['held', 'paid', 'expired', 'released']),
  concertId: entityId,
  scheduleId: entityId,
  seatNumber: z.int().min(1),
  price: z.int().min(0),
  expiresAt: isoTime.describe('when the hold ends (or ended)'),
});

export const reservationList = z.strictObject({ reservations: z.array(reservation).describe('newest first') });

export const balance = z.strictObject({ userId: entityId, balance: z.int().min(0).describe('won') });

export const payment = z.strictObject({
  paymentId: z.string(),
  reservationId: z.string().describe('the first of reservationIds'),
  reservationIds: z.array(z.string()),
  amount: z.int().min(0).describe('the total, charged once'),
  status: z.literal('paid'),
  concertId: entityId,
  scheduleId: entityId.describe('the first reservation\'s'),
  seatNumber: z.int().min(1).describe('the first reservation\'s'),
  balance: z.int().min(0).describe('the balance after the payment'),
  paidAt: isoTime,
});

const commitment = z.string().regex(/^[0-9a-f]{64}$/).describe('SHA-256 (hex) of the draw\'s secret seed, published before the sale');

/** GET /v1/concerts/:id: the concert with its scheduled sale, if any. */
export const concertDetail = z.strictObject({
  id: entityId, title: z.string(), startsAt: isoTime, endsAt: isoTime,
  saleStartsAt: isoTime.nullable().describe('null: on sale since creation'),
  draw: z.strictObject({ commitment, drawn: z.boolean() }).nullable(),
});

/** PATCH /admin/concerts/:id: the scheduled sale after the change. */
export const saleSchedule = z.strictObject({
  id: entityId,
  saleStartsAt: isoTime.nullable(),
  draw: z.strictObject({ commitment, drawn: z.boolean() }).nullable(),
});

/** GET /v1/concerts/:id/draw: everything needed to recompute the drawn order. */
export const publishedDraw = z.strictObject({
  concertId: entityId,
  seed: z.string().describe('the secret seed, revealed after the draw; SHA-256 of its UTF-8 bytes is the commitment'),
  commitment,
  algorithm: z.string().describe('the name of the documented shuffle'),
  drawnAt: isoTime,
  tickets: z.array(z.string()).describe('draw tickets in drawn order (no user ids)'),
});

export const createdConcert = z.strictObject({
  id: entityId, title: z.string(), startsAt: isoTime, endsAt: isoTime,
  saleStartsAt: isoTime.nullable(),
  draw: z.strictObject({ commitment }).nullable(),
  schedules: z.array(z.strictObject({ id: entityId, date: isoTime, capacity: z.int().min(1), price: z.int().min(0) })),
});

export const queueConfig = z.strictObject({
  maxActive: z.int().min(1), admitPerSecond: z.int().min(1), activeTtlSeconds: z.int().min(1), paused: z.boolean(),
});

export const queueStats = z.strictObject({
  concertId: entityId,
  waiting: z.int().min(0),
  active: z.int().min(0),
  admittedTotal: z.int().min(0),
  lastEntry: z.int().min(0).describe('the newest entry number given out'),
  lastAdmittedEntry: z.int().min(0),
  config: queueConfig,
});

export const serviceStatus = z.strictObject({
  mode: z.enum(['redis', 'sql', 'rebuilding']),
  modeSince: isoTime,
  breaker: z.string().describe('the Redis circuit breaker: closed, open, halfopen, isolated'),
  redis: z.strictObject({
    role: z.string().describe('master, slave, cluster, or unreachable'),
    master: z.string().nullable(),
    error: z.string().optional().describe('why Redis is unreachable'),
  }),
  writeBehind: z.strictObject({
    pending: z.int().min(0).nullable().describe('events not yet applied to SQL; null when unknown'),
    lagSeconds: z.number().min(0).nullable(),
  }),
});

const serviceMode = z.enum(['redis', 'sql', 'rebuilding']);

export const consoleOverview = z.strictObject({
  at: isoTime,
  mode: serviceMode,
  sampleSeconds: z.int().min(1).describe('CONSOLE_SAMPLE_SECONDS: how often the samples are taken'),
  concerts: z.array(z.strictObject({
    id: entityId,
    title: z.string(),
    waiting: z.int().min(0),
    active: z.int().min(0),
    admittedTotal: z.int().min(0),
    admitPerSecond: z.int().min(1).describe('the setting'),
    admittedPerSecond: z.number().min(0).nullable().describe('measured over the last minute of samples; null until there are two'),
    maxActive: z.int().min(1),
    activeTtlSeconds: z.int().min(1),
    paused: z.boolean(),
    tailEtaSeconds: z.int().min(1).nullable().describe('the wait the last fan in line is told now; null while paused or with nobody waiting'),
    mode: serviceMode,
    writeBehindLagSeconds: z.number().min(0).nullable().describe('age of the oldest entry not yet in SQL; null outside Redis mode'),
  })).describe('one row per live concert, by id'),
});

export const concertSamples = z.strictObject({
  concertId: entityId,
  minutes: z.int().min(1).max(60),
  sampleSeconds: z.int().min(1),
  samples: z.array(z.strictObject({
    at: isoTime,
    waiting: z.int().min(0),
    active: z.int().min(0),
    admittedTotal: z.int().min(0),
    admitPerSecond: z.number().min(0).nullable().describe('since the sample before; null for the first'),
    writeBehindLagSeconds: z.number().min(0).nullable(),
    mode: serviceMode,
  })).describe('oldest first, at most one per sampling slot'),
  modeChanges: z.array(z.strictObject({ at: isoTime, from: serviceMode, to: serviceMode })),
});

export const rebuildAccepted = z.strictObject({
  accepted: z.literal(true),
  started: z.boolean().describe('false: a rebuild was already running on this instance'),
});

export const health = z.strictObject({ status: z.literal('ok') });

export const readiness = z.strictObject({
  status: z.enum(['ready', 'unavailable', 'draining']),
  mode: z.enum(['redis', 'sql', 'rebuilding']),
  sql: z.boolean().optional(),
  redis: z.boolean().optional(),
});
