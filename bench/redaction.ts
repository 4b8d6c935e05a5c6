/**
 * What redaction costs per completion event (src/capture/redaction.ts): prompts of 64, 128, 256
 * and 512 KiB, prose with nothing to redact and prose dense with matches, plus repeats built to
 * make a backtracking regex blow up. Each case is run a few times after a warm-up (the regexes
 * tier up to native code after their first runs, as they do in a long-lived router) and the
 * median is printed; times that grow with the size, not faster, show the scan is linear. The last
 * line is JSON with `redact_256kib_ms` (the target: well under 50 ms); reported, never asserted.
 *
 *   npx tsx bench/redaction.ts [-- --runs 7]
 */
import { parseArgs } from 'node:util';
import { redactText } from '../src/capture/redaction.ts';
import { table } from './util.ts';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const RUNS = Number(args.runs);
const KIB = 1024;

/** Text of `bytes` characters made of `unit` repeated. */
function fill(unit: string, bytes: number): string {
  return unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
}

/** Median milliseconds of redacting `text`, after one warm-up run. */
function medianMs(text: string): number {
  redactText(text);
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    redactText(text);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? 0;
}

const PROSE =
  'The router moved request 12345 to replica 3 at 12:30:45 on 2024-01-15; version 1.2.3 ran ' +
  'the task-force test in 3.14 s, and the cost was $1,234.56. ';
const DENSE =
  'Mail alice@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111, IBAN ' +
  'DE89 3704 0044 0532 0130 00, host 10.0.0.1, key sk-proj-4f9XcB2mQ7rT1vL8nK3pZ6wY. ';
const ADVERSARIAL = ['a', '1', ':', '1.', '0 ', 'a@', '+1 ', 'token=', '-----BEGIN PRIVATE KEY-----'];

const rows: Array<[string, number, string]> = [];
let at256 = 0;
for (const size of [64, 128, 256, 512]) {
  const prose = medianMs(fill(PROSE, size * KIB));
  const dense = medianMs(fill(DENSE, size * KIB));
  if (size === 256) at256 = Math.max(prose, dense);
  rows.push([`${size} KiB of prose`, Number(prose.toFixed(2)), 'ms']);
  rows.push([`${size} KiB dense with matches`, Number(dense.toFixed(2)), 'ms']);
}
let worstAdversarial = 0;
for (const unit of ADVERSARIAL) {
  const ms = medianMs(fill(unit, 256 * KIB));
  worstAdversarial = Math.max(worstAdversarial, ms);
  rows.push([`256 KiB of ${JSON.stringify(unit)} repeated`, Number(ms.toFixed(2)), 'ms']);
}
console.log(table(rows));
console.log(
  JSON.stringify({
    redact_256kib_ms: Number(at256.toFixed(2)),
    redact_256kib_adversarial_max_ms: Number(worstAdversarial.toFixed(2)),
    target_ms: 50,
  }),
);
