/**
 * Checks a scheduled sale's published draw on your own machine:
 *   bun scripts/verify-draw.ts <base-url> <concertId> [--ticket <your drawTicket>]
 *   bun scripts/verify-draw.ts --file draw.json [--commitment <hex>] [--ticket <hex>]
 * (node works too: node --experimental-strip-types scripts/verify-draw.ts ...)
 *
 * 1. The seed matches the commitment published before the draw: SHA-256 of the seed's UTF-8
 *    bytes, lowercase hex (from the concert page, or --commitment with --file).
 * 2. The tickets, sorted and shuffled with that seed as docs/architecture.md describes, give
 *    exactly the published order.
 * This file implements the algorithm on its own (it imports nothing from the service), so that
 * it checks the service rather than agreeing with it.
 * Exit status 0 when the draw checks out, 1 when it does not, 2 on bad usage or a fetch failure.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

interface PublishedDraw { seed: string; commitment: string; algorithm?: string; tickets: string[] }

const RANGE = 2 ** 48;

function shuffle(seed: string, tickets: string[]): string[] {
  const order = [...tickets].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const key = Buffer.from(seed, 'utf8');
  for (let i = order.length - 1; i >= 1; i--) {
    const bound = i + 1;
    const limit = RANGE - (RANGE % bound);
    let j = -1;
    for (let attempt = 0; j < 0; attempt++) {
      const x = createHmac('sha256', key).update(`${i}:${attempt}`, 'utf8').digest().readUIntBE(0, 6);
      if (x < limit) j = x % bound;
    }
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

function usage(message: string): never {
  console.error(`${message}\nusage: verify-draw.ts <base-url> <concertId> [--ticket hex] | --file draw.json [--commitment hex] [--ticket hex]`);
  process.exit(2);
}

async function getJson(url: string): Promise<any> {
  const res = await fetch(url);
  if (!res.ok) usage(`GET ${url} answered ${res.status}: ${await res.text()}`);
  return res.json();
}

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (!v) usage(`${name} needs a value`);
  args.splice(i, 2);
  return v;
};
const file = flag('--file');
let commitment = flag('--commitment');
const ticket = flag('--ticket');

let draw: PublishedDraw;
if (file) {
  draw = JSON.parse(readFileSync(file, 'utf8'));
} else {
  const [base, concertId] = args;
  if (!base || !concertId) usage('give a base URL and a concert id, or --file');
  const root = base.replace(/\/+$/, '');
  const concert = await getJson(`${root}/v1/concerts/${concertId}`);
  commitment = concert.draw?.commitment;
  draw = await getJson(`${root}/v1/concerts/${concertId}/draw`);
}

const problems: string[] = [];
const seedHash = createHash('sha256').update(draw.seed, 'utf8').digest('hex');
if (seedHash !== draw.commitment) problems.push(`the seed does not hash to the draw's commitment (${seedHash} vs ${draw.commitment})`);
if (commitment !== undefined && commitment !== draw.commitment) {
  problems.push(`the draw's commitment ${draw.commitment} is not the one published before it (${commitment})`);
}
if (new Set(draw.tickets).size !== draw.tickets.length) problems.push('a ticket appears twice');
const expected = shuffle(draw.seed, draw.tickets);
const firstDiff = expected.findIndex((t, i) => t !== draw.tickets[i]);
if (firstDiff >= 0) problems.push(`the order differs from the recomputed one from place ${firstDiff + 1} on`);

console.log(`tickets: ${draw.tickets.length}`);
console.log(`commitment: ${draw.commitment}${commitment === undefined ? ' (no earlier commitment given to compare)' : ''}`);
if (ticket) {
  const at = draw.tickets.indexOf(ticket.toLowerCase());
  console.log(at < 0 ? `ticket ${ticket} is not in the draw` : `ticket ${ticket} drew place ${at + 1}`);
}
if (problems.length) {
  for (const p of problems) console.log(`FAIL: ${p}`);
  process.exit(1);
}
console.log('OK: the seed matches the commitment and the published order is the recomputed one');
