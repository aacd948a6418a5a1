import { readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RedisClient } from './connection.ts';

// Next to this module, from source (Bun) or from the build (Node: npm run build:node copies them).
const dir = fileURLToPath(new URL('./scripts/', import.meta.url));
const includeDir = join(dir, 'include');

/**
 * Every script and its key count. The loader checks this list against the files in scripts/,
 * so a script without a typed wrapper (script-calls.ts), or a wrapper without its script,
 * fails at start-up.
 */
export const SCRIPT_KEY_COUNTS = {
  admitNext: 5,
  applyDraw: 4,
  checkQueueToken: 2,
  holdSeat: 11,
  issueToken: 2,
  joinQueue: 5,
  leaveQueue: 5,
  markSold: 11,
  peekAdmissions: 3,
  pollPrequeue: 3,
  pollQueue: 5,
  raiseSeqCeiling: 1,
  releaseHold: 5,
  restorePlace: 4,
} as const;

export type ScriptName = keyof typeof SCRIPT_KEY_COUNTS;

export interface ScriptDef { name: ScriptName; numberOfKeys: number; lua: string; sha1: string }

/**
 * The differences between the script files (`verbNoun-<numKeys>.lua`) and SCRIPT_KEY_COUNTS;
 * empty when they agree.
 */
export function scriptFileMismatches(files: readonly string[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    const m = /^([a-zA-Z]+)-(\d+)\.lua$/.exec(file);
    if (!m) { problems.push(`script file ${file} must be named verbNoun-<numKeys>.lua`); continue; }
    const [, name, count] = m as unknown as [string, string, string];
    seen.add(name);
    const declared = (SCRIPT_KEY_COUNTS as Record<string, number>)[name];
    if (declared === undefined) problems.push(`script file ${file} has no entry in SCRIPT_KEY_COUNTS`);
    else if (declared !== Number(count)) problems.push(`script file ${file} takes ${count} keys, SCRIPT_KEY_COUNTS says ${declared}`);
  }
  for (const name of Object.keys(SCRIPT_KEY_COUNTS)) if (!seen.has(name)) problems.push(`script ${name} has no file`);
  return problems;
}

const INCLUDE = /^--- @include "([a-zA-Z0-9_-]+)"\n/gm;

/**
 * Splices shared fragments (scripts/include/<name>.lua) into a script at its
 * `--- @include "<name>"` lines. A fragment's leading `--[[ ... ]]` block documents the locals
 * it expects and is not spliced, so the executed text is the fragment's code only.
 */
export function spliceIncludes(lua: string, read: (name: string) => string = readInclude): string {
  return lua.replace(INCLUDE, (_, name: string) => {
    const body = read(name).replace(/^--\[\[[\s\S]*?\]\]\n/, '');
    if (/^--- @include /m.test(body)) throw new Error(`include ${name} may not include others`);
    return body.endsWith('\n') ? body : `${body}\n`;
  });
}

function readInclude(name: string): string {
  return readFileSync(join(includeDir, `${name}.lua`), 'utf8');
}

function loadScripts(): ScriptDef[] {
  const files = readdirSync(dir, { withFileTypes: true }).filter((f) => f.isFile() && f.name.endsWith('.lua')).map((f) => f.name).sort();
  const problems = scriptFileMismatches(files);
  if (problems.length > 0) throw new Error(`Redis scripts do not match their declarations: ${problems.join('; ')}`);
  return files.map((file) => {
    const [name, count] = file.slice(0, -'.lua'.length).split('-') as [ScriptName, string];
    const lua = spliceIncludes(readFileSync(join(dir, file), 'utf8'));
    return { name, numberOfKeys: Number(count), lua, sha1: createHash('sha1').update(lua).digest('hex') };
  });
}

/** Scripts are named `verbNoun-<numKeys>.lua`; the key count is read from the name. */
export const scripts: ScriptDef[] = loadScripts();

export function registerScripts(client: RedisClient): void {
  for (const s of scripts) client.defineCommand(s.name, { numberOfKeys: s.numberOfKeys, lua: s.lua });
}

export type ScriptReply = (string | number | null)[];

/**
 * Calls a registered script by name with its keys and arguments as the script's contract
 * lists them. The service calls scripts through the typed wrappers in script-calls.ts; this is
 * for those wrappers and for benchmarks that pipeline raw calls.
 */
export function runScript(client: RedisClient, name: ScriptName, keys: readonly string[], args: readonly (string | number | Buffer)[]): Promise<ScriptReply> {
  const fn = (client as unknown as Record<string, (...a: (string | number | Buffer)[]) => Promise<ScriptReply>>)[name];
  if (!fn) throw new Error(`unknown script ${name}`);
  return fn.call(client, ...keys, ...args);
}
