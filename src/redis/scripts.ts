import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RedisClient } from './connection.ts';

// Next to this module, from source (Bun) or from the build (Node: npm run build:node copies them).
const dir = fileURLToPath(new URL('./scripts/', import.meta.url));

export interface ScriptDef { name: string; numberOfKeys: number; lua: string; sha1: string }

/** Scripts are named `verbNoun-<numKeys>.lua`; the key count is read from the name. */
export const scripts: ScriptDef[] = readdirSync(dir)
  .filter((f) => f.endsWith('.lua'))
  .sort()
  .map((file) => {
    const m = /^([a-zA-Z]+)-(\d+)\.lua$/.exec(file);
    if (!m) throw new Error(`script file ${file} must be named verbNoun-<numKeys>.lua`);
    const lua = readFileSync(join(dir, file), 'utf8');
    return { name: m[1]!, numberOfKeys: Number(m[2]), lua, sha1: createHash('sha1').update(lua).digest('hex') };
  });

export function registerScripts(client: RedisClient): void {
  for (const s of scripts) client.defineCommand(s.name, { numberOfKeys: s.numberOfKeys, lua: s.lua });
}

type ScriptReply = (string | number | null)[];

/** Calls a registered script by name; wrappers in each feature give it types. */
export function runScript(client: RedisClient, name: string, keys: readonly string[], args: readonly (string | number)[]): Promise<ScriptReply> {
  const fn = (client as unknown as Record<string, (...a: (string | number)[]) => Promise<ScriptReply>>)[name];
  if (!fn) throw new Error(`unknown script ${name}`);
  return fn.call(client, ...keys, ...args);
}
