/**
 * The engine's worker thread runs at a lower priority than the actor's event loop (Linux keeps
 * nice values per thread), so that a replica short of CPU still sends its heartbeats on time
 * (chaos cpu-starve found a 10%-CPU replica declared dead for a late beat).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.ts';
import { requireModel, TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';

/** Field 19 of /proc/<pid>/task/<tid>/stat (the 17th after the command's closing parenthesis). */
const NICE_FIELD_AFTER_COMM = 16;

/** The nice value of every thread of this process, by thread id. */
function threadNices(): Map<number, number> {
  const nices = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      nices.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[NICE_FIELD_AFTER_COMM]));
    } catch {
      // A thread that ended while we read.
    }
  }
  return nices;
}

describe(
  'engine thread priority',
  { skip: process.platform !== 'linux' && 'per-thread nice is Linux only' },
  () => {
    it('runs inference below the event loop, leaving the main thread as it was', async () => {
      const main = threadNices().get(process.pid);
      const before = new Set(threadNices().keys());
      const engine = await Engine.start({ modelDir: requireModel(TINY_MODEL), ...TEST_THREADS });
      try {
        const added = [...threadNices()].filter(([tid]) => !before.has(tid));
        assert.ok(
          added.some(([, nice]) => nice === (main ?? 0) + 10 || nice === 10),
          `no new thread runs at a lower priority: ${JSON.stringify(added)}`,
        );
        assert.equal(threadNices().get(process.pid), main, 'the main thread keeps its priority');
      } finally {
        await engine.stop();
      }
    });
  },
);
