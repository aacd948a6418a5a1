import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { ROOT } from './spawn.ts';

/** Where page tests keep their screenshots (git-ignored; CI keeps them as artifacts). */
export const ARTIFACTS = join(ROOT, 'test-artifacts');

/** The system's Chromium (Debian's `chromium`; `.ci/run` installs it): npm downloads no browser. */
export function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch {
      // not this one
    }
  }
  throw new Error('no Chromium found: install the chromium package or set CHROMIUM_PATH');
}

/** A headless Chromium; as root (CI) it cannot use its sandbox. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

/** A screenshot path under test-artifacts/<group>/, the directory made on first use. */
export function artifact(group: string, name: string): string {
  const dir = join(ARTIFACTS, group);
  mkdirSync(dir, { recursive: true });
  return join(dir, name.endsWith('.png') ? name : `${name}.png`);
}
