import { zValidator } from '@hono/zod-validator';
import type { Context, MiddlewareHandler, ValidationTargets } from 'hono';
import type { ZodType } from 'zod';
import type { core } from 'zod';
import { errors } from '../errors.ts';

export interface FieldProblem { field: string; problem: string }

/** Hono's validator parses only these media types as JSON; anything else would reach the schema as {}. */
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/** A field path as details have always named it: `schedules.0.seats`. */
function fieldName(target: keyof ValidationTargets, path: PropertyKey[]): string {
  if (path.length === 0) return target === 'json' ? 'body' : target;
  const name = path.map(String).join('.');
  // Headers arrive lowercased; name them the way the docs spell them.
  return target === 'header' ? name.replace(/(^|-)([a-z])/g, (_m, dash: string, ch: string) => dash + ch.toUpperCase()) : name;
}

/** Was the value at `path` absent from the input (rather than present with a wrong value)? */
function isMissing(input: unknown, path: PropertyKey[]): boolean {
  if (path.length === 0) return input === undefined;
  let parent: unknown = input;
  for (const key of path.slice(0, -1)) {
    if (parent === null || typeof parent !== 'object') return false;
    parent = (parent as Record<PropertyKey, unknown>)[key];
  }
  if (parent === null || typeof parent !== 'object') return false;
  const last = path[path.length - 1]!;
  return !Object.hasOwn(parent, last) || (parent as Record<PropertyKey, unknown>)[last] === undefined;
}

/**
 * zod issues → {field, problem}, in the order zod found them, one per field: the first check a
 * value fails says what it must be (a too-big 2^53 also fails int(), but "≤ max" is the news).
 */
export function describeIssues(target: keyof ValidationTargets, issues: core.$ZodIssue[], input: unknown): FieldProblem[] {
  const out: FieldProblem[] = [];
  const seen = new Set<string>();
  const add = (field: string, problem: string) => {
    if (seen.has(field)) return;
    seen.add(field);
    out.push({ field, problem });
  };
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) add(fieldName(target, [...issue.path, key]), 'unknown field');
      continue;
    }
    const missing = issue.code === 'invalid_type' && isMissing(input, issue.path);
    add(fieldName(target, issue.path), missing ? 'is required' : issue.message);
  }
  return out;
}

/** The message names the first problem: "seatNumber: must be a whole number ≥ 1", "unknown field: foo". */
export function firstProblemMessage(target: keyof ValidationTargets, first: FieldProblem): string {
  if (first.problem === 'unknown field') return `unknown field: ${first.field}`;
  if (first.field === (target === 'json' ? 'body' : target)) return first.problem;
  return `${first.field}: ${first.problem}`;
}

/**
 * The body must be JSON, sent as JSON, and an object. Read once here; Hono's validator then
 * reads the cached text, so its own (vaguer) parse errors cannot happen.
 */
async function readJsonObject(c: Context): Promise<void> {
  const contentType = c.req.header('Content-Type');
  const media = (contentType ?? '').split(';')[0]!.trim();
  if (!JSON_MEDIA_TYPE.test(media)) {
    const got = contentType ? `"${contentType.slice(0, 100)}"` : 'none';
    throw errors.validation(`Content-Type must be application/json, got ${got}`,
      [{ field: 'Content-Type', problem: 'must be application/json' }]);
  }
  const text = await c.req.text();
  if (text.trim() === '') {
    throw errors.validation('body is empty: send a JSON object', [{ field: 'body', problem: 'is required' }]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw errors.validation('body is not JSON', [{ field: 'body', problem: 'is not JSON' }]);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw errors.validation('body must be a JSON object', [{ field: 'body', problem: 'must be a JSON object' }]);
  }
}

/** zValidator whose failures become VALIDATION_FAILED: the first problem in words, all of them in details. */
export const validate = <T extends ZodType, Target extends keyof ValidationTargets>(target: Target, schema: T) => {
  const check = zValidator(target, schema, (result) => {
    if (!result.success) {
      const details = describeIssues(target, result.error.issues, result.data);
      throw errors.validation(firstProblemMessage(target, details[0] ?? { field: target, problem: 'is not valid' }), details);
    }
  });
  if (target !== 'json') return check;
  const withBody: MiddlewareHandler = async (c, next) => {
    await readJsonObject(c);
    return check(c, next);
  };
  return withBody as typeof check;
};

/**
 * An optional JSON body: a request with no body (or an empty one) reads as `{}`; a body that is
 * sent is checked as validate('json') checks it.
 */
export const validateOptionalJson = <T extends ZodType>(schema: T) => {
  const check = validate('json', schema);
  const optional: MiddlewareHandler = async (c, next) => {
    if ((await c.req.text()).trim() === '') {
      c.req.addValidatedData('json', {});
      return next();
    }
    return check(c, next);
  };
  return optional as typeof check;
};
