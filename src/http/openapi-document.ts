import { z, type ZodObject, type ZodType } from 'zod';
import { ADMIN_KEY_HEADER } from './middleware/admin-key.ts';
import { ERROR_CODES, TAGS, type Caller, type ErrorCode, type RouteDoc } from './openapi.ts';
import * as responses from './responses.ts';

/**
 * The OpenAPI 3.1 document of a route catalogue (openapi.ts). Schemas are converted with
 * zod's own z.toJSONSchema: JSON Schema 2020-12, which is OpenAPI 3.1's schema dialect.
 */

type Json = Record<string, unknown>;

const COMPONENTS = '#/components/schemas/';
const ref = (name: string) => ({ $ref: COMPONENTS + name });

/** Every export of responses.ts is a component, named after it: `reservation` → `Reservation`. */
const RESPONSE_NAMES = new Map<ZodType, string>(
  Object.entries(responses).map(([key, schema]) => [schema, key[0]!.toUpperCase() + key.slice(1)]));

const SECURITY: Record<Caller, string> = { user: 'userToken', queue: 'queueToken', active: 'queueToken', admin: 'adminKey' };

/**
 * zod's JSON Schema, tidied for the document (and without per-schema `$schema`/`$id`): a
 * date-time says so by `format` rather than by zod's long equivalent pattern, and answers lose
 * `additionalProperties: false`, since clients must expect the fields the contract adds later.
 */
const tidy = (io: 'input' | 'output') => ({ jsonSchema: s }: { jsonSchema: z.core.JSONSchema.BaseSchema }) => {
  if (s.format === 'date-time') delete s.pattern;
  if (io === 'output' && s.additionalProperties === false) delete s.additionalProperties;
};

function toJsonSchema(schema: ZodType, io: 'input' | 'output'): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, override: tidy(io) }) as Json;
  return rest;
}

/** A registry's schemas by id, referring to each other as components. */
function registryToJsonSchema(registry: z.core.$ZodRegistry<{ id: string }>, io: 'input' | 'output'): Json {
  const { schemas } = z.toJSONSchema(registry, { io, uri: (id) => COMPONENTS + id, override: tidy(io) }) as { schemas: Record<string, Json> };
  return Object.fromEntries(Object.entries(schemas).map(([id, { $schema: _dialect, $id: _id, ...rest }]) => [id, rest]));
}

function components(routes: RouteDoc[]): Json {
  const answers = z.registry<{ id: string }>();
  for (const [schema, id] of RESPONSE_NAMES) answers.add(schema, { id });
  const requests = z.registry<{ id: string }>();
  for (const r of routes) if (r.body) requests.add(r.body.schema, { id: r.body.name });
  return {
    ...registryToJsonSchema(answers, 'output'),
    ...registryToJsonSchema(requests, 'input'),
  };
}

/** `idempotency-key` (as Hono hands headers to the validator) → `Idempotency-Key`. */
const headerName = (key: string) => key.replace(/(^|-)([a-z])/g, (_m, dash: string, ch: string) => dash + ch.toUpperCase());

function parameters(route: RouteDoc): Json[] {
  const out: Json[] = [];
  const add = (where: 'path' | 'query' | 'header', object: ZodObject | undefined) => {
    if (!object) return;
    const s = toJsonSchema(object, 'input') as { properties: Record<string, Json>; required?: string[] };
    for (const [name, schema] of Object.entries(s.properties)) {
      out.push({ name: where === 'header' ? headerName(name) : name, in: where, required: where === 'path' || !!s.required?.includes(name), schema });
    }
  };
  add('path', route.params);
  add('query', route.query);
  add('header', route.headers);
  // A path parameter no schema checks is still part of the path.
  for (const [, name] of route.path.matchAll(/\{(\w+)\}/g)) {
    if (!out.some((p) => p.in === 'path' && p.name === name)) out.push({ name, in: 'path', required: true, schema: { type: 'string' } });
  }
  return out;
}

/** The codes a route can answer besides its own: from what it validates, who may call, and where it lives. */
function errorCodes(route: RouteDoc): ErrorCode[] {
  const callers = route.callers ?? [];
  const codes = new Set<ErrorCode>();
  if (route.params || route.query || route.headers || route.body) codes.add('VALIDATION_FAILED');
  if (callers.some((c) => c !== 'admin')) codes.add('UNAUTHENTICATED');
  if (callers.includes('active')) codes.add('NOT_ADMITTED');
  if (callers.includes('admin')) codes.add('UNAUTHENTICATED').add('FORBIDDEN');
  for (const code of route.errors ?? []) codes.add(code);
  if (route.body) codes.add('PAYLOAD_TOO_LARGE');
  if (route.path.startsWith('/v1/')) codes.add('RATE_LIMITED');
  if (route.path.startsWith('/v1/') || route.path.startsWith('/admin/')) codes.add('UNAVAILABLE');
  return [...codes];
}

const RETRY_AFTER = { 'Retry-After': { description: 'seconds to wait before retrying', schema: { type: 'integer', minimum: 1 } } };

function errorAnswers(codes: ErrorCode[]): Record<string, Json> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERROR_CODES[code][0];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, Json> = {};
  for (const [status, list] of byStatus) {
    out[status] = {
      description: list.map((code) => `- \`${code}\`: ${ERROR_CODES[code][1]}`).join('\n'),
      ...(status === 429 || status === 503 ? { headers: RETRY_AFTER } : {}),
      content: {
        'application/json': {
          schema: ref('ErrorResponse'),
          examples: Object.fromEntries(list.map((code) => [code, { value: { error: { code, message: ERROR_CODES[code][1] } } }])),
        },
      },
    };
  }
  return out;
}

function answers(route: RouteDoc): Record<string, Json> {
  const out = errorAnswers(errorCodes(route).filter((code) => !(ERROR_CODES[code][0] in route.answers)));
  for (const [status, answer] of Object.entries(route.answers)) {
    const name = answer.json && RESPONSE_NAMES.get(answer.json);
    if (answer.json && !name) throw new Error(`${route.method} ${route.path}: answer ${status} is not a schema of responses.ts`);
    const content = name ? { 'application/json': { schema: ref(name) } } : answer.media ? { [answer.media]: {} } : undefined;
    out[status] = { description: answer.description, ...(content ? { content } : {}) };
  }
  return out;
}

/** `post /v1/concerts/{concertId}/queue` → `postV1ConcertsByConcertIdQueue`. */
function operationId(route: RouteDoc): string {
  const words = route.path.split('/').filter(Boolean)
    .map((part) => part.replace(/^\{(\w+)\}$/, 'by-$1'))
    .flatMap((part) => part.split(/[^A-Za-z0-9]+/))
    .filter(Boolean);
  return route.method + (words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('') || 'Root');
}

function operation(route: RouteDoc): Json {
  const params = parameters(route);
  return {
    operationId: operationId(route),
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: [route.tag],
    ...(route.callers ? { security: [...new Set(route.callers.map((c) => SECURITY[c]))].map((s) => ({ [s]: [] })) } : {}),
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(route.body ? {
      requestBody: {
        required: true,
        content: { 'application/json': { schema: ref(route.body.name), example: route.body.example } },
      },
    } : {}),
    responses: answers(route),
  };
}

const DESCRIPTION = [
  'A waiting room and seat reservations for high-demand ticket sales.',
  '',
  'JSON in and out; times are ISO-8601 UTC, durations whole seconds, money whole won. Every answer carries',
  '`X-Request-Id`. Errors are `{"error": {"code", "message", "details"?}}`: the code is for programs, the',
  'message for people. A user token comes from `POST /v1/tokens`; joining a concert\'s queue exchanges it',
  'for a queue token, which buys seats once its holder is admitted (`status: "active"`).',
].join('\n');

export function buildOpenApiDocument(routes: RouteDoc[]): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of routes) (paths[route.path] ??= {})[route.method] = operation(route);
  return {
    openapi: '3.1.1',
    info: { title: 'Ticketing API', version: '1', description: DESCRIPTION },
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    paths,
    components: {
      schemas: components(routes),
      securitySchemes: {
        userToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A user token from `POST /v1/tokens`.' },
        queueToken: {
          type: 'http', scheme: 'bearer', bearerFormat: 'JWT',
          description: 'A queue token from joining a concert\'s queue; buying needs it admitted (`status: "active"`).',
        },
        adminKey: { type: 'apiKey', in: 'header', name: ADMIN_KEY_HEADER, description: 'ADMIN_API_KEY; none → 401, wrong → 403.' },
      },
    },
  };
}
