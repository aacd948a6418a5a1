/**
 * Summarises a .cpuprofile written by `bun --cpu-prof` (`npm run bench -- --cpu-prof` puts them
 * in bench/results/profiles): samples by package or source file (self), and the service's own
 * functions and middleware with everything they call (inclusive).
 *
 *   bun bench/cpuprofile.ts <file.cpuprofile> [--top 25]
 *
 * Counts samples, not the profile's time deltas: a sample taken right after an idle stretch
 * carries that whole stretch as its delta, which makes time-weighted self times misleading.
 */
import { readFileSync } from 'node:fs';

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface Node { id: number; callFrame: CallFrame; children?: number[] }
interface Profile { nodes: Node[]; samples: number[] }

export function category(cf: CallFrame): string {
  const url = cf.url ?? '';
  if (!url) {
    if (cf.functionName === 'writeBuffered') return 'socket writes (node:net → kernel)';
    if (cf.functionName === '' || cf.functionName === '(anonymous)') return 'native: unnamed (runtime, GC, idle wake-ups)';
    return `native: ${cf.functionName}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const src = /\/(src\/.+|bench\/.+)$/.exec(url);
  if (src) return src[1]!;
  if (url.startsWith('node:') || url.startsWith('internal:')) return 'runtime (node:* / internal:*)';
  return url;
}

export function summarise(p: Profile, top = 25): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const total = p.samples.length;
  const selfCat = new Map<string, number>();
  const selfFn = new Map<string, number>();
  const incl = new Map<string, number>();
  // Who asked for the socket writes: the nearest service function above each such sample.
  const writesBy = new Map<string, number>();
  for (const id of p.samples) {
    const n = byId.get(id)!;
    const cat = category(n.callFrame);
    selfCat.set(cat, (selfCat.get(cat) ?? 0) + 1);
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${cat}${n.callFrame.lineNumber >= 0 ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    selfFn.set(fn, (selfFn.get(fn) ?? 0) + 1);
    if (n.callFrame.functionName === 'writeBuffered' && !n.callFrame.url) {
      let owner = '(no service function on the stack: runtime, e.g. HTTP or a timer)';
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const cf = byId.get(cur)!.callFrame;
        const c = category(cf);
        if (c.startsWith('src/') || c.startsWith('bench/')) {
          owner = `${cf.functionName || '(anonymous)'} ${c}:${cf.lineNumber + 1}`;
          break;
        }
      }
      writesBy.set(owner, (writesBy.get(owner) ?? 0) + 1);
    }
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      const c = category(cf);
      if (!c.startsWith('src/') && !c.startsWith('bench/')) continue;
      const key = `${cf.functionName || '(anonymous)'} ${c}:${cf.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + 1);
    }
  }
  const pct = (n: number) => `${((100 * n) / total).toFixed(1)} %`;
  const rows = (m: Map<string, number>, k: number) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, k);
  const out: string[] = [`${total} samples`, '', '| self samples by package / file | share |', '|---|---:|'];
  for (const [k, v] of rows(selfCat, top)) out.push(`| ${k} | ${pct(v)} |`);
  out.push('', '| self samples by function | share |', '|---|---:|');
  for (const [k, v] of rows(selfFn, top)) out.push(`| ${k} | ${pct(v)} |`);
  out.push('', '| socket-write samples by the nearest service function above them | share of all samples |', '|---|---:|');
  for (const [k, v] of rows(writesBy, 10)) out.push(`| ${k} | ${pct(v)} |`);
  out.push('', '| service and bench functions, inclusive (with what they call) | share |', '|---|---:|');
  for (const [k, v] of rows(incl, top)) out.push(`| ${k} | ${pct(v)} |`);
  return out.join('\n');
}

if (import.meta.main) {
  const [file] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  if (!file) throw new Error('usage: bun bench/cpuprofile.ts <file.cpuprofile> [--top 25]');
  const i = process.argv.indexOf('--top');
  process.stdout.write(`${summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile, i > 0 ? Number(process.argv[i + 1]) : 25)}\n`);
}
