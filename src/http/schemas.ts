import { z } from 'zod';
import { IDEMPOTENCY_KEY } from '../modules/payments/idempotency.ts';
import { RESERVATION_ID } from '../modules/reservations/reservation-id.ts';

export const id = z.string().regex(/^[1-9]\d{0,14}$/, 'must be a positive whole number').transform(Number);

export const concertParam = z.object({ concertId: id });
export const scheduleParams = z.object({ concertId: id, scheduleId: id });

export const tokenBody = z.object({ userId: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }).strict();

export const createConcertBody = z.object({
  title: z.string().trim().min(1).max(200),
  schedules: z.array(z.object({
    date: z.iso.datetime({ offset: true }),
    seats: z.number().int().min(1).max(10_000),
    price: z.number().int().min(0).max(100_000_000),
  }).strict()).min(1).max(100),
}).strict();

export const queueConfigBody = z.object({
  maxActive: z.number().int().min(1).max(10_000_000).optional(),
  admitPerSecond: z.number().int().min(1).max(1_000_000).optional(),
  activeTtlSeconds: z.number().int().min(1).max(86_400).optional(),
  paused: z.boolean().optional(),
}).strict().refine((b) => Object.keys(b).length > 0, { message: 'give at least one of maxActive, admitPerSecond, activeTtlSeconds, paused' });

const reservationId = z.string().regex(RESERVATION_ID, 'must be a reservation id (<concertId>-<uuid>)');

export const reservationParam = z.object({ id: reservationId });

export const holdBody = z.object({
  scheduleId: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  seatNumber: z.number().int().min(1).max(1_000_000),
}).strict();

export const chargeBody = z.object({ amount: z.number().int().min(1).max(10_000_000) }).strict();

/**
 * `{reservationId}`, or `{reservationIds}`: 1 to `maxIds` (MAX_HOLDS_PER_USER) distinct ids,
 * paid together or not at all.
 */
export const paymentBody = (maxIds: number) => z.union([
  z.object({ reservationId }).strict(),
  z.object({
    reservationIds: z.array(reservationId).min(1, 'must list at least one reservation id')
      .max(maxIds, `must list at most ${maxIds} reservation ids (MAX_HOLDS_PER_USER)`)
      .refine((ids) => new Set(ids).size === ids.length, 'must not list a reservation id twice'),
  }).strict(),
], { error: 'give reservationId (one id) or reservationIds (a list of ids), not both' });

/** Money endpoints and holds: an optional Idempotency-Key of 1 to 200 printable ASCII characters. */
export const idempotencyHeader = z.object({
  'idempotency-key': z.string().regex(IDEMPOTENCY_KEY, 'must be 1 to 200 printable ASCII characters').optional(),
});
