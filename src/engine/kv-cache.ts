/**
 * The KV cache of a running batch, behind one interface so that a device-resident cache
 * (WebGPU `gpu-buffer` outputs, or native IO binding) can replace the host one without touching
 * the scheduler.
 *
 * Layout: rows are left-padded to a common length. Row r holds `length - pad[r]` real positions
 * at the right end; the attention mask hides its `pad[r]` leading positions. The scheduler owns
 * the per-row pad/length bookkeeping; the cache owns only the tensors.
 */
import type { Tensor } from 'onnxruntime-node';
import * as ort from 'onnxruntime-node';

/** Shape facts the cache needs: one key and one value tensor per layer. */
export interface KvShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

/** A batch's past key/values, fed to and taken back from each session run. */
export interface KvCache {
  /** Rows in the cache. */
  readonly batchSize: number;
  /** Padded positions per row. */
  readonly length: number;
  /** The past_key_values.* feeds for the next run. */
  feeds(into: Record<string, Tensor>): void;
  /** Adopts the present.* outputs of a run as the new past (length grows by the run's sequence length). */
  adopt(outputs: Record<string, Tensor>): void;
  /**
   * Appends another cache's rows below this one's, left-padding the shorter side. Takes `other`'s
   * rows: `other` is left empty. (A device cache runs a graph for it, hence the promise.)
   */
  append(other: KvCache): void | Promise<void>;
  /** Keeps only the given rows (in order) and drops `trimLeft` leading positions of every row. */
  select(rows: readonly number[], trimLeft: number): void | Promise<void>;
  /** Frees what the cache holds (device buffers); the cache is empty afterwards. */
  dispose(): void;
}

/** Names of the past inputs and present outputs for layer i, as Optimum exports them. */
export function pastName(layer: number, kind: 'key' | 'value'): string {
  return `past_key_values.${layer}.${kind}`;
}

/** See {@link pastName}. */
export function presentName(layer: number, kind: 'key' | 'value'): string {
  return `present.${layer}.${kind}`;
}

const KINDS = ['key', 'value'] as const;

/**
 * The cache in JS memory. onnxruntime-node copies present tensors to the host after each run
 * (DESIGN.md: its CUDA outputs cannot stay on the device), so the host cache adopts them without
 * another copy; only joins and compaction copy.
 */
export class HostKvCache implements KvCache {
  private tensors: Float32Array[];
  private rows: number;
  private len: number;
  /** Floats per position of one row of one tensor: heads × head_dim, laid out [B, H, L, D]. */
  private readonly headDim: number;
  private readonly heads: number;

  constructor(
    private readonly shape: KvShape,
    batchSize: number,
  ) {
    this.rows = batchSize;
    this.len = 0;
    this.heads = shape.numKvHeads;
    this.headDim = shape.headDim;
    this.tensors = Array.from({ length: shape.numLayers * 2 }, () => new Float32Array(0));
  }

  get batchSize(): number {
    return this.rows;
  }

  get length(): number {
    return this.len;
  }

  feeds(into: Record<string, Tensor>): void {
    const dims = [this.rows, this.heads, this.len, this.headDim];
    for (let layer = 0; layer < this.shape.numLayers; layer++) {
      for (let k = 0; k < 2; k++) {
        const kind = KINDS[k]!;
        into[pastName(layer, kind)] = new ort.Tensor('float32', this.tensors[layer * 2 + k]!, dims);
      }
    }
  }

  adopt(outputs: Record<string, Tensor>): void {
    let newLen = -1;
    for (let layer = 0; layer < this.shape.numLayers; layer++) {
      for (let k = 0; k < 2; k++) {
        const t = outputs[presentName(layer, KINDS[k]!)];
        if (!t) throw new Error(`session output ${presentName(layer, KINDS[k]!)} is missing`);
        this.tensors[layer * 2 + k] = t.data as Float32Array;
        newLen = t.dims[2]!;
      }
    }
    this.len = newLen;
  }

  append(other: KvCache): void {
    if (!(other instanceof HostKvCache)) throw new Error('cannot mix KV cache kinds');
    if (this.rows === 0) {
      this.tensors = other.tensors;
      this.rows = other.rows;
      this.len = other.len;
      return;
    }
    const len = Math.max(this.len, other.len);
    const rows = this.rows + other.rows;
    const rowStride = this.heads * len * this.headDim;
    for (let i = 0; i < this.tensors.length; i++) {
      const out = new Float32Array(rows * rowStride);
      copyRows(this.tensors[i]!, this.rows, this.len, out, 0, len, this.heads, this.headDim);
      copyRows(other.tensors[i]!, other.rows, other.len, out, this.rows, len, this.heads, this.headDim);
      this.tensors[i] = out;
    }
    this.rows = rows;
    this.len = len;
  }

  dispose(): void {
    this.tensors = this.tensors.map(() => new Float32Array(0));
    this.len = 0;
  }

  select(keep: readonly number[], trimLeft: number): void {
    const len = this.len - trimLeft;
    const D = this.headDim;
    const H = this.heads;
    for (let i = 0; i < this.tensors.length; i++) {
      const src = this.tensors[i]!;
      const out = new Float32Array(keep.length * H * len * D);
      for (let r = 0; r < keep.length; r++) {
        const from = keep[r]!;
        for (let h = 0; h < H; h++) {
          const s = ((from * H + h) * this.len + trimLeft) * D;
          out.set(src.subarray(s, s + len * D), (r * H + h) * len * D);
        }
      }
      this.tensors[i] = out;
    }
    this.rows = keep.length;
    this.len = len;
  }
}

/** Copies `rows` rows of length `srcLen` into `out` at row offset `atRow`, right-aligned to `dstLen`. */
function copyRows(
  src: Float32Array,
  rows: number,
  srcLen: number,
  out: Float32Array,
  atRow: number,
  dstLen: number,
  heads: number,
  headDim: number,
): void {
  const shift = dstLen - srcLen;
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) {
      const s = (r * heads + h) * srcLen * headDim;
      const d = (((atRow + r) * heads + h) * dstLen + shift) * headDim;
      out.set(src.subarray(s, s + srcLen * headDim), d);
    }
  }
}
