import { z } from 'zod';

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
