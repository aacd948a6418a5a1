import { Hono } from 'hono';
import type { CatalogService } from '../../modules/catalog/catalog.service.ts';
import type { SaleService } from '../../modules/draw/sale.service.ts';
import type { QueueService } from '../../modules/queue/queue.service.ts';
import type { TokenService } from '../../modules/tokens/tokens.service.ts';
import type { AppEnv } from '../env.ts';
import { bearer } from '../middleware/auth.ts';
import { concertParam, scheduleParams } from '../schemas.ts';
import { validate } from '../validate.ts';

export interface CatalogRouterDeps {
  catalog: CatalogService;
  /** A scheduled sale's public view and its published draw. */
  sale: SaleService;
  /** Schedules and seats are shown to active users only. */
  queue: QueueService;
  tokens: TokenService;
  clock: () => number;
}

/** GET /v1/concerts and one concert's detail, draw, schedules and seats. */
export function catalogRouter({ catalog, sale, queue, tokens, clock }: CatalogRouterDeps) {
  const auth = bearer({ tokens, clock });
  return new Hono<AppEnv>()
    .get('/', async (c) => c.json({ concerts: await catalog.list() }))
    .get('/:concertId', validate('param', concertParam), async (c) => {
      const { concertId } = c.req.valid('param');
      return c.json(await catalog.detail(concertId, clock(), (id, now) => sale.publicView(id, now)));
    })
    .get('/:concertId/draw', validate('param', concertParam), async (c) => {
      const { concertId } = c.req.valid('param');
      await catalog.concert(concertId);
      return c.json(await sale.published(concertId));
    })
    .get('/:concertId/schedules', validate('param', concertParam), auth, async (c) => {
      const { concertId } = c.req.valid('param');
      const now = clock();
      await catalog.concert(concertId);
      await queue.requireActive(c.get('principal'), concertId, now);
      return c.json({ schedules: await catalog.schedules(concertId, now) });
    })
    .get('/:concertId/schedules/:scheduleId/seats', validate('param', scheduleParams), auth, async (c) => {
      const { concertId, scheduleId } = c.req.valid('param');
      const now = clock();
      await catalog.concert(concertId);
      await queue.requireActive(c.get('principal'), concertId, now);
      return c.json({ seats: await catalog.seats(concertId, scheduleId, now) });
    });
}
