/**
 * One onnxruntime session over a merged decoder (with or without `use_cache_branch`), checked
 * against the model's config when it loads. Runs in the engine's worker thread: onnxruntime-node's
 * `session.run` is synchronous on the calling thread (DESIGN.md pitfalls).
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import * as ort from 'onnxruntime-node';
import { StartupError } from '../errors/errors.ts';
import { deviceFailure, executionProviders, type Device } from './device.ts';
import { HostKvCache, pastName, presentName, type KvCache } from './kv-cache.ts';
import type { ModelInfo } from './model-info.ts';

/** One forward pass over a left-padded batch. */
export interface ForwardInput {
  batchSize: number;
  /** New positions per row in this pass (the longest prompt for a prefill, 1 for a decode step). */
  seqLen: number;
  /** [batchSize, seqLen], row-major. */
  inputIds: BigInt64Array;
  /** [batchSize, seqLen]. */
  positionIds: BigInt64Array;
  /** [batchSize, past + seqLen]: 1 for real positions, 0 for padding. */
  attentionMask: BigInt64Array;
}

/** What the scheduler needs of a model: a forward pass that extends a KV cache. */
export interface Decoder {
  readonly vocabSize: number;
  /** An empty cache for `batchSize` rows. */
  newCache(batchSize: number): KvCache;
  /**
   * Runs the model and extends `cache` by `seqLen` positions. Returns, per row, the logits of the
   * row's last position (views into the output; valid until the next call).
   */
  forward(input: ForwardInput, cache: KvCache): Promise<Float32Array[]>;
}

/** Session settings that matter for speed (DESIGN.md "Facts that save time"). */
export interface SessionSettings {
  device: Device;
  intraOpThreads: number;
  interOpThreads: number;
  /**
   * Whether idle onnxruntime threads spin-wait for work. Spinning saves microseconds on a quiet
   * machine but burns cores that other replicas, routers and the event loop need when several
   * actors share a host (measured: tens of times slower steps with two spinning sessions on 2 cores).
   */
  spinning: boolean;
}

/** onnxruntime session options for these settings (also used by benchmarks for like-for-like runs). */
export function sessionOptions(settings: Omit<SessionSettings, 'device'>): InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: settings.interOpThreads,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: settings.spinning ? '1' : '0' } } },
  };
}

const USE_CACHE_BRANCH = 'use_cache_branch';

/** A {@link Decoder} backed by an onnxruntime-node session. */
export class OnnxDecoder implements Decoder {
  readonly vocabSize: number;
  private readonly hasPositionIds: boolean;
  private readonly hasCacheBranch: boolean;

  private constructor(
    private readonly session: InferenceSession,
    private readonly info: ModelInfo,
  ) {
    this.vocabSize = info.vocabSize;
    this.hasPositionIds = session.inputNames.includes('position_ids');
    this.hasCacheBranch = session.inputNames.includes(USE_CACHE_BRANCH);
  }

  /** Loads the session and checks that its inputs and outputs are the layout the engine drives. */
  static async load(info: ModelInfo, settings: SessionSettings): Promise<OnnxDecoder> {
    const providers = executionProviders(settings.device);
    let session: InferenceSession;
    try {
      session = await ort.InferenceSession.create(info.onnxPath, {
        ...sessionOptions(settings),
        executionProviders: providers,
      });
    } catch (err) {
      if (settings.device.kind !== 'cpu') throw deviceFailure(settings.device, err);
      throw new StartupError(
        'model_corrupt',
        `onnxruntime could not load ${info.onnxPath}: ${(err as Error).message}. The file is corrupt or ` +
          `not an ONNX model; rebuild it (npm run setup) or re-export it`,
        { cause: err },
      );
    }
    checkLayout(session, info);
    return new OnnxDecoder(session, info);
  }

  newCache(batchSize: number): KvCache {
    return new HostKvCache(this.info, batchSize);
  }

  async forward(input: ForwardInput, cache: KvCache): Promise<Float32Array[]> {
    const { batchSize: B, seqLen: S } = input;
    const data = await this.forwardAll(input, cache);
    const V = this.vocabSize;
    const rows: Float32Array[] = [];
    for (let b = 0; b < B; b++) {
      const at = (b * S + S - 1) * V;
      rows.push(data.subarray(at, at + V));
    }
    return rows;
  }

  /**
   * Like {@link forward}, but returns the logits of every position, `[batchSize, seqLen, vocab]`
   * row-major (what scoring a whole sequence needs: see `token-loss.ts`).
   */
  async forwardAll(input: ForwardInput, cache: KvCache): Promise<Float32Array> {
    const { batchSize: B, seqLen: S } = input;
    const feeds: Record<string, Tensor> = {
      input_ids: new ort.Tensor('int64', input.inputIds, [B, S]),
      attention_mask: new ort.Tensor('int64', input.attentionMask, [B, cache.length + S]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', input.positionIds, [B, S]);
    if (this.hasCacheBranch) feeds[USE_CACHE_BRANCH] = new ort.Tensor('bool', [cache.length > 0], [1]);
    cache.feeds(feeds);
    const out = await this.session.run(feeds);
    cache.adopt(out);
    const logits = out.logits;
    if (!logits) throw new Error('session output logits is missing');
    return logits.data as Float32Array;
  }

  /** Frees the native session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Fails start-up unless the session has the inputs and outputs of an Optimum merged decoder. */
function checkLayout(session: InferenceSession, info: ModelInfo): void {
  const problems: string[] = [];
  const inputs = new Set(session.inputNames);
  const outputs = new Set(session.outputNames);
  for (const name of ['input_ids', 'attention_mask']) if (!inputs.has(name)) problems.push(`input ${name}`);
  if (!outputs.has('logits')) problems.push('output logits');
  const layers = session.inputNames.filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
  if (layers !== info.numLayers) {
    problems.push(
      `${info.numLayers} past_key_values.*.key inputs (config.json says ${info.numLayers}, the file has ${layers})`,
    );
  }
  for (let i = 0; i < info.numLayers; i++) {
    for (const kind of ['key', 'value'] as const) {
      if (!inputs.has(pastName(i, kind))) problems.push(`input ${pastName(i, kind)}`);
      if (!outputs.has(presentName(i, kind))) problems.push(`output ${presentName(i, kind)}`);
    }
  }
  const meta = session.inputMetadata.find((m) => m.name === pastName(0, 'key'));
  if (meta?.isTensor) {
    const [, heads, , dim] = meta.shape;
    if (typeof heads === 'number') info.numKvHeads = heads;
    if (typeof dim === 'number') info.headDim = dim;
    if (meta.type !== 'float32') problems.push(`float32 KV tensors (the file has ${meta.type})`);
  }
  const ids = session.inputMetadata.find((m) => m.name === 'input_ids');
  if (ids?.isTensor && ids.type !== 'int64') problems.push(`int64 input_ids (the file has ${ids.type})`);
  if (problems.length > 0) {
    throw new StartupError(
      'model_corrupt',
      `${info.onnxPath} is not a merged decoder this engine can drive; expected ${problems.join(', ')}`,
    );
  }
}
