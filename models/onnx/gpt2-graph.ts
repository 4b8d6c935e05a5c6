/**
 * Writes the ONNX graph of the bundled tiny GPT-2: the same inputs, outputs and KV-cache layout
 * as an optimum-exported `decoder_model_merged.onnx`, so the engine and transformers.js drive it
 * exactly as they would drive a real model, but with seeded random weights that are built in
 * well under a second and never downloaded.
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';

const { onnx } = onnxProto;

/** Transformer blocks. */
export const N_LAYER = 4;
/** Attention heads per block. */
export const N_HEAD = 4;
/** Width of one attention head. */
export const HEAD_DIM = 64;
/** Hidden size (`n_embd`). */
export const N_EMBD = N_HEAD * HEAD_DIM;
/** MLP width, 4 × hidden as in GPT-2. */
export const N_INNER = 4 * N_EMBD;
/** Rows of the position table: the context length. */
export const N_POSITIONS = 512;
/** Rows of the token table and width of the logits. */
export const VOCAB_SIZE = 1024;
/** LayerNormalization epsilon (GPT-2's). */
export const LAYER_NORM_EPSILON = 1e-5;
/**
 * Std of weight matrices. Ten times GPT-2's 0.02: an untrained model initialised like GPT-2
 * produces nearly flat logits and greedy decoding repeats one token; at 0.2 the output varies.
 */
export const WEIGHT_STD = 0.2;
/** Std of biases: non-zero so every parameter is exercised, small so they do not dominate. */
export const BIAS_STD = 0.02;
/**
 * Added to masked attention scores. Finite on purpose: with -inf a fully padded row is
 * softmax(-inf, …) = NaN, which would poison the batch; with -1e9 it is merely uniform.
 */
export const MASKED_SCORE = -1e9;
/** ONNX opset (17 is the first with LayerNormalization). */
export const OPSET_VERSION = 17;
/** ONNX IR version that matches opset 17. */
export const IR_VERSION = 8;
/** Default seed for the weights. */
export const DEFAULT_WEIGHT_SEED = 20240611;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const BOOL = onnx.TensorProto.DataType.BOOL;
const GELU_COEFF = 0.044715;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** Options for {@link buildGpt2Onnx}. */
export interface Gpt2GraphOptions {
  /**
   * Add a `use_cache_branch` bool input like optimum's merged decoders; when false the fed past
   * is sliced to length 0, so engines that drive real merged models can be tested for it.
   * @default false
   */
  useCacheBranch?: boolean;
  /** @default DEFAULT_WEIGHT_SEED */
  seed?: number;
  /** Recorded as the model's producer_version. */
  producerVersion?: string;
  /** Rows of the position table: the context length. @default N_POSITIONS */
  positions?: number;
}

/** Names of the graph's KV-cache inputs and outputs for one layer. */
export function kvNames(layer: number): {
  pastKey: string;
  pastValue: string;
  presentKey: string;
  presentValue: string;
} {
  return {
    pastKey: `past_key_values.${layer}.key`,
    pastValue: `past_key_values.${layer}.value`,
    presentKey: `present.${layer}.key`,
    presentValue: `present.${layer}.value`,
  };
}

/** Seeded uniform PRNG (mulberry32): tiny, fast, and identical on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a, to give every tensor its own stream so editing one tensor leaves the others alone. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function float32Raw(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] ?? 0, true);
  return out;
}

type Attr = Onnx.IAttributeProto;
const A = onnx.AttributeProto.AttributeType;
const intAttr = (name: string, i: number): Attr => ({ name, type: A.INT, i });
const floatAttr = (name: string, f: number): Attr => ({ name, type: A.FLOAT, f });
const intsAttr = (name: string, ints: number[]): Attr => ({ name, type: A.INTS, ints });

/** Accumulates nodes and initializers; names intermediate values so the graph stays readable. */
class GraphBuilder {
  readonly nodes: Onnx.INodeProto[] = [];
  readonly initializers: Onnx.ITensorProto[] = [];
  private readonly initializerNames = new Set<string>();
  private serial = 0;

  constructor(private readonly seed: number) {}

  /** Adds one node; returns its output names (fresh ones unless given). */
  op(opType: string, inputs: string[], attrs: Attr[] = [], outputs?: string[]): string[] {
    const id = this.serial++;
    const out = outputs ?? [`${opType.toLowerCase()}_${id}`];
    this.nodes.push({ name: `${opType}_${id}`, opType, input: inputs, output: out, attribute: attrs });
    return out;
  }

  /** Adds a single-output node and returns the output name. */
  op1(opType: string, inputs: string[], attrs: Attr[] = [], output?: string): string {
    return this.op(opType, inputs, attrs, output === undefined ? undefined : [output])[0] ?? '';
  }

  private addInitializer(tensor: Onnx.ITensorProto & { name: string }): string {
    // ORT keeps the last of two same-named initializers and demotes both to inputs: refuse.
    if (this.initializerNames.has(tensor.name)) throw new Error(`duplicate initializer ${tensor.name}`);
    this.initializerNames.add(tensor.name);
    this.initializers.push(tensor);
    return tensor.name;
  }

  float(name: string, dims: number[], values: Float32Array): string {
    return this.addInitializer({ name, dims, dataType: FLOAT, rawData: float32Raw(values) });
  }

  /** A float scalar shared by every node that names it (created on first use). */
  scalar(name: string, value: number): string {
    return this.initializerNames.has(name) ? name : this.float(name, [], new Float32Array([value]));
  }

  /** Normal(0, std) weights (Box-Muller over the tensor's own stream). */
  normal(name: string, dims: number[], std: number): string {
    const size = dims.reduce((a, b) => a * b, 1);
    const rand = mulberry32(fnv1a(`${this.seed}/${name}`));
    const values = new Float32Array(size);
    for (let i = 0; i < size; i += 2) {
      const radius = Math.sqrt(-2 * Math.log(1 - rand())) * std;
      const angle = 2 * Math.PI * rand();
      values[i] = radius * Math.cos(angle);
      if (i + 1 < size) values[i + 1] = radius * Math.sin(angle);
    }
    return this.float(name, dims, values);
  }

  filled(name: string, dims: number[], value: number): string {
    return this.float(name, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(value));
  }

  /** int64 constant; `dims` [] makes a scalar. */
  int64(name: string, values: Array<number | bigint>, dims: number[] = [values.length]): string {
    const raw = new Uint8Array(values.length * 8);
    const view = new DataView(raw.buffer);
    values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
    return this.addInitializer({ name, dims, dataType: INT64, rawData: raw });
  }
}

type Dim = number | string;
function valueInfo(name: string, elemType: number, dims: Dim[]): Onnx.IValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

const BATCH = 'batch_size';
const SEQ = 'sequence_length';
const PAST = 'past_sequence_length';
const TOTAL = 'past_sequence_length + sequence_length';

/**
 * Builds the additive attention bias [B, 1, S, T]: 0 where query i may see key j (j <= past + i
 * and mask[b, j] == 1), MASKED_SCORE elsewhere. Computed once and shared by all layers.
 */
function attentionBias(g: GraphBuilder, pastLen: string, seqLen: string, mask: string): string {
  const total = g.op1('Add', [pastLen, seqLen]);
  const axis0 = g.int64('axes_0', [0]);
  const pastScalar = g.op1('Squeeze', [pastLen, axis0]);
  const totalScalar = g.op1('Squeeze', [total, axis0]);
  const zero = g.int64('zero_scalar', [0], []);
  const one = g.int64('one_scalar', [1], []);
  const queryPos = g.op1('Range', [pastScalar, totalScalar, one]);
  const keyPos = g.op1('Range', [zero, totalScalar, one]);
  const axis1 = g.int64('axes_1', [1]);
  const causal = g.op1('LessOrEqual', [
    g.op1('Unsqueeze', [keyPos, axis0]),
    g.op1('Unsqueeze', [queryPos, axis1]),
  ]);
  const keep = g.op1('Equal', [mask, one]);
  const keep4d = g.op1('Unsqueeze', [keep, g.int64('axes_1_2', [1, 2])]);
  const allowed = g.op1('And', [causal, keep4d]);
  return g.op1(
    'Where',
    [allowed, g.scalar('zero_f', 0), g.scalar('masked_score', MASKED_SCORE)],
    [],
    'attention_bias',
  );
}

/** GELU, tanh approximation (GPT-2's `gelu_new`): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
function gelu(g: GraphBuilder, x: string): string {
  const cube = g.op1('Mul', [g.op1('Mul', [x, x]), x]);
  const inner = g.op1('Add', [x, g.op1('Mul', [cube, g.scalar('gelu_coeff', GELU_COEFF)])]);
  const scaled = g.op1('Mul', [inner, g.scalar('gelu_sqrt_2_over_pi', SQRT_2_OVER_PI)]);
  const onePlus = g.op1('Add', [g.op1('Tanh', [scaled]), g.scalar('one_f', 1)]);
  return g.op1('Mul', [g.op1('Mul', [x, g.scalar('half_f', 0.5)]), onePlus]);
}

function layerNorm(g: GraphBuilder, x: string, prefix: string): string {
  const gamma = g.filled(`${prefix}.weight`, [N_EMBD], 1);
  const beta = g.filled(`${prefix}.bias`, [N_EMBD], 0);
  return g.op1(
    'LayerNormalization',
    [x, gamma, beta],
    [intAttr('axis', -1), floatAttr('epsilon', LAYER_NORM_EPSILON)],
  );
}

/** x·W + b with W stored [in, out] (GPT-2's Conv1D layout). */
function linear(g: GraphBuilder, x: string, prefix: string, inDim: number, outDim: number): string {
  const w = g.normal(`${prefix}.weight`, [inDim, outDim], WEIGHT_STD);
  const b = g.normal(`${prefix}.bias`, [outDim], BIAS_STD);
  return g.op1('Add', [g.op1('MatMul', [x, w]), b]);
}

/** One pre-LayerNorm block; writes `present.{layer}.*` and returns the new residual stream. */
function block(
  g: GraphBuilder,
  h: string,
  layer: number,
  pastKey: string,
  pastValue: string,
  bias: string,
): string {
  const p = `h.${layer}`;
  const names = kvNames(layer);
  const qkv = linear(g, layerNorm(g, h, `${p}.ln_1`), `${p}.attn.c_attn`, N_EMBD, 3 * N_EMBD);
  const splitSizes = g.int64(`${p}.split_sizes`, [N_EMBD, N_EMBD, N_EMBD]);
  const [q = '', k = '', v = ''] = g.op(
    'Split',
    [qkv, splitSizes],
    [intAttr('axis', 2)],
    [`${p}.q`, `${p}.k`, `${p}.v`],
  );
  const headShape = g.int64(`${p}.head_shape`, [0, 0, N_HEAD, HEAD_DIM]);
  const toHeads = (t: string): string =>
    g.op1('Transpose', [g.op1('Reshape', [t, headShape])], [intsAttr('perm', [0, 2, 1, 3])]);
  const presentKey = g.op1('Concat', [pastKey, toHeads(k)], [intAttr('axis', 2)], names.presentKey);
  const presentValue = g.op1('Concat', [pastValue, toHeads(v)], [intAttr('axis', 2)], names.presentValue);
  const scale = g.scalar('attn_scale', 1 / Math.sqrt(HEAD_DIM));
  const keyT = g.op1('Transpose', [presentKey], [intsAttr('perm', [0, 1, 3, 2])]);
  const scores = g.op1('MatMul', [g.op1('Mul', [toHeads(q), scale]), keyT]);
  const probs = g.op1('Softmax', [g.op1('Add', [scores, bias])], [intAttr('axis', -1)]);
  const context = g.op1(
    'Transpose',
    [g.op1('MatMul', [probs, presentValue])],
    [intsAttr('perm', [0, 2, 1, 3])],
  );
  const merged = g.op1('Reshape', [context, g.int64(`${p}.merge_shape`, [0, 0, N_EMBD])]);
  const afterAttn = g.op1('Add', [h, linear(g, merged, `${p}.attn.c_proj`, N_EMBD, N_EMBD)]);
  const fc = linear(g, layerNorm(g, afterAttn, `${p}.ln_2`), `${p}.mlp.c_fc`, N_EMBD, N_INNER);
  return g.op1('Add', [afterAttn, linear(g, gelu(g, fc), `${p}.mlp.c_proj`, N_INNER, N_EMBD)]);
}

/**
 * Builds the model and returns the serialised ModelProto. Deterministic: the same options give
 * the same bytes (protobuf encoding of a fixed object; weights from seeded per-tensor streams).
 */
export function buildGpt2Onnx(opts: Gpt2GraphOptions = {}): Uint8Array {
  const g = new GraphBuilder(opts.seed ?? DEFAULT_WEIGHT_SEED);
  const inputs: Onnx.IValueInfoProto[] = [
    valueInfo('input_ids', INT64, [BATCH, SEQ]),
    valueInfo('attention_mask', INT64, [BATCH, TOTAL]),
    valueInfo('position_ids', INT64, [BATCH, SEQ]),
  ];
  const outputs: Onnx.IValueInfoProto[] = [valueInfo('logits', FLOAT, [BATCH, SEQ, VOCAB_SIZE])];
  for (let i = 0; i < N_LAYER; i++) {
    const n = kvNames(i);
    inputs.push(valueInfo(n.pastKey, FLOAT, [BATCH, N_HEAD, PAST, HEAD_DIM]));
    inputs.push(valueInfo(n.pastValue, FLOAT, [BATCH, N_HEAD, PAST, HEAD_DIM]));
    outputs.push(valueInfo(n.presentKey, FLOAT, [BATCH, N_HEAD, TOTAL, HEAD_DIM]));
    outputs.push(valueInfo(n.presentValue, FLOAT, [BATCH, N_HEAD, TOTAL, HEAD_DIM]));
  }

  const fedPastLen = g.op1('Shape', [kvNames(0).pastKey], [intAttr('start', 2), intAttr('end', 3)]);
  const seqLen = g.op1('Shape', ['input_ids'], [intAttr('start', 1), intAttr('end', 2)]);
  let pastLen = fedPastLen;
  let mask = 'attention_mask';
  const past = (i: number, kind: 'pastKey' | 'pastValue'): string => kvNames(i)[kind];
  let pastOf = past;
  if (opts.useCacheBranch === true) {
    inputs.push(valueInfo('use_cache_branch', BOOL, [1]));
    // Without the cache branch the past is cut to length 0 and only the mask's last S columns
    // count, so a caller may feed a dummy past and its mask; the output then ignores both.
    pastLen = g.op1('Where', ['use_cache_branch', fedPastLen, g.int64('zero_1d', [0])]);
    const axis2 = g.int64('axes_2', [2]);
    const zero1d = 'zero_1d';
    pastOf = (i, kind) => g.op1('Slice', [past(i, kind), zero1d, pastLen, axis2]);
    const start = g.op1('Neg', [g.op1('Add', [pastLen, seqLen])]);
    mask = g.op1('Slice', [
      mask,
      start,
      g.int64('int64_max_1d', [2n ** 63n - 1n]),
      g.int64('axes_1d_1', [1]),
    ]);
  }
  const bias = attentionBias(g, pastLen, seqLen, mask);

  const wte = g.normal('wte.weight', [VOCAB_SIZE, N_EMBD], WEIGHT_STD);
  const wpe = g.normal('wpe.weight', [opts.positions ?? N_POSITIONS, N_EMBD], WEIGHT_STD);
  let h = g.op1('Add', [g.op1('Gather', [wte, 'input_ids']), g.op1('Gather', [wpe, 'position_ids'])]);
  for (let i = 0; i < N_LAYER; i++) h = block(g, h, i, pastOf(i, 'pastKey'), pastOf(i, 'pastValue'), bias);
  // Tied embeddings: the LM head is wte transposed, so the file holds the table once.
  const wteT = g.op1('Transpose', [wte], [intsAttr('perm', [1, 0])]);
  g.op1('MatMul', [layerNorm(g, h, 'ln_f'), wteT], [], 'logits');

  const model: Onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    producerName: 'switchyard models/build.ts',
    producerVersion: opts.producerVersion ?? '',
    graph: { name: 'tiny-gpt2', node: g.nodes, initializer: g.initializers, input: inputs, output: outputs },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
