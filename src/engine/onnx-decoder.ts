/**
 * One onnxruntime session over a merged decoder (with or without `use_cache_branch`), checked
 * against the model's config when it loads. Runs in the engine's worker thread: onnxruntime-node's
 * `session.run` is synchronous on the calling thread (DESIGN.md pitfalls).
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import * as ort from 'onnxruntime-node';
import { StartupError } from '../errors/errors.ts';
import { deviceFailure, executionProviders, type Device, type ExecutionProviders } from './device.ts';
import { DeviceKvCache, DeviceKvOps } from './device-kv-cache.ts';
import { HostKvCache, pastName, presentName, type KvCache } from './kv-cache.ts';
import type { ModelInfo } from './model-info.ts';
import type { OrtMeter } from './ort-meter.ts';

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
  /** Counts host bytes and device buffers over every session run (tests and benchmarks, in-process only). */
  meter?: OrtMeter;
}

/** onnxruntime session options for these settings (also used by benchmarks for like-for-like runs). */
export function sessionOptions(
  settings: Omit<SessionSettings, 'device' | 'meter'>,
): InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: settings.interOpThreads,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: settings.spinning ? '1' : '0' } } },
  };
}

const USE_CACHE_BRANCH = 'use_cache_branch';
/** Prompt length of the device warm-up's long row (a "large" pass for the step pace). */
const WARM_UP_PROMPT = 24;

/**
 * Session options for a graph on the WebGPU provider whose outputs stay on the device. The cache
 * graphs must run there entirely (`allNodesOnDevice`: a node placed on the CPU would copy a KV
 * tensor to the host inside onnxruntime, where no meter sees it). The model may not: onnxruntime
 * places its int64 shape and mask arithmetic on the CPU (measured on the bundled model: 10 such
 * nodes, three MemcpyFromHost for input_ids and two mask booleans, no MemcpyToHost).
 */
function deviceOptions(
  settings: SessionSettings,
  providers: ExecutionProviders,
  outputLocation: 'gpu-buffer' | 'cpu',
  allNodesOnDevice: boolean,
): InferenceSession.SessionOptions {
  const base = sessionOptions(settings);
  const session = { ...(base.extra as { session: object }).session };
  return {
    ...base,
    executionProviders: providers,
    preferredOutputLocation: outputLocation,
    // Errors only: onnxruntime warns on every load that it put the shape nodes on the CPU (above).
    logSeverityLevel: allNodesOnDevice ? 2 : 3,
    extra: { session: allNodesOnDevice ? { ...session, disable_cpu_ep_fallback: '1' } : session },
  };
}

/** A {@link Decoder} backed by an onnxruntime-node session. */
export class OnnxDecoder implements Decoder {
  readonly vocabSize: number;
  private readonly hasPositionIds: boolean;
  private readonly hasCacheBranch: boolean;

  private constructor(
    private readonly session: InferenceSession,
    private readonly info: ModelInfo,
    /** The device-side cache graphs when the model runs on WebGPU; undefined on the CPU. */
    private readonly ops: DeviceKvOps | undefined,
  ) {
    this.vocabSize = info.vocabSize;
    this.hasPositionIds = session.inputNames.includes('position_ids');
    this.hasCacheBranch = session.inputNames.includes(USE_CACHE_BRANCH);
  }

  /** Loads the session and checks that its inputs and outputs are the layout the engine drives. */
  static async load(info: ModelInfo, settings: SessionSettings): Promise<OnnxDecoder> {
    const providers = executionProviders(settings.device);
    const onDevice = settings.device.kind === 'webgpu';
    let session: InferenceSession;
    try {
      session = await ort.InferenceSession.create(
        info.onnxPath,
        onDevice
          ? deviceOptions(settings, providers, 'gpu-buffer', false)
          : { ...sessionOptions(settings), executionProviders: providers },
      );
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
    settings.meter?.attach(session);
    let ops: DeviceKvOps | undefined;
    if (onDevice) {
      try {
        ops = await DeviceKvOps.create(
          info,
          info.vocabSize,
          (model, location) =>
            ort.InferenceSession.create(model, deviceOptions(settings, providers, location, true)),
          settings.meter,
        );
      } catch (err) {
        await session.release();
        throw deviceFailure(settings.device, err);
      }
    }
    return new OnnxDecoder(session, info, ops);
  }

  newCache(batchSize: number): KvCache {
    return this.ops
      ? new DeviceKvCache(this.info, this.ops, batchSize)
      : new HostKvCache(this.info, batchSize);
  }

  async forward(input: ForwardInput, cache: KvCache): Promise<Float32Array[]> {
    const { batchSize: B, seqLen: S } = input;
    const V = this.vocabSize;
    const rows: Float32Array[] = [];
    if (this.ops) {
      // On the device only each row's last logits come to the host (a prefill's other positions stay).
      const logits = await this.run(input, cache);
      let last: Float32Array;
      try {
        last = await this.ops.lastLogits(logits);
      } finally {
        logits.dispose();
      }
      for (let b = 0; b < B; b++) rows.push(last.subarray(b * V, (b + 1) * V));
      return rows;
    }
    const data = await this.forwardAll(input, cache);
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
    if (this.ops) throw new Error("forwardAll reads every position's logits: run it on the CPU");
    const logits = await this.run(input, cache);
    return logits.data as Float32Array;
  }

  /** One session run that extends `cache`; returns the logits tensor (on the device under WebGPU). */
  private async run(input: ForwardInput, cache: KvCache): Promise<Tensor> {
    const { batchSize: B, seqLen: S } = input;
    const feeds: Record<string, Tensor> = {
      input_ids: new ort.Tensor('int64', input.inputIds, [B, S]),
      attention_mask: new ort.Tensor('int64', input.attentionMask, [B, cache.length + S]),
    };
    if (this.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', input.positionIds, [B, S]);
    if (this.hasCacheBranch) feeds[USE_CACHE_BRANCH] = new ort.Tensor('bool', [cache.length > 0], [1]);
    cache.feeds(feeds);
    const out = await this.session.run(feeds);
    const logits = out.logits;
    try {
      if (!logits) throw new Error('session output logits is missing');
      cache.adopt(out);
    } catch (err) {
      for (const t of Object.values(out)) if (t.location === 'gpu-buffer') t.dispose();
      throw err;
    }
    return logits;
  }

  /**
   * On a device, runs what serving will run (a batched prefill of rows of different lengths,
   * decode steps, compaction and a join) twice, so that the device is proven and its shaders are
   * compiled before the engine says it is ready; returns the second round's passes as
   * `[tokens, ms]`, a first measure of this device's pace. A no-op on the CPU.
   */
  async warmUp(): Promise<Array<[number, number]>> {
    if (!this.ops) return [];
    let samples: Array<[number, number]> = [];
    for (let round = 0; round < 2; round++) samples = await this.warmUpRound();
    return samples;
  }

  private async warmUpRound(): Promise<Array<[number, number]>> {
    const samples: Array<[number, number]> = [];
    const lens = [WARM_UP_PROMPT, 3];
    const S = WARM_UP_PROMPT;
    const B = lens.length;
    const inputIds = new BigInt64Array(B * S);
    const positionIds = new BigInt64Array(B * S);
    const attentionMask = new BigInt64Array(B * S);
    lens.forEach((len, b) => {
      for (let i = 0; i < len; i++) {
        const at = b * S + S - len + i;
        inputIds[at] = BigInt(1 + (i % (this.vocabSize - 1)));
        positionIds[at] = BigInt(i);
        attentionMask[at] = 1n;
      }
    });
    const cache = this.newCache(B);
    const other = this.newCache(1);
    try {
      let t = Date.now();
      await this.forward({ batchSize: B, seqLen: S, inputIds, positionIds, attentionMask }, cache);
      samples.push([B * S, Date.now() - t]);
      for (let step = 0; step < 2; step++) {
        const L = cache.length;
        const mask = new BigInt64Array(B * (L + 1)).fill(1n);
        mask.fill(0n, L + 1, L + 1 + S - lens[1]!); // row 1's left padding
        t = Date.now();
        await this.forward(
          {
            batchSize: B,
            seqLen: 1,
            inputIds: new BigInt64Array(B).fill(1n),
            positionIds: BigInt64Array.from(lens, (len) => BigInt(len + step)),
            attentionMask: mask,
          },
          cache,
        );
        samples.push([B, Date.now() - t]);
      }
      await cache.select([0], 0);
      await this.forward(
        {
          batchSize: 1,
          seqLen: 2,
          inputIds: BigInt64Array.from([1n, 2n]),
          positionIds: BigInt64Array.from([0n, 1n]),
          attentionMask: BigInt64Array.from([1n, 1n]),
        },
        other,
      );
      await cache.append(other);
    } finally {
      cache.dispose();
      other.dispose();
    }
    return samples;
  }

  /** Frees the native sessions. */
  async release(): Promise<void> {
    await this.session.release();
    await this.ops?.release();
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
