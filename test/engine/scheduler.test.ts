/**
 * The scheduler over a scripted fake decoder: a failure of one request fails that request only,
 * a failed prefill fails only its batch, and the text held back at an end-of-sequence token goes
 * with the end, not as a chunk of no token.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KvCache } from '../../src/engine/kv-cache.ts';
import type { Decoder, ForwardInput } from '../../src/engine/onnx-decoder.ts';
import { Scheduler } from '../../src/engine/scheduler.ts';
import type { ScheduledRequest, StepEvent } from '../../src/engine/step.ts';

/** Token ids of the scripted vocabulary and the bytes each adds to the text. */
const T = { a: 0, b: 1, lt: 2, eos: 3, x: 4, gt: 5 } as const;
const TEXT = ['a', 'b', '<', '', 'x', '>'];
const TOKEN_BYTES = TEXT.map((t) => new TextEncoder().encode(t));
/** The "model": the next token after each token (a → a: forever; b → < → EOS). */
const NEXT = [T.a, T.lt, T.eos, T.a, T.a, T.a];

class FakeCache implements KvCache {
  constructor(
    public batchSize: number,
    public length = 0,
  ) {}
  feeds(): void {}
  adopt(): void {}
  dispose(): void {
    this.length = 0;
  }
  append(other: KvCache): void {
    this.batchSize += other.batchSize;
    this.length = Math.max(this.length, other.length);
  }
  select(rows: readonly number[], trimLeft: number): void {
    this.batchSize = rows.length;
    this.length -= trimLeft;
  }
}

class ScriptedDecoder implements Decoder {
  readonly vocabSize = TEXT.length;
  /** Forward passes to fail from now on. */
  failNext = 0;
  newCache(batchSize: number): KvCache {
    return new FakeCache(batchSize);
  }
  forward(input: ForwardInput, cache: KvCache): Promise<Float32Array[]> {
    if (this.failNext > 0) {
      this.failNext--;
      return Promise.reject(new Error('scripted forward failure'));
    }
    (cache as FakeCache).length += input.seqLen;
    const logits: Float32Array[] = [];
    for (let b = 0; b < input.batchSize; b++) {
      const last = Number(input.inputIds[b * input.seqLen + input.seqLen - 1]);
      const row = new Float32Array(this.vocabSize);
      row[NEXT[last]!] = 1;
      logits.push(row);
    }
    return Promise.resolve(logits);
  }
}

function request(id: number, promptIds: number[], more: Partial<ScheduledRequest> = {}): ScheduledRequest {
  return {
    id,
    promptIds,
    resumeIds: [],
    maxTokens: 8,
    sampling: { temperature: 0, topK: 0, topP: 1, presencePenalty: 0, frequencyPenalty: 0, seed: 0 },
    stop: [],
    ignoreEos: false,
    ...more,
  };
}

function newScheduler(decoder = new ScriptedDecoder()): Scheduler {
  return new Scheduler(decoder, TOKEN_BYTES, {
    maxBatchSize: 8,
    tokenBudget: 1_000,
    maxPrefillTokens: 1_000,
    padTokenId: T.a,
    eosTokenIds: [T.eos],
  });
}

/** Runs steps until nothing is left, returning every event by request id. */
async function drain(scheduler: Scheduler): Promise<Map<number, StepEvent[]>> {
  const byId = new Map<number, StepEvent[]>();
  for (let i = 0; i < 100 && scheduler.hasWork; i++) {
    for (const e of [...(await scheduler.prefill()), ...(await scheduler.decode())]) {
      byId.set(e.id, [...(byId.get(e.id) ?? []), e]);
    }
  }
  assert.equal(scheduler.hasWork, false, 'the scheduler did not finish');
  return byId;
}

describe('scheduler failure isolation', () => {
  it('a row that throws (a resume past its stop sequence) fails alone; its batch goes on', async () => {
    const scheduler = newScheduler();
    // The resume completes the stop sequence "<x>": replaying it and sampling on would push
    // text after the stop, which throws. The engine refuses such a resume; this is the backstop.
    scheduler.submit(request(1, [T.b], { resumeIds: [T.lt, T.x, T.gt], stop: ['<x>'] }));
    scheduler.submit(request(2, [T.a], { maxTokens: 3 }));
    const events = await drain(scheduler);
    const poisoned = events.get(1)!;
    assert.equal(poisoned.length, 1);
    assert.equal(poisoned[0]!.finish?.reason, 'error');
    assert.equal(poisoned[0]!.finish?.error?.scope, 'request');
    assert.match(poisoned[0]!.finish?.error?.message ?? '', /TextStream\.push after the stream stopped/);
    const healthy = events.get(2)!;
    assert.deepEqual(
      healthy.flatMap((e) => e.tokenIds),
      [T.a, T.a, T.a],
    );
    assert.equal(healthy.at(-1)!.finish?.reason, 'length');
    assert.equal(scheduler.stats().reservedTokens, 0, 'the failed row released its reservation');
  });

  it('a failed prefill fails only its batch, as an engine failure; the running batch goes on', async () => {
    const decoder = new ScriptedDecoder();
    const scheduler = newScheduler(decoder);
    scheduler.submit(request(1, [T.a], { maxTokens: 4 }));
    const first = await scheduler.prefill(); // request 1 runs
    assert.deepEqual(first[0]?.tokenIds, [T.a]);
    scheduler.submit(request(2, [T.a], { maxTokens: 4 }));
    decoder.failNext = 1;
    const failed = await scheduler.prefill();
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.id, 2);
    assert.deepEqual(failed[0]!.finish?.error, { message: 'scripted forward failure', scope: 'engine' });
    const rest = await drain(scheduler);
    assert.equal(rest.get(1)!.at(-1)!.finish?.reason, 'length');
    assert.equal(rest.get(1)!.at(-1)!.finish?.completionTokens, 4);
  });

  it('recover() fails what was admitted and keeps the queue', async () => {
    const scheduler = newScheduler();
    scheduler.submit(request(1, [T.a]));
    await scheduler.prefill();
    const events: StepEvent[] = [];
    scheduler.recover(events, 'boom');
    assert.deepEqual(
      events.map((e) => [e.id, e.finish?.error?.scope]),
      [[1, 'engine']],
    );
    assert.equal(scheduler.stats().reservedTokens, 0);
    scheduler.submit(request(2, [T.a], { maxTokens: 2 }));
    const after = await drain(scheduler);
    assert.equal(after.get(2)!.at(-1)!.finish?.reason, 'length');
  });
});

describe('scheduler end text', () => {
  it('text held back at an end-of-sequence token goes with the end, not as a chunk of no token', async () => {
    const scheduler = newScheduler();
    // b → "<" (held back: it may start "<x>") → EOS: the "<" is released by the end.
    scheduler.submit(request(1, [T.b], { stop: ['<x>'] }));
    const events = (await drain(scheduler)).get(1)!;
    assert.deepEqual(
      events.map((e) => [e.tokenIds, e.text]),
      [
        [[T.lt], ''],
        [[], ''],
      ],
    );
    const end = events.at(-1)!.finish!;
    assert.equal(end.reason, 'stop');
    assert.equal(end.text, '<');
    assert.equal(end.completionTokens, 2);
  });

  it('a resume of the tokens before that end releases the same text once, with its end', async () => {
    const scheduler = newScheduler();
    scheduler.submit(request(1, [T.b], { resumeIds: [T.lt], stop: ['<x>'] }));
    const events = (await drain(scheduler)).get(1)!;
    assert.equal(events.length, 1);
    assert.equal(events[0]!.text, '');
    assert.equal(events[0]!.finish?.text, '<');
  });
});
