/**
 * `tsx chaos/heap-diff.ts A.heapsnapshot B.heapsnapshot [top]`: what grew between two V8 heap
 * snapshots of one process, by constructor (node name of object nodes, type otherwise): count
 * and self size in each, largest growth first. The overload scenario's memory question (objects
 * kept per request, or heap pages V8 keeps?) is answered with it; snapshots come from the memory
 * probe (chaos/memory-probe.mjs) or `--heapsnapshot-signal`.
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  strings: string[];
}

/** Count and self size (bytes) per constructor. */
export function byConstructor(file: string): Map<string, { count: number; bytes: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!] ?? '?';
    const name = snap.strings[snap.nodes[i + nameAt]!] ?? '?';
    const key = type === 'object' || type === 'closure' ? `${type}:${name}` : `(${type})`;
    const e = out.get(key) ?? { count: 0, bytes: 0 };
    e.count += 1;
    e.bytes += snap.nodes[i + sizeAt]!;
    out.set(key, e);
  }
  return out;
}

function main(): void {
  const [a, b, topArg] = process.argv.slice(2);
  if (a === undefined || b === undefined)
    throw new Error('usage: heap-diff A.heapsnapshot B.heapsnapshot [top]');
  const top = topArg === undefined ? 25 : Number(topArg);
  const before = byConstructor(a);
  const after = byConstructor(b);
  const total = (m: Map<string, { count: number; bytes: number }>): number =>
    [...m.values()].reduce((s, e) => s + e.bytes, 0);
  const rows = [...new Set([...before.keys(), ...after.keys()])].map((k) => {
    const x = before.get(k) ?? { count: 0, bytes: 0 };
    const y = after.get(k) ?? { count: 0, bytes: 0 };
    return { k, x, y, d: y.bytes - x.bytes };
  });
  rows.sort((p, q) => Math.abs(q.d) - Math.abs(p.d));
  const kib = (n: number): string => (n / 1024).toFixed(1);
  console.log(`total self size: ${kib(total(before))} KiB -> ${kib(total(after))} KiB`);
  console.log('constructor | count A | count B | KiB A | KiB B | delta KiB');
  for (const r of rows.slice(0, top))
    console.log(`${r.k} | ${r.x.count} | ${r.y.count} | ${kib(r.x.bytes)} | ${kib(r.y.bytes)} | ${kib(r.d)}`);
}

main();
