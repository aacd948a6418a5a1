/**
 * `npm run demo`: prints where everything is, the API answers there with the demo concert and
 * fans both waiting and active, the printed curl works, and a Ctrl-C (SIGINT) ends it with
 * exit code 0, no child process left (redis-server, the service) and its temp files gone.
 * Once with a redis-server of its own, once as on a machine without one (SQL mode).
 */
import { describe, expect, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { alive, descendants, fetchJson, spawnLines } from './helpers/spawn.ts';
import { eventually } from './helpers/http.ts';

const variants: { name: string; env: Record<string, string>; mode: string }[] = [
  { name: 'with a redis-server of its own', env: {}, mode: 'redis' },
  { name: 'without Redis (SQL mode)', env: { DEMO_NO_REDIS: '1' }, mode: 'sql' },
];

describe('npm run demo', () => {
  for (const v of variants) {
    test(v.name, async () => {
      const demo = spawnLines([process.execPath, 'demo/run.ts'], { DEMO_FANS: '150', ...v.env });
      try {
        const field = async (label: string) => (await demo.waitForLine((l) => l.trimStart().startsWith(`${label}:`), 30_000)).split(`${label}:`)[1]!.trim();
        const apiBase = await field('API base');
        const fanPage = (await field('Fan page')).split(/\s+/)[0]!;
        const consoleUrl = (await field('Console')).split(/\s+/)[0]!;
        const adminKey = await field('Admin key');
        const curl = await field('Try');
        await demo.waitForLine((l) => l.includes('Ctrl-C stops everything'));
        const dataDir = /SQLite in (\S+)/.exec(demo.lines.join('\n'))![1]!;
        expect(existsSync(dataDir)).toBe(true);

        expect(apiBase).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
        const origin = apiBase.slice(0, -'/v1'.length);
        const concertId = Number(/\/concerts\/(\d+)$/.exec(fanPage)![1]);
        expect(fanPage).toBe(`${origin}/concerts/${concertId}`);
        expect(consoleUrl).toBe(`${origin}/admin`);
        expect(adminKey).toMatch(/^[0-9a-f]{32}$/);

        const concerts = await fetchJson(origin, 'GET', '/v1/concerts');
        expect(concerts.status).toBe(200);
        expect(concerts.body.concerts).toContainEqual(expect.objectContaining({ id: concertId, title: 'Demo concert' }));
        expect((await fetchJson(origin, 'GET', '/readyz')).body.mode).toBe(v.mode);
        // Fans wait and shop at the same time (40 active at most, 150 fans).
        await eventually(async () => {
          const q = await fetchJson(origin, 'GET', `/admin/concerts/${concertId}/queue`, { adminKey });
          return q.status === 200 && q.body.waiting > 0 && q.body.active > 0;
        }, 20_000, 200);

        // The printed curl answers as printed.
        if (Bun.which('curl')) {
          const out = Bun.spawnSync(['sh', '-c', curl]);
          expect(out.exitCode).toBe(0);
          expect(JSON.parse(out.stdout.toString())).toMatchObject({ waiting: expect.any(Number), active: expect.any(Number) });
        }

        const children = descendants(demo.proc.pid).map((pid) => ({ pid, cmd: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ') }));
        const service = children.filter((c) => c.cmd.includes('src/main.ts'));
        const redis = children.filter((c) => c.cmd.startsWith('redis-server'));
        expect(service).toHaveLength(1);
        expect(redis).toHaveLength(v.mode === 'redis' ? 1 : 0);
        expect(await demo.stop('SIGINT')).toBe(0);
        expect(demo.lines.at(-1)).toContain('nothing left running');
        // The demo waited for the service and redis-server before it exited: gone already, not
        // only once something else (a closed pipe, a watchdog) ends them.
        expect([...service, ...redis].filter((c) => alive(c.pid))).toEqual([]);
        // The redis helper's watchdog shell ends as its pipe from the demo closes.
        await eventually(() => children.every((c) => !alive(c.pid)), 2000, 25);
        expect(existsSync(dataDir)).toBe(false);
        expect(await fetch(`${origin}/healthz`).then(() => 'answered', () => 'refused')).toBe('refused');
        expect(await demo.stderr()).toBe('');
      } finally {
        if (demo.proc.exitCode === null) await demo.stop('SIGKILL');
      }
    }, 90_000);
  }
});
