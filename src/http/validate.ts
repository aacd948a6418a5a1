import { zValidator } from '@hono/zod-validator';
import type { ValidationTargets } from 'hono';
import type { ZodType } from 'zod';
import { errors } from '../errors.ts';

/** zValidator whose failures become VALIDATION_FAILED with a list of {field, problem}. */
export const validate = <T extends ZodType, Target extends keyof ValidationTargets>(target: Target, schema: T) =>
  zValidator(target, schema, (result) => {
    if (!result.success) {
      const details = result.error.issues.map((i) => ({
        field: i.path.length ? i.path.join('.') : target,
        problem: i.message,
      }));
      throw errors.validation(`invalid ${target}`, details);
    }
  });
