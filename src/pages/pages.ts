import { Hono, type Context } from 'hono';
import type { AppEnv } from '../http/env.ts';
import { assetsRouter, loadAssets, pageSecurityHeaders, pickLang, renderShell, type Shell } from './site.ts';

const FAN: Omit<Shell, 'page'> = { title: 'Tickets', scripts: ['fan.js'], styles: ['site.css', 'fan.css'] };
const CONSOLE: Omit<Shell, 'page'> = { title: 'Console', scripts: ['admin.js'], styles: ['site.css', 'admin.css'] };

/** `/`, `/concerts/:id`, `/admin` and their assets: every page is a shell its script fills. */
export function pagesRouter() {
  const assets = loadAssets();
  const page = (shell: Shell) => (c: Context<AppEnv>) => {
    c.header('Cache-Control', 'no-cache');
    return c.html(renderShell(shell, pickLang(c.req.header('Accept-Language'))));
  };
  // Per route, not `use('*')`: a catch-all here would match every API path too.
  const secure = pageSecurityHeaders();
  return new Hono<AppEnv>()
    .get('/', secure, page({ ...FAN, page: 'concerts' }))
    .get('/concerts/:concertId', secure, page({ ...FAN, page: 'concert' }))
    .get('/admin', secure, page({ ...CONSOLE, page: 'admin' }))
    .route('/assets', assetsRouter(assets, secure));
}
