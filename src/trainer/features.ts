/**
 * The training features of the output layer: the final layer norm's output at every position
 * that predicts a target token, computed by onnxruntime over the base model with that value
 * exposed as an extra output (`onnx-head.ts`), one prefill over an empty cache per example, as
 * the engine's prefill runs it. The body of the model is frozen, so these are computed once.
 */
import * as ort from 'onnxruntime-node';
import type { Tensor } from 'onnxruntime-node';
import { pastName } from '../engine/kv-cache.ts';
import type { ModelInfo } from '../engine/model-info.ts';
import type { Example } from './examples.ts';
import { HIDDEN_OUTPUT } from './onnx-head.ts';

/** Rows of features with the token each row should predict. */
export interface Features {
  /** `[rows, nEmbd]`, row-major. */
  x: Float32Array;
  /** `[rows]`: the target token of each row. */
  y: Int32Array;
  rows: number;
  nEmbd: number;
}

/** Runs the exposed-hidden model over `examples`; `info` gives the cache layout. */
export async function targetFeatures(
  modelBytes: Uint8Array,
  info: Pick<ModelInfo, 'numLayers' | 'numKvHeads' | 'headDim'>,
  nEmbd: number,
  examples: readonly Example[],
  intraOpThreads = 1,
): Promise<Features> {
  const session = await ort.InferenceSession.create(modelBytes, {
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const rows = examples.reduce((n, e) => n + e.targetIds.length, 0);
  const x = new Float32Array(rows * nEmbd);
  const y = new Int32Array(rows);
  let row = 0;
  try {
    const emptyPast = new Float32Array(0);
    for (const ex of examples) {
      const ids = [...ex.promptIds, ...ex.targetIds];
      const S = ids.length;
      const feeds: Record<string, Tensor> = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, S]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(S).fill(1n), [1, S]),
      };
      if (session.inputNames.includes('position_ids'))
        feeds.position_ids = new ort.Tensor(
          'int64',
          BigInt64Array.from(ids, (_, i) => BigInt(i)),
          [1, S],
        );
      if (session.inputNames.includes('use_cache_branch'))
        feeds.use_cache_branch = new ort.Tensor('bool', [false], [1]);
      for (let l = 0; l < info.numLayers; l++) {
        for (const kind of ['key', 'value'] as const) {
          feeds[pastName(l, kind)] = new ort.Tensor('float32', emptyPast, [
            1,
            info.numKvHeads,
            0,
            info.headDim,
          ]);
        }
      }
      const out = await session.run(feeds, [HIDDEN_OUTPUT]);
      const hidden = out[HIDDEN_OUTPUT]!.data as Float32Array;
      const first = ex.promptIds.length;
      for (let j = 0; j < ex.targetIds.length; j++) {
        const at = (first + j - 1) * nEmbd;
        x.set(hidden.subarray(at, at + nEmbd), row * nEmbd);
        y[row] = ex.targetIds[j]!;
        row += 1;
      }
    }
  } finally {
    await session.release();
  }
  return { x, y, rows, nEmbd };
}
