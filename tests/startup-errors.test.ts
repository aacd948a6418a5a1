/**
 * What stops a start, each with exit code 1 and one line on stderr that names the variable to
 * fix, never a stack trace: a port already in use, a DATABASE_URL that is malformed or points
 * where SQLite cannot create its directory, a PostgreSQL that does not answer (its password
 * masked in the line).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../sentinel/topology.ts';
import { JWT_SECRET } from './helpers/service.ts';
import { ROOT } from './helpers/spawn.ts';

async function start(env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, 'src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', JWT_SECRET, LOG_LEVEL: 'error', HOST: '127.0.0.1',
      // Nothing listens there: these starts must fail on the database or the port, not wait on Redis.
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`, ...env,
    },
    stdout: 'ignore', stderr: 'pipe',
  });
  const killer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  const code = await proc.exited;
  clearTimeout(killer);
  const stderr = await new Response(proc.stderr).text();
  return { code, lines: stderr.trimEnd().split('\n') };
}

function oneClearLine(lines: string[]): string {
  expect(lines).toHaveLength(1);
  expect(lines[0]).not.toMatch(/^\s+at |Error:|\.ts:\d+/);
  return lines[0]!;
}

describe('bun src/main.ts refuses to start with one clear line', () => {
  const dir = join(tmpdir(), `startup-errors-${process.pid}`);
  const blocker = join(dir, 'a-file');
  beforeAll(() => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(blocker, 'not a directory');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('the port is already in use: names PORT and the port', async () => {
    const port = await freePort();
    const squatter = Bun.serve({ port, hostname: '127.0.0.1', fetch: () => new Response('taken') });
    try {
      const r = await start({ PORT: String(port), DATABASE_URL: `sqlite:${join(dir, 'port.db')}` });
      expect(r.code).toBe(1);
      const line = oneClearLine(r.lines);
      expect(line).toContain(`PORT=${port}`);
      expect(line).toContain('already in use');
    } finally {
      squatter.stop(true);
    }
  }, 30_000);

  test('a malformed postgres DATABASE_URL: names the variable, masks the password', async () => {
    const r = await start({ PORT: String(await freePort()), DATABASE_URL: 'postgres://app:hunter2@127.0.0.1:notaport/tickets' });
    expect(r.code).toBe(1);
    const line = oneClearLine(r.lines);
    expect(line).toContain('DATABASE_URL');
    expect(line).toContain('postgres://app:***@127.0.0.1:notaport/tickets');
    expect(line).not.toContain('hunter2');
  }, 30_000);

  test('a sqlite path whose directory cannot be created: names DATABASE_URL and the reason', async () => {
    const url = `sqlite:${join(blocker, 'sub', 'ticketing.db')}`;
    const r = await start({ PORT: String(await freePort()), DATABASE_URL: url });
    expect(r.code).toBe(1);
    const line = oneClearLine(r.lines);
    expect(line).toContain(`DATABASE_URL=${url}`);
    expect(line).toContain('ENOTDIR');
  }, 30_000);

  test('an unreachable PostgreSQL: names DATABASE_URL (password masked), host:port and the reason', async () => {
    const pgPort = await freePort();
    const r = await start({ PORT: String(await freePort()), DATABASE_URL: `postgres://app:hunter2@127.0.0.1:${pgPort}/tickets`, SQL_TIMEOUT_MS: '2000' });
    expect(r.code).toBe(1);
    const line = oneClearLine(r.lines);
    expect(line).toContain(`127.0.0.1:${pgPort}`);
    expect(line).toContain(`DATABASE_URL=postgres://app:***@127.0.0.1:${pgPort}/tickets`);
    expect(line).toContain('connection refused');
    expect(line).not.toContain('hunter2');
  }, 30_000);

  test('a PostgreSQL that answers but refuses (no such database): names the server and its reason', async () => {
    const admin = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    admin.pathname = `/no_such_db_${process.pid}`;
    const r = await start({ PORT: String(await freePort()), DATABASE_URL: admin.toString() });
    expect(r.code).toBe(1);
    const line = oneClearLine(r.lines);
    expect(line).toContain(`${admin.hostname}:${admin.port || 5432}`);
    expect(line).toContain(`no_such_db_${process.pid}`);
    expect(line).toContain('does not exist');
  }, 30_000);
});
