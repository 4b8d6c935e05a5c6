// The chaos suite's memory probe, preloaded into an actor with `node --import` (through
// NODE_OPTIONS, see chaos/actors.ts): the actor's code is not changed. Over the IPC channel that
// `fork` opens it answers `{ type: 'chaos-memory', id, gc, snapshot }` with process.memoryUsage()
// before and after a full garbage collection and V8's heap statistics, and writes a heap snapshot
// to `snapshot` when one is asked for. This tells retained objects (heapUsed after GC) from heap
// pages V8 keeps (heapTotal) and from memory outside the JS heap (RSS - heapTotal).
// Plain JavaScript so that it loads before tsx is registered.
import { readFileSync } from 'node:fs';
import { getHeapSpaceStatistics, setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A full GC, with or without --expose-gc. */
function collect() {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    return;
  }
  setFlagsFromString('--expose-gc');
  runInNewContext('gc')();
}

/** process.memoryUsage() in KiB. */
function usage() {
  const u = process.memoryUsage();
  return Object.fromEntries(Object.entries(u).map(([k, v]) => [k, Math.round(v / 1024)]));
}

/**
 * Resident memory by kind of mapping, KiB, from /proc/self/smaps: the brk heap (glibc's main
 * malloc arena), anonymous mappings (V8's heap pages, glibc's thread arenas, big mallocs), files
 * (code and data of node and its libraries), and the largest anonymous mappings (size / resident).
 */
function residentByMapping() {
  let text;
  try {
    text = readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return undefined;
  }
  const out = { brkHeap: 0, anon: 0, file: 0, other: 0, anonMappings: 0, largestAnon: [] };
  const anon = [];
  let current;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head !== null) {
      const name = head[3] ?? '';
      const sizeKiB = (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024;
      current = { name, sizeKiB, rssKiB: 0 };
      if (name === '') anon.push(current);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss === null || current === undefined) continue;
    const kib = Number(rss[1]);
    current.rssKiB = kib;
    if (current.name === '[heap]') out.brkHeap += kib;
    else if (current.name === '') out.anon += kib;
    else if (current.name.startsWith('/')) out.file += kib;
    else out.other += kib;
  }
  out.anonMappings = anon.length;
  anon.sort((a, b) => b.rssKiB - a.rssKiB);
  out.largestAnon = anon.slice(0, 6).map((m) => `${m.sizeKiB}/${m.rssKiB}`);
  return out;
}

if (typeof process.send === 'function') {
  process.on('message', (msg) => {
    if (typeof msg !== 'object' || msg === null || msg.type !== 'chaos-memory') return;
    const before = usage();
    let after = before;
    let snapshot;
    let error;
    try {
      if (msg.gc === true) {
        collect();
        after = usage();
      }
      if (typeof msg.snapshot === 'string') snapshot = writeHeapSnapshot(msg.snapshot);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    const spaces = Object.fromEntries(
      getHeapSpaceStatistics().map((s) => [
        s.space_name,
        { sizeKiB: Math.round(s.space_size / 1024), usedKiB: Math.round(s.space_used_size / 1024) },
      ]),
    );
    const mappings = residentByMapping();
    process.send?.({ type: 'chaos-memory', id: msg.id, before, after, spaces, mappings, snapshot, error });
  });
}
