/**
 * The WebGPU path against the CPU path on the same model, in this process, on SwiftShader:
 * continuous batching with rows joining at different steps, finishing, cancelled and resumed
 * gives token-for-token the same output; no KV tensor ever reaches the host (counted by a wrapper
 * over onnxruntime's calls, not by the cache); and every GPU buffer is released when the batch
 * drains.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.ts';
import { loadModelInfo, type ModelInfo } from '../../src/engine/model-info.ts';
import { OnnxDecoder, type Decoder } from '../../src/engine/onnx-decoder.ts';
import { OrtMeter } from '../../src/engine/ort-meter.ts';
import { GREEDY, type SamplingParams } from '../../src/engine/sampling.ts';
import { Scheduler } from '../../src/engine/scheduler.ts';
import type { ScheduledRequest } from '../../src/engine/step.ts';
import { tokenBytesTable } from '../../src/engine/token-bytes.ts';
import { requireModel, TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';
import { useSwiftShader } from '../helpers/webgpu.ts';

const skip = useSwiftShader();

const seeded = (seed: number): SamplingParams => ({ ...GREEDY, temperature: 0.7, topP: 0.95, seed });

/** A fixed prompt of `n` tokens (ids spread over the vocabulary, deterministic per `salt`). */
function prompt(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => 1 + ((i * 37 + salt * 101) % 1000));
}

interface Arrival {
  /** Step (prefill/decode round) at which the request is submitted. */
  at: number;
  req: ScheduledRequest;
  /** Cancel it this many rounds after it was submitted. */
  cancelAfter?: number;
}

function request(
  id: number,
  promptIds: number[],
  maxTokens: number,
  sampling: SamplingParams,
  resumeIds: number[] = [],
): ScheduledRequest {
  return { id, promptIds, resumeIds, maxTokens, sampling, stop: [], ignoreEos: true };
}

/** Runs arrivals through a scheduler over `decoder`; returns each request's tokens and end. */
async function drive(
  decoder: Decoder,
  info: ModelInfo,
  tokenBytes: Uint8Array[],
  arrivals: Arrival[],
  onRound?: () => void,
  allowErrors = false,
): Promise<Map<number, { tokens: number[]; reason: string; scope?: string }>> {
  const scheduler = new Scheduler(decoder, tokenBytes, {
    maxBatchSize: 8,
    tokenBudget: 4096,
    maxPrefillTokens: 1024,
    padTokenId: info.padTokenId,
    eosTokenIds: info.eosTokenIds,
  });
  const out = new Map<number, { tokens: number[]; reason: string; scope?: string }>();
  let round = 0;
  const pending = [...arrivals];
  while (pending.length > 0 || scheduler.hasWork) {
    for (const a of pending.filter((p) => p.at === round)) {
      scheduler.submit(a.req);
      out.set(a.req.id, { tokens: [], reason: '' });
    }
    for (const a of arrivals)
      if (a.cancelAfter !== undefined && a.at + a.cancelAfter === round) scheduler.cancel(a.req.id);
    pending.splice(0, pending.length, ...pending.filter((p) => p.at > round));
    const events = [...(await scheduler.prefill()), ...(await scheduler.decode())];
    for (const e of events) {
      const r = out.get(e.id)!;
      r.tokens.push(...e.tokenIds);
      if (e.finish) {
        if (!allowErrors) {
          assert.equal(e.finish.error, undefined, `request ${e.id} failed: ${e.finish.error?.message}`);
        }
        r.reason = e.finish.reason;
        if (e.finish.error) r.scope = e.finish.error.scope;
      }
    }
    onRound?.();
    round++;
  }
  return out;
}

describe('WebGPU engine path (SwiftShader)', { skip }, () => {
  let info: ModelInfo;
  let tokenBytes: Uint8Array[];
  let cpu: OnnxDecoder;
  let gpu: OnnxDecoder;
  const meter = new OrtMeter();

  before(async () => {
    info = await loadModelInfo(requireModel(TINY_MODEL));
    tokenBytes = tokenBytesTable(JSON.parse(readFileSync(join(TINY_MODEL, 'tokenizer.json'), 'utf8')));
    const threads = { intraOpThreads: 1, interOpThreads: 1, spinning: false };
    cpu = await OnnxDecoder.load(info, { device: { kind: 'cpu' }, ...threads });
    gpu = await OnnxDecoder.load(info, { device: { kind: 'webgpu', id: 0 }, ...threads, meter });
  });
  after(async () => {
    await cpu?.release();
    await gpu?.release();
  });

  it('joins, finishes and cancels rows with exactly the CPU tokens, greedy and seeded, with the KV cache on the device', async () => {
    const arrivals: Arrival[] = [
      { at: 0, req: request(1, prompt(5, 1), 16, GREEDY) },
      { at: 0, req: request(2, prompt(11, 2), 6, seeded(7)) },
      { at: 2, req: request(3, prompt(3, 3), 12, GREEDY) },
      { at: 2, req: request(4, prompt(17, 4), 10, seeded(11)) },
      { at: 5, req: request(5, prompt(8, 5), 14, seeded(13)), cancelAfter: 4 },
      { at: 7, req: request(6, prompt(2, 6), 1, GREEDY) },
    ];
    const liveAtRound: number[] = [];
    const want = await drive(cpu, info, tokenBytes, arrivals);
    const got = await drive(gpu, info, tokenBytes, arrivals, () => liveAtRound.push(meter.liveGpuBuffers));
    for (const [id, w] of want) {
      assert.deepEqual(got.get(id), w, `request ${id}: webgpu tokens differ from cpu`);
    }
    assert.equal(want.get(5)!.reason, 'cancelled');
    const c = meter.counts();
    assert.equal(c.pastFedOnHost, 0, 'a past KV tensor was fed from the host');
    assert.equal(c.kvOnHost, 0, 'a KV tensor crossed to the host');
    assert.equal(c.gpuReads, 0);
    assert.ok(c.pastFedOnGpu > 0, 'no past was fed from the device');
    // While rows ran, the cache held device buffers; drained, none is left.
    assert.ok(Math.max(...liveAtRound) >= info.numLayers * 2);
    assert.equal(meter.liveGpuBuffers, 0, `${meter.liveGpuBuffers} GPU buffers outlived their rows`);
  });

  it("an engine on webgpu (its worker thread, its tokenizer) gives the CPU engine's text", async () => {
    const params = {
      prompt: 'The night shift at the yard',
      maxTokens: 12,
      temperature: 0.7,
      seed: 5,
      ignoreEos: true,
    };
    const onGpu = await Engine.start({ modelDir: TINY_MODEL, device: 'webgpu', ...TEST_THREADS });
    const onCpu = await Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS });
    try {
      assert.equal(onGpu.device, 'webgpu:0');
      const [got, want] = await Promise.all([onGpu.generate(params), onCpu.generate(params)]);
      assert.deepEqual(got.tokenIds, want.tokenIds);
      assert.equal(got.text, want.text);
    } finally {
      await onGpu.stop();
      await onCpu.stop();
    }
  });

  it('a failed device pass fails only the rows it held, releases their buffers, and the engine serves on', async () => {
    let passes = 0;
    const failing: Decoder = {
      vocabSize: gpu.vocabSize,
      newCache: (n) => gpu.newCache(n),
      forward: (input, cache) => {
        passes++;
        // The 4th pass is a decode step over both rows, with their cache on the device.
        if (passes === 4) return Promise.reject(new Error('injected device failure'));
        return gpu.forward(input, cache);
      },
    };
    const got = await drive(
      failing,
      info,
      tokenBytes,
      [
        { at: 0, req: request(1, prompt(5, 1), 10, GREEDY) },
        { at: 1, req: request(2, prompt(7, 2), 10, GREEDY) },
        { at: 6, req: request(3, prompt(4, 3), 6, GREEDY) },
      ],
      undefined,
      true,
    );
    assert.deepEqual(
      [got.get(1)!.scope, got.get(2)!.scope],
      ['engine', 'engine'],
      'the rows of the failed pass',
    );
    assert.equal(meter.liveGpuBuffers, 0, 'the failed batch left GPU buffers behind');
    const want = await drive(cpu, info, tokenBytes, [{ at: 0, req: request(3, prompt(4, 3), 6, GREEDY) }]);
    assert.deepEqual(got.get(3), want.get(3), 'a request after the failure is served exactly');
  });

  it('continues a resumed request exactly where the CPU run went on', async () => {
    const full = await drive(cpu, info, tokenBytes, [{ at: 0, req: request(1, prompt(6, 9), 14, GREEDY) }]);
    const tokens = full.get(1)!.tokens;
    const resumed = await drive(gpu, info, tokenBytes, [
      { at: 0, req: request(2, prompt(9, 8), 8, seeded(3)) },
      { at: 1, req: request(1, prompt(6, 9), 14 - 5, GREEDY, tokens.slice(0, 5)) },
    ]);
    assert.deepEqual(resumed.get(1)!.tokens, tokens.slice(5));
    assert.equal(meter.liveGpuBuffers, 0);
    assert.equal(meter.counts().kvOnHost, 0);
  });
});
