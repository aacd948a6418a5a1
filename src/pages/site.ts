import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hono, type MiddlewareHandler } from 'hono';
import type { AppEnv } from '../http/env.ts';

/**
 * The service's own pages: HTML shells whose scripts call the public API, like any client.
 * No build step: the files in ./assets are served as they are, read once at start.
 */

export type Lang = 'en' | 'ko';

export interface Asset {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8',
  '.ico': 'image/x-icon',
};

const ASSET_DIR = fileURLToPath(new URL('./assets/', import.meta.url));

/** Every file of a directory (flat), with its type and a content hash for revalidation. */
export function loadAssets(dir = ASSET_DIR): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = new Uint8Array(readFileSync(join(dir, name)));
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return assets;
}

/**
 * Headers of every page and asset. The pages run no inline script and load nothing from another
 * origin, so the policy can be strict: a concert title that carries markup is only ever text.
 */
export function pageSecurityHeaders(opts: { styleInline?: boolean } = {}): MiddlewareHandler<AppEnv> {
  const csp = [
    "default-src 'self'",
    "script-src 'self'",
    `style-src 'self'${opts.styleInline ? " 'unsafe-inline'" : ''}`,
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "worker-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
  return async (c, next) => {
    await next();
    c.header('Content-Security-Policy', csp);
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'no-referrer');
    c.header('X-Frame-Options', 'DENY');
    c.header('Cross-Origin-Opener-Policy', 'same-origin');
  };
}

/** The language a page opens in: the first of Accept-Language we speak (the page has a switch). */
export function pickLang(acceptLanguage: string | undefined): Lang {
  const ranked = (acceptLanguage ?? '')
    .split(',')
    .map((part, i) => {
      const [tag, ...params] = part.trim().toLowerCase().split(';');
      const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      return { tag: tag ?? '', q: q ? Number(q.slice(2)) || 0 : 1, i };
    })
    .filter((r) => r.tag && r.q > 0)
    .sort((a, b) => b.q - a.q || a.i - b.i);
  for (const { tag } of ranked) {
    if (tag === 'ko' || tag.startsWith('ko-')) return 'ko';
    if (tag === 'en' || tag.startsWith('en-')) return 'en';
  }
  return 'en';
}

export interface Shell {
  /** Names the page for its script (`data-page` on <body>). */
  page: string;
  title: string;
  scripts: string[];
  styles: string[];
}

/** A page's HTML: nothing in it comes from a request except the chosen language. */
export function renderShell(shell: Shell, lang: Lang): string {
  const styles = shell.styles.map((s) => `<link rel="stylesheet" href="/assets/${s}">`).join('');
  const scripts = shell.scripts.map((s) => `<script type="module" src="/assets/${s}"></script>`).join('');
  return `<!doctype html><html lang="${lang}"><head><meta charset="utf-8">`
    + '<meta name="viewport" content="width=device-width, initial-scale=1">'
    + `<title>${shell.title}</title>${styles}</head>`
    + `<body data-page="${shell.page}"><main id="app" tabindex="-1"></main>${scripts}</body></html>`;
}

/** GET /assets/:name from memory, revalidated by ETag. */
export function assetsRouter(assets: Map<string, Asset>, secure: MiddlewareHandler<AppEnv>) {
  return new Hono<AppEnv>().get('/:name', secure, (c) => {
    const asset = assets.get(c.req.param('name'));
    if (!asset) return c.json({ error: { code: 'NOT_FOUND', message: `no asset ${c.req.param('name')}` } }, 404);
    c.header('ETag', asset.etag);
    c.header('Cache-Control', 'no-cache');
    if (c.req.header('If-None-Match') === asset.etag) return c.body(null, 304);
    c.header('Content-Type', asset.type);
    return c.body(asset.body);
  });
}
