/**
 * How well a model folder predicts given continuations, measured with the engine's own forward
 * pass: the folder is loaded as a replica loads it (manifest, sha256 check, layout check) and each
 * sequence runs as one prefill over an empty KV cache, so the figure is what serving would see,
 * not what a trainer's own arithmetic claims. Used by the reference trainer for its held-out loss.
 */
import { OnnxDecoder } from './onnx-decoder.ts';
import { loadModelInfo } from './model-info.ts';

/** A prompt and the tokens that should follow it (already tokenized with the model's tokenizer). */
export interface ScoredSequence {
  promptIds: readonly number[];
  targetIds: readonly number[];
}

/** The mean negative log-likelihood per target token, in nats. */
export interface TokenLoss {
  loss: number;
  /** Target tokens scored. */
  tokens: number;
  sequences: number;
}

/** Threads of the scoring session: scoring runs beside a trainer, not beside replicas. */
export interface TokenLossSettings {
  intraOpThreads?: number;
}

/** `-log softmax(logits)[target]`, stable for large logits. */
export function tokenNll(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return Math.log(sum) + max - logits[target]!;
}

/**
 * Mean token loss of `sequences` under the model in `modelDir` (see the module comment). A
 * sequence's first target token is predicted from the prompt's last position, so every sequence
 * needs a prompt of at least one token.
 */
export async function meanTokenLoss(
  modelDir: string,
  sequences: readonly ScoredSequence[],
  settings: TokenLossSettings = {},
): Promise<TokenLoss> {
  const info = await loadModelInfo(modelDir);
  const decoder = await OnnxDecoder.load(info, {
    device: { kind: 'cpu' },
    intraOpThreads: settings.intraOpThreads ?? 1,
    interOpThreads: 1,
    spinning: false,
  });
  let total = 0;
  let tokens = 0;
  try {
    for (const seq of sequences) {
      if (seq.promptIds.length === 0)
        throw new Error('meanTokenLoss: a sequence needs a prompt of at least one token');
      const ids = [...seq.promptIds, ...seq.targetIds];
      const S = ids.length;
      if (S > info.contextLength)
        throw new Error(
          `meanTokenLoss: a sequence of ${S} tokens exceeds the context (${info.contextLength})`,
        );
      const logits = await decoder.forwardAll(
        {
          batchSize: 1,
          seqLen: S,
          inputIds: BigInt64Array.from(ids, BigInt),
          positionIds: BigInt64Array.from(ids, (_, i) => BigInt(i)),
          attentionMask: new BigInt64Array(S).fill(1n),
        },
        decoder.newCache(1),
      );
      const V = decoder.vocabSize;
      const first = seq.promptIds.length;
      for (let j = 0; j < seq.targetIds.length; j++) {
        const at = (first + j - 1) * V;
        total += tokenNll(logits.subarray(at, at + V), seq.targetIds[j]!);
        tokens += 1;
      }
    }
  } finally {
    await decoder.release();
  }
  return { loss: tokens === 0 ? NaN : total / tokens, tokens, sequences: sequences.length };
}
