import { Hono } from 'hono';
import { errors } from '../../errors.ts';
import type { Config } from '../../config.ts';
import type { AdminService } from '../../modules/admin/admin.service.ts';
import type { CatalogService } from '../../modules/catalog/catalog.service.ts';
import type { ConsoleService } from '../../modules/console/console.service.ts';
import type { SaleService } from '../../modules/draw/sale.service.ts';
import type { AppEnv } from '../env.ts';
import { adminKey } from '../middleware/admin-key.ts';
import { concertParam, concertPatchBody, createConcertBody, queueConfigBody, samplesQuery } from '../schemas.ts';
import { validate } from '../validate.ts';

/** A scheduled opening must lie ahead: one in the past would open a sale with no pre-queue at all. */
function parseSaleStart(iso: string | undefined, now: number): number | null {
  if (iso === undefined) return null;
  const at = Date.parse(iso);
  if (at <= now) throw errors.validation('saleStartsAt: must be in the future', [{ field: 'saleStartsAt', problem: 'must be in the future' }]);
  return at;
}

export interface AdminRouterDeps {
  /** ADMIN_API_KEY: every call must carry it; with none configured every call is refused. */
  adminApiKey: Config['adminApiKey'];
  catalog: CatalogService;
  /** Reschedules a sale's opening. */
  sale: SaleService;
  admin: AdminService;
  /** The operator console's overview and samples. */
  console: ConsoleService;
  clock: () => number;
}

/** /admin/*: concerts, queue settings, the console's data and the cache rebuild, behind X-Admin-Key. */
export function adminRouter({ adminApiKey, catalog, sale, admin, console: operatorConsole, clock }: AdminRouterDeps) {
  return new Hono<AppEnv>()
    .use('*', adminKey({ key: adminApiKey }))
    .post('/concerts', validate('json', createConcertBody), async (c) => {
      const body = c.req.valid('json');
      const { concert, schedules } = await catalog.create({
        title: body.title,
        schedules: body.schedules.map((s) => ({ date: Date.parse(s.date), seats: s.seats, price: s.price })),
        saleStartsAt: parseSaleStart(body.saleStartsAt, clock()),
      }, clock());
      return c.json({
        id: concert.id, title: concert.title,
        startsAt: new Date(concert.starts_at).toISOString(), endsAt: new Date(concert.ends_at).toISOString(),
        saleStartsAt: concert.sale_starts_at === null ? null : new Date(concert.sale_starts_at).toISOString(),
        draw: concert.draw_commitment && concert.sale_starts_at !== null ? { commitment: concert.draw_commitment } : null,
        schedules: schedules.map((s) => ({ id: s.id, date: new Date(s.date).toISOString(), capacity: s.capacity, price: s.price })),
      }, 201);
    })
    .patch('/concerts/:concertId', validate('param', concertParam), validate('json', concertPatchBody), async (c) => {
      const { concertId } = c.req.valid('param');
      const now = clock();
      await sale.reschedule(concertId, parseSaleStart(c.req.valid('json').saleStartsAt, now)!, now);
      catalog.forget(concertId);
      return c.json({ id: concertId, ...(await sale.publicView(concertId, now)) });
    })
    .get('/concerts/:concertId/queue', validate('param', concertParam), async (c) => {
      const { concertId } = c.req.valid('param');
      return c.json(await admin.queueStats(concertId, clock()));
    })
    .patch('/concerts/:concertId/queue', validate('param', concertParam), validate('json', queueConfigBody), async (c) => {
      const { concertId } = c.req.valid('param');
      return c.json(await admin.updateQueueConfig(concertId, c.req.valid('json')));
    })
    .get('/overview', async (c) => c.json(await operatorConsole.overview()))
    .get('/concerts/:concertId/samples', validate('param', concertParam), validate('query', samplesQuery), async (c) => {
      const { concertId } = c.req.valid('param');
      return c.json(await operatorConsole.concertSamples(concertId, c.req.valid('query').minutes ?? 60));
    })
    .get('/status', async (c) => c.json(await admin.status()))
    .post('/cache/rebuild', async (c) => {
      const started = admin.requestRebuild();
      return c.json({ accepted: true, started }, 202);
    });
}
