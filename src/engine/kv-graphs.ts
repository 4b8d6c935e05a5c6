/**
 * Small ONNX graphs that reshape a device-resident KV cache where it lives. The WebGPU provider
 * runs them on `gpu-buffer` inputs and leaves their outputs on the device, so joining rows,
 * compacting finished ones and picking each row's last logits never copy the cache to the host.
 *
 * - `select`: out_i = Slice(Gather(t_i, rows, axis 0), start, ∞, axis 2): keep rows, trim the left.
 * - `append`: out_i = Concat(Pad(a_i, padA), Pad(b_i, padB), axis 0): rows of b below a, the
 *   shorter side left-padded with zeros (the attention mask hides them).
 * - `last`: Slice(logits, -1, ∞, axis 1): each row's last position, the only logits sampling needs.
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
/** Opset 17: Pad takes its pads as an input, Slice its bounds. */
const OPSET = 17;
const IR_VERSION = 8;
const INT64_MAX = 2n ** 63n - 1n;

type Dim = number | string;
function valueInfo(name: string, elemType: number, dims: Dim[]): Onnx.IValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}

function int64(name: string, values: bigint[]): Onnx.ITensorProto {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, v, true));
  return { name, dims: [values.length], dataType: INT64, rawData: raw };
}

function encode(
  name: string,
  nodes: Onnx.INodeProto[],
  inputs: Onnx.IValueInfoProto[],
  outputs: Onnx.IValueInfoProto[],
  initializer: Onnx.ITensorProto[],
): Uint8Array {
  const model: Onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'switchyard kv-graphs',
    graph: { name, node: nodes, initializer, input: inputs, output: outputs },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

const KV_DIMS = (tag: string, heads: number, headDim: number): Dim[] => [
  `b${tag}`,
  heads,
  `l${tag}`,
  headDim,
];

/** Input/output names of the cache graphs for tensor i. */
export const kvIn = (i: number, side: 'a' | 'b' = 'a'): string => `${side}${i}`;
export const kvOut = (i: number): string => `out${i}`;
/** The `select` graph's row indices [K] and left trim [1]. */
export const SELECT_ROWS = 'rows';
export const SELECT_START = 'start';
/** The `append` graph's pads ([8] each, ONNX Pad layout: begins then ends). */
export const APPEND_PAD_A = 'pad_a';
export const APPEND_PAD_B = 'pad_b';
export const LOGITS_IN = 'logits';
export const LOGITS_OUT = 'last_logits';

/** Keeps rows (in the given order) and drops `start` leading positions of `tensors` caches. */
export function buildSelectGraph(tensors: number, heads: number, headDim: number): Uint8Array {
  const nodes: Onnx.INodeProto[] = [];
  const inputs = [valueInfo(SELECT_ROWS, INT64, ['k']), valueInfo(SELECT_START, INT64, [1])];
  const outputs: Onnx.IValueInfoProto[] = [];
  for (let i = 0; i < tensors; i++) {
    inputs.push(valueInfo(kvIn(i), FLOAT, KV_DIMS('', heads, headDim)));
    outputs.push(valueInfo(kvOut(i), FLOAT, ['k', heads, 'l_out', headDim]));
    const gathered = `gathered${i}`;
    nodes.push({
      name: `Gather_${i}`,
      opType: 'Gather',
      input: [kvIn(i), SELECT_ROWS],
      output: [gathered],
      attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
    });
    nodes.push({
      name: `Slice_${i}`,
      opType: 'Slice',
      input: [gathered, SELECT_START, 'int64_max', 'axis_2'],
      output: [kvOut(i)],
    });
  }
  return encode('kv-select', nodes, inputs, outputs, [
    int64('int64_max', [INT64_MAX]),
    int64('axis_2', [2n]),
  ]);
}

/** Stacks the rows of b below those of a, each side padded on the left by its `pad_*`. */
export function buildAppendGraph(tensors: number, heads: number, headDim: number): Uint8Array {
  const nodes: Onnx.INodeProto[] = [];
  const inputs = [valueInfo(APPEND_PAD_A, INT64, [8]), valueInfo(APPEND_PAD_B, INT64, [8])];
  const outputs: Onnx.IValueInfoProto[] = [];
  for (let i = 0; i < tensors; i++) {
    inputs.push(valueInfo(kvIn(i, 'a'), FLOAT, KV_DIMS('a', heads, headDim)));
    inputs.push(valueInfo(kvIn(i, 'b'), FLOAT, KV_DIMS('b', heads, headDim)));
    outputs.push(valueInfo(kvOut(i), FLOAT, ['b_out', heads, 'l_out', headDim]));
    nodes.push({ name: `PadA_${i}`, opType: 'Pad', input: [kvIn(i, 'a'), APPEND_PAD_A], output: [`pa${i}`] });
    nodes.push({ name: `PadB_${i}`, opType: 'Pad', input: [kvIn(i, 'b'), APPEND_PAD_B], output: [`pb${i}`] });
    nodes.push({
      name: `Concat_${i}`,
      opType: 'Concat',
      input: [`pa${i}`, `pb${i}`],
      output: [kvOut(i)],
      attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
    });
  }
  return encode('kv-append', nodes, inputs, outputs, []);
}

/** `[B, S, V]` logits → `[B, 1, V]`: the last position of every row. */
export function buildLastLogitsGraph(vocab: number): Uint8Array {
  const nodes: Onnx.INodeProto[] = [
    {
      name: 'Slice_last',
      opType: 'Slice',
      input: [LOGITS_IN, 'minus_one', 'int64_max', 'axis_1'],
      output: [LOGITS_OUT],
    },
  ];
  return encode(
    'last-logits',
    nodes,
    [valueInfo(LOGITS_IN, FLOAT, ['b', 's', vocab])],
    [valueInfo(LOGITS_OUT, FLOAT, ['b', 1, vocab])],
    [int64('minus_one', [-1n]), int64('int64_max', [INT64_MAX]), int64('axis_1', [1n])],
  );
}

/** The ONNX Pad `pads` of a [B, H, L, D] tensor padded by `left` positions on axis 2. */
export function leftPads(left: number): BigInt64Array {
  return BigInt64Array.from([0n, 0n, BigInt(left), 0n, 0n, 0n, 0n, 0n]);
}
