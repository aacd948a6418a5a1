import { z } from 'zod';
import { IDEMPOTENCY_KEY } from '../modules/payments/idempotency.ts';
import { RESERVATION_ID } from '../modules/reservations/reservation-id.ts';

/**
 * Messages are written for the client developer who reads them: what the value must be, never
 * what zod expected. The field name is added in front by validate.ts ("seatNumber: ...").
 */

/** A whole number in [min, max]: "must be a whole number ≥ 1" for a wrong type, a fraction or too small. */
const wholeNumber = (min: number, max: number) => {
  const shape = `must be a whole number ≥ ${min}`;
  // Bounds before int(): zod's int() also refuses unsafe integers, and 2^53 should read "≤ max".
  return z.number({ error: shape }).min(min, { error: shape })
    .max(max, { error: `must be a whole number ≤ ${max}` }).int({ error: shape });
};

const text = (min: number, max: number) => {
  const shape = `must be a text of ${min} to ${max} characters`;
  return z.string({ error: shape }).trim().min(min, { error: shape }).max(max, { error: shape });
};

export const id = z.string({ error: 'must be a positive whole number' })
  .regex(/^[1-9]\d{0,14}$/, 'must be a positive whole number').transform(Number);

export const concertParam = z.object({ concertId: id });
export const scheduleParams = z.object({ concertId: id, scheduleId: id });

/** AUTH_MODE=open: the client names the user. */
export const tokenBody = z.object({
  userId: wholeNumber(1, Number.MAX_SAFE_INTEGER),
  idToken: z.never({ error: 'is accepted only with AUTH_MODE=jwt; this service signs in with {"userId": <number>}' }).optional(),
}).strict();

/** AUTH_MODE=jwt: the identity provider's token names the user. */
export const idTokenBody = z.object({
  idToken: z.string({ error: 'must be the identity token (a JWT string)' })
    .min(1, { error: 'must be the identity token (a JWT string)' }).max(8192, { error: 'must be at most 8192 characters' }),
  userId: z.never({ error: 'is not accepted with AUTH_MODE=jwt; send {"idToken": "<JWT from the identity provider>"}' }).optional(),
}).strict();

const futureTime = z.iso.datetime({ offset: true, error: 'must be an ISO-8601 date-time such as 2026-12-24T10:00:00Z' });

export const createConcertBody = z.object({
  title: text(1, 200),
  /** Scheduled sale: joins before it are pre-queued, and a verifiable draw orders them at it. */
  saleStartsAt: futureTime.optional(),
  schedules: z.array(z.object({
    date: z.iso.datetime({ offset: true, error: 'must be an ISO-8601 date-time such as 2026-12-24T19:00:00Z' }),
    seats: wholeNumber(1, 10_000),
    price: wholeNumber(0, 100_000_000),
  }, { error: 'must be an object with date, seats and price' }).strict(), { error: 'must be a list of schedules' })
    .min(1, { error: 'must list at least 1 schedule' }).max(100, { error: 'must list at most 100 schedules' }),
}).strict();

/** PATCH /admin/concerts/:concertId: moves a scheduled sale's opening while it is still ahead. */
export const concertPatchBody = z.object({
  saleStartsAt: futureTime,
}).strict();

/** A draw nonce the fan's client makes (docs/api.md, scheduled sale): 16 to 64 hexadecimal characters. */
export const drawNonce = z.string({ error: 'must be 16 to 64 hexadecimal characters' })
  .regex(/^[0-9a-fA-F]{16,64}$/, 'must be 16 to 64 hexadecimal characters');

export const queueConfigBody = z.object({
  maxActive: wholeNumber(1, 10_000_000).optional(),
  admitPerSecond: wholeNumber(1, 1_000_000).optional(),
  activeTtlSeconds: wholeNumber(1, 86_400).optional(),
  paused: z.boolean({ error: 'must be true or false' }).optional(),
}).strict().refine((b) => Object.keys(b).length > 0, { message: 'give at least one of maxActive, admitPerSecond, activeTtlSeconds, paused' });

/** GET /admin/concerts/:id/samples: how many minutes back, 1 to 60 (the samples kept); 60 when absent. */
export const samplesQuery = z.object({
  minutes: z.string({ error: 'must be a whole number of minutes from 1 to 60' })
    .regex(/^(?:[1-9]|[1-5]\d|60)$/, 'must be a whole number of minutes from 1 to 60').transform(Number).optional(),
}).strict();

const RESERVATION_ID_PROBLEM = 'must be a reservation id (<concertId>-<uuid>)';
const reservationId = z.string({ error: RESERVATION_ID_PROBLEM }).regex(RESERVATION_ID, RESERVATION_ID_PROBLEM);

export const reservationParam = z.object({ id: reservationId });

export const holdBody = z.object({
  scheduleId: wholeNumber(1, Number.MAX_SAFE_INTEGER),
  seatNumber: wholeNumber(1, 1_000_000),
}).strict();

export const chargeBody = z.object({ amount: wholeNumber(1, 10_000_000) }).strict();

/**
 * `{reservationId}`, or `{reservationIds}`: 1 to `maxIds` (MAX_HOLDS_PER_USER) distinct ids,
 * paid together or not at all.
 */
export const paymentBody = (maxIds: number) => z.object({
  reservationId: reservationId.optional(),
  reservationIds: z.array(reservationId, { error: 'must be a list of reservation ids' })
    .min(1, 'must list at least one reservation id')
    .max(maxIds, `must list at most ${maxIds} reservation ids (MAX_HOLDS_PER_USER)`)
    .refine((ids) => new Set(ids).size === ids.length, 'must not list a reservation id twice')
    .optional(),
}).strict()
  // One field's own problem is named first (a wrong id); the choice between the two forms after.
  .refine((b) => (b.reservationId === undefined) !== (b.reservationIds === undefined), {
    error: 'give reservationId (one id) or reservationIds (a list of ids), not both', path: ['reservationId'],
  })
  .transform((b): { reservationId: string } | { reservationIds: string[] } =>
    (b.reservationIds !== undefined ? { reservationIds: b.reservationIds } : { reservationId: b.reservationId! }));

/** Money endpoints and holds: an optional Idempotency-Key of 1 to 200 printable ASCII characters. */
export const idempotencyHeader = z.object({
  'idempotency-key': z.string().regex(IDEMPOTENCY_KEY, 'must be 1 to 200 printable ASCII characters').optional(),
});

/** A solved proof-of-work challenge (GET /v1/challenge), shown with a join. */
export const powAnswer = z.object({
  challenge: z.string({ error: 'must be the challenge string from GET /v1/challenge' })
    .min(1, { error: 'must be the challenge string from GET /v1/challenge' })
    .max(200, { error: 'must be at most 200 characters' }),
  nonce: z.string({ error: 'must be a text of 1 to 64 printable ASCII characters' })
    .regex(/^[\x21-\x7e]{1,64}$/, { error: 'must be a text of 1 to 64 printable ASCII characters' }),
}, { error: 'must be an object with challenge and nonce' }).strict();

/**
 * POST /v1/concerts/:concertId/queue. The body is optional (no body reads as `{}`); `pow` is
 * required when JOIN_POW_BITS > 0 and the join would take a new place; `drawNonce` makes the
 * draw ticket of a join before a scheduled sale opens.
 */
export const joinBody = z.object({ pow: powAnswer.optional(), drawNonce: drawNonce.optional() }).strict();

/** GET /v1/challenge: find a nonce such that SHA-256(challenge + ":" + nonce) starts with `bits` zero bits. */
export const challengeAnswer = z.object({
  challenge: z.string(),
  bits: z.number().int().min(1).max(32),
  expiresAt: z.iso.datetime(),
});
