/**
 * The KV cache on the device: `present.*` outputs stay as WebGPU `gpu-buffer` tensors and are fed
 * back as `past_key_values.*`, so a sequence's cache never leaves the GPU. Joining rows and
 * compacting finished ones run as small graphs on the same provider (`kv-graphs.ts`), keeping the
 * host cache's left-padded layout, so the model graph, the scheduler and the attention mask are the
 * same on every device and the device path needs no model variant.
 *
 * Every tensor the cache holds is disposed as soon as it is replaced, and all of them when the
 * cache is disposed: a GPU buffer lives exactly as long as the rows it holds. `getData()` is never
 * called on a `gpu-buffer` tensor (it kills onnxruntime-node's process; DESIGN.md).
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import * as ort from 'onnxruntime-node';
import {
  APPEND_PAD_A,
  APPEND_PAD_B,
  buildAppendGraph,
  buildLastLogitsGraph,
  buildSelectGraph,
  kvIn,
  kvOut,
  leftPads,
  LOGITS_IN,
  LOGITS_OUT,
  SELECT_ROWS,
  SELECT_START,
} from './kv-graphs.ts';
import { pastName, presentName, type KvCache, type KvShape } from './kv-cache.ts';
import type { OrtMeter } from './ort-meter.ts';

const KINDS = ['key', 'value'] as const;

/** Creates one session of a small graph on the device's provider. */
export type AuxSessionFactory = (
  model: Uint8Array,
  outputLocation: 'gpu-buffer' | 'cpu',
) => Promise<InferenceSession>;

/** The device-side graphs a cache and a decoder share: select, append, last logits. */
export class DeviceKvOps {
  private constructor(
    private readonly selectSession: InferenceSession,
    private readonly appendSession: InferenceSession,
    private readonly lastSession: InferenceSession,
  ) {}

  static async create(
    shape: KvShape,
    vocab: number,
    create: AuxSessionFactory,
    meter?: OrtMeter,
  ): Promise<DeviceKvOps> {
    const tensors = shape.numLayers * 2;
    const sessions = await Promise.all([
      create(buildSelectGraph(tensors, shape.numKvHeads, shape.headDim), 'gpu-buffer'),
      create(buildAppendGraph(tensors, shape.numKvHeads, shape.headDim), 'gpu-buffer'),
      create(buildLastLogitsGraph(vocab), 'cpu'),
    ]);
    if (meter) for (const s of sessions) meter.attach(s);
    return new DeviceKvOps(sessions[0], sessions[1], sessions[2]);
  }

  async select(tensors: readonly Tensor[], rows: readonly number[], start: number): Promise<Tensor[]> {
    const feeds: Record<string, Tensor> = {
      [SELECT_ROWS]: new ort.Tensor('int64', BigInt64Array.from(rows, BigInt), [rows.length]),
      [SELECT_START]: new ort.Tensor('int64', BigInt64Array.from([BigInt(start)]), [1]),
    };
    tensors.forEach((t, i) => (feeds[kvIn(i)] = t));
    const out = await this.selectSession.run(feeds);
    return tensors.map((_, i) => out[kvOut(i)]!);
  }

  async append(a: readonly Tensor[], padA: number, b: readonly Tensor[], padB: number): Promise<Tensor[]> {
    const feeds: Record<string, Tensor> = {
      [APPEND_PAD_A]: new ort.Tensor('int64', leftPads(padA), [8]),
      [APPEND_PAD_B]: new ort.Tensor('int64', leftPads(padB), [8]),
    };
    a.forEach((t, i) => {
      feeds[kvIn(i, 'a')] = t;
      feeds[kvIn(i, 'b')] = b[i]!;
    });
    const out = await this.appendSession.run(feeds);
    return a.map((_, i) => out[kvOut(i)]!);
  }

  /** `[B, S, V]` device logits → the host `[B, V]` of each row's last position. */
  async lastLogits(logits: Tensor): Promise<Float32Array> {
    const out = await this.lastSession.run({ [LOGITS_IN]: logits });
    return out[LOGITS_OUT]!.data as Float32Array;
  }

  async release(): Promise<void> {
    await Promise.all([
      this.selectSession.release(),
      this.appendSession.release(),
      this.lastSession.release(),
    ]);
  }
}

/** Disposes a tensor the cache owned (a no-op for host tensors). */
function drop(t: Tensor | undefined): void {
  if (t !== undefined && t.location !== 'cpu') t.dispose();
}

export class DeviceKvCache implements KvCache {
  /** numLayers × 2 device tensors [B, H, L, D]; empty while the cache holds no position. */
  private tensors: Tensor[] = [];
  private rows: number;
  private len = 0;

  constructor(
    private readonly shape: KvShape,
    private readonly ops: DeviceKvOps,
    batchSize: number,
  ) {
    this.rows = batchSize;
  }

  get batchSize(): number {
    return this.rows;
  }

  get length(): number {
    return this.len;
  }

  feeds(into: Record<string, Tensor>): void {
    for (let layer = 0; layer < this.shape.numLayers; layer++) {
      for (let k = 0; k < 2; k++) {
        const name = pastName(layer, KINDS[k]!);
        // A cache with no position yet feeds empty host tensors: nothing to copy.
        into[name] =
          this.len === 0
            ? new ort.Tensor('float32', new Float32Array(0), [
                this.rows,
                this.shape.numKvHeads,
                0,
                this.shape.headDim,
              ])
            : this.tensors[layer * 2 + k]!;
      }
    }
  }

  adopt(outputs: Record<string, Tensor>): void {
    const next: Tensor[] = [];
    for (let layer = 0; layer < this.shape.numLayers; layer++) {
      for (let k = 0; k < 2; k++) {
        const t = outputs[presentName(layer, KINDS[k]!)];
        if (!t) throw new Error(`session output ${presentName(layer, KINDS[k]!)} is missing`);
        if (t.location !== 'gpu-buffer') {
          throw new Error(
            `session output ${presentName(layer, KINDS[k]!)} came back on the host (${t.location}), not on the device`,
          );
        }
        next.push(t);
      }
    }
    this.replace(next);
    this.len = next[0]!.dims[2]!;
  }

  async append(other: KvCache): Promise<void> {
    if (!(other instanceof DeviceKvCache)) throw new Error('cannot mix KV cache kinds');
    if (this.rows === 0 || this.len === 0) {
      this.dispose();
      this.tensors = other.tensors;
      this.rows = other.rows;
      this.len = other.len;
      other.forget();
      return;
    }
    const len = Math.max(this.len, other.len);
    const rows = this.rows + other.rows;
    const joined = await this.ops.append(this.tensors, len - this.len, other.tensors, len - other.len);
    other.dispose();
    this.replace(joined);
    this.rows = rows;
    this.len = len;
  }

  async select(keep: readonly number[], trimLeft: number): Promise<void> {
    const identity = trimLeft === 0 && keep.length === this.rows && keep.every((r, i) => r === i);
    if (identity) return;
    if (this.len === 0 || keep.length === 0) {
      this.dispose();
      this.rows = keep.length;
      this.len = Math.max(0, this.len - trimLeft);
      return;
    }
    this.replace(await this.ops.select(this.tensors, keep, trimLeft));
    this.rows = keep.length;
    this.len -= trimLeft;
  }

  dispose(): void {
    for (const t of this.tensors) drop(t);
    this.tensors = [];
    this.len = 0;
  }

  /** Gives up the tensors without disposing them (another cache took them). */
  private forget(): void {
    this.tensors = [];
    this.rows = 0;
    this.len = 0;
  }

  private replace(next: Tensor[]): void {
    for (const t of this.tensors) if (!next.includes(t)) drop(t);
    this.tensors = next;
  }
}
