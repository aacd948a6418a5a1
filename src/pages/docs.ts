import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Hono } from 'hono';
import type { Config } from '../config.ts';
import type { AppEnv } from '../http/env.ts';
import { buildOpenApiDocument } from '../http/openapi-document.ts';
import { routeCatalogue } from '../http/openapi.ts';
import { pageSecurityHeaders } from './site.ts';

/**
 * `/openapi.json` and `/docs`, the API reference: Scalar's standalone bundle, served from our
 * own node_modules (no CDN), reads the document and renders it. It is told to fetch nothing
 * else: no web fonts, no telemetry, no AI agent; the page's CSP (connect-src 'self') holds it
 * to that.
 */

const SCALAR_CONFIG = {
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  mcp: { disabled: true },
  showDeveloperTools: 'never',
  hideClientButton: true,
  defaultOpenAllTags: true,
  documentDownloadType: 'json',
};

const escapeAttribute = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/** Scalar's HTML API: it mounts itself next to #api-reference, configured by data attributes (no inline script). */
const DOCS_PAGE = '<!doctype html><html lang="en"><head><meta charset="utf-8">'
  + '<meta name="viewport" content="width=device-width, initial-scale=1"><title>Ticketing API reference</title></head>'
  + `<body><div id="api-reference" data-url="/openapi.json" data-configuration="${escapeAttribute(JSON.stringify(SCALAR_CONFIG))}"></div>`
  + '<script src="/docs/api-reference.js"></script></body></html>';

interface Bundle { plain: Uint8Array<ArrayBuffer>; gzip: Uint8Array<ArrayBuffer>; etag: string }

let bundle: Bundle | undefined;

/**
 * The 4 MB bundle, read on first use (most processes never serve /docs) and resolved through
 * the package's own entry point, so that it is found from src/ on Bun and from dist/ on Node.
 */
function scalarBundle(): Bundle {
  if (bundle) return bundle;
  const entry = createRequire(import.meta.url).resolve('@scalar/api-reference');
  const plain = new Uint8Array(readFileSync(join(dirname(entry), 'browser', 'standalone.js')));
  const etag = `"${createHash('sha256').update(plain).digest('base64url').slice(0, 22)}"`;
  bundle = { plain, gzip: new Uint8Array(gzipSync(plain)), etag };
  return bundle;
}

export interface DocsRouterDeps {
  /** The settings the document describes: the payment's hold limit and the token exchange of AUTH_MODE. */
  config: Pick<Config, 'maxHoldsPerUser' | 'auth'>;
}

export function docsRouter({ config }: DocsRouterDeps) {
  let document: string | undefined;
  // Scalar injects its style sheet as a <style> element and styles elements as it renders.
  const secure = pageSecurityHeaders({ styleInline: true });
  return new Hono<AppEnv>()
    .get('/openapi.json', (c) => {
      document ??= JSON.stringify(buildOpenApiDocument(routeCatalogue(config)));
      c.header('Cache-Control', 'no-cache');
      c.header('Content-Type', 'application/json; charset=utf-8');
      return c.body(document);
    })
    .get('/docs', secure, (c) => {
      c.header('Cache-Control', 'no-cache');
      return c.html(DOCS_PAGE);
    })
    .get('/docs/api-reference.js', secure, (c) => {
      const { plain, gzip, etag } = scalarBundle();
      c.header('ETag', etag);
      c.header('Cache-Control', 'no-cache');
      c.header('Vary', 'Accept-Encoding');
      if (c.req.header('If-None-Match') === etag) return c.body(null, 304);
      c.header('Content-Type', 'text/javascript; charset=utf-8');
      if (!/\bgzip\b/.test(c.req.header('Accept-Encoding') ?? '')) return c.body(plain);
      c.header('Content-Encoding', 'gzip');
      return c.body(gzip);
    });
}
