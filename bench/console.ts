/**
 * What the operator console costs the service: one sampling pass over N live concerts (the
 * work one instance of the fleet does every CONSOLE_SAMPLE_SECONDS) and one console refresh
 * (GET /admin/overview, then GET …/samples for each concert with an hour of samples), in Redis
 * mode and in SQL mode, through the service's own app. SQL is SQLite in a temp file, or
 * PostgreSQL with --postgres (TEST_DATABASE_URL).
 *
 *   bun bench/console.ts [--concerts 50] [--passes 20] [--postgres]
 */
import { parseArgs } from 'node:util';
import { enterMode } from '../tests/helpers/harness.ts';
import { call, createConcert } from '../tests/helpers/http.ts';
import { startService } from '../tests/helpers/service.ts';

const { values } = parseArgs({ options: { concerts: { type: 'string' }, passes: { type: 'string' }, postgres: { type: 'boolean' } } });
const CONCERTS = Number(values.concerts ?? 50);
const PASSES = Number(values.passes ?? 20);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (const mode of ['redis', 'sql'] as const) {
  const svc = await startService({ sql: values.postgres ? 'postgres' : 'sqlite', env: { CONSOLE_SAMPLE_SECONDS: '5' } });
  try {
    await enterMode(svc, mode);
    const ids: number[] = [];
    for (let i = 0; i < CONCERTS; i++) ids.push((await createConcert(svc.app)).id);
    // An hour of samples already there (720 per concert), as in a console opened mid-sale.
    const start = Math.floor(Date.now() / 5000) * 5000 - 3_600_000;
    for (let at = start; at < Date.now(); at += 5000) await svc.ctx.sampler.sampleOnce(at);
    const sampling: number[] = [];
    let next = Math.floor(Date.now() / 5000) * 5000 + 5000;
    for (let i = 0; i < PASSES; i++, next += 5000) {
      const t0 = performance.now();
      await svc.ctx.sampler.sampleOnce(next);
      sampling.push(performance.now() - t0);
    }
    const refresh: number[] = [];
    for (let i = 0; i < Math.min(PASSES, 5); i++) {
      const t0 = performance.now();
      const o = await call(svc.app, 'GET', '/admin/overview', { admin: true });
      if (o.status !== 200) throw new Error(`overview ${o.status}`);
      await Promise.all(ids.map((id) => call(svc.app, 'GET', `/admin/concerts/${id}/samples`, { admin: true })));
      refresh.push(performance.now() - t0);
    }
    console.log(`${mode} mode, ${CONCERTS} concerts: a sampling pass ${median(sampling).toFixed(1)} ms (median of ${PASSES}); `
      + `a console refresh (overview + ${CONCERTS} hours of samples) ${median(refresh).toFixed(0)} ms`);
  } finally {
    await svc.stop();
  }
}
