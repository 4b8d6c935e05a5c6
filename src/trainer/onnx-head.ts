/**
 * The output layer of a decoder's ONNX graph, found and rewritten: the node that produces
 * `logits` is `MatMul(hidden, W)` (optionally followed by `Add(·, bias)`), where `hidden` is the
 * final layer norm's output and W is the tied `Transpose(wte)` of the bundled model or an untied
 * `[n_embd, vocab]` initializer of a model trained before. The reference trainer exposes `hidden`
 * as an extra output to compute training features, then writes a copy whose head reads a new
 * `lm_head.weight` (and `lm_head.bias`): training unties the output layer from the embeddings,
 * which stay as they were.
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import { StartupError } from '../errors/errors.ts';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** The graph output the decoder's logits are read from. */
export const LOGITS_OUTPUT = 'logits';
/** Name of the untied head's weight, `[n_embd, vocab]`. */
export const HEAD_WEIGHT = 'lm_head.weight';
/** Name of the untied head's bias, `[vocab]`. */
export const HEAD_BIAS = 'lm_head.bias';
/** The extra output that carries the head's input (the final layer norm's output). */
export const HIDDEN_OUTPUT = 'switchyard_train_hidden';

/** A decoded model with its output layer located. */
export interface OutputHead {
  model: Onnx.ModelProto;
  /** The head's input: `[batch, seq, n_embd]`. */
  hidden: string;
  /** Hidden size and vocabulary. */
  nEmbd: number;
  vocab: number;
  /** The head's weight as `[n_embd, vocab]`, row-major (a copy). */
  weight: Float32Array;
  /** The head's bias `[vocab]` (zeros when it has none). */
  bias: Float32Array;
  /** True when W is the transposed token embedding (a tied head). */
  tied: boolean;
}

function corrupt(file: string, why: string): StartupError {
  return new StartupError(
    'model_corrupt',
    `${file}: ${why}; the reference trainer cannot edit its output layer`,
  );
}

function floatsOf(t: Onnx.ITensorProto): Float32Array {
  if (t.dataType !== FLOAT) throw new Error(`initializer ${t.name} is not float32`);
  if (t.rawData && t.rawData.length > 0) {
    // Copied: protobuf's bytes may sit at an offset that is not a multiple of 4.
    const bytes = Uint8Array.from(t.rawData);
    return new Float32Array(bytes.buffer, 0, bytes.length / 4);
  }
  return Float32Array.from(t.floatData ?? []);
}

function rawOf(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] ?? 0, true);
  return out;
}

const dimsOf = (t: Onnx.ITensorProto): number[] => (t.dims ?? []).map(Number);

/** Decodes an ONNX file and finds its output layer (see the module comment). */
export function readOutputHead(bytes: Uint8Array, file: string): OutputHead {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  if (!graph) throw corrupt(file, 'no graph');
  const nodes = graph.node ?? [];
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));
  const producer = (name: string): Onnx.INodeProto | undefined =>
    nodes.find((n) => (n.output ?? []).includes(name));
  let matmul = producer(LOGITS_OUTPUT);
  let bias: Float32Array | undefined;
  if (matmul?.opType === 'Add') {
    const [a = '', b = ''] = matmul.input ?? [];
    const biasInit = inits.get(b);
    if (biasInit === undefined) throw corrupt(file, 'logits come from an Add without a bias initializer');
    bias = floatsOf(biasInit);
    matmul = producer(a);
  }
  if (matmul?.opType !== 'MatMul') throw corrupt(file, `logits are not produced by a MatMul`);
  const [hidden = '', w = ''] = matmul.input ?? [];
  let weight: Float32Array;
  let nEmbd: number;
  let vocab: number;
  let tied: boolean;
  const direct = inits.get(w);
  if (direct !== undefined) {
    [nEmbd = 0, vocab = 0] = dimsOf(direct);
    weight = floatsOf(direct);
    tied = false;
  } else {
    const transpose = producer(w);
    const table = transpose?.opType === 'Transpose' ? inits.get(transpose.input?.[0] ?? '') : undefined;
    if (table === undefined)
      throw corrupt(file, "the logits MatMul's weight is neither an initializer nor Transpose(initializer)");
    [vocab = 0, nEmbd = 0] = dimsOf(table);
    const wte = floatsOf(table);
    weight = new Float32Array(nEmbd * vocab);
    for (let v = 0; v < vocab; v++)
      for (let e = 0; e < nEmbd; e++) weight[e * vocab + v] = wte[v * nEmbd + e]!;
    tied = true;
  }
  if (weight.length !== nEmbd * vocab || nEmbd === 0 || vocab === 0)
    throw corrupt(file, `the output layer's weight has an unexpected shape [${nEmbd}, ${vocab}]`);
  return { model, hidden, nEmbd, vocab, weight, bias: bias ?? new Float32Array(vocab), tied };
}

/** The model with the head's input as an extra graph output ({@link HIDDEN_OUTPUT}). */
export function withHiddenOutput(head: OutputHead): Uint8Array {
  const model = onnx.ModelProto.decode(onnx.ModelProto.encode(head.model).finish());
  const graph = model.graph!;
  graph.node = [
    ...(graph.node ?? []),
    { opType: 'Identity', name: 'switchyard_train_hidden', input: [head.hidden], output: [HIDDEN_OUTPUT] },
  ];
  graph.output = [
    ...(graph.output ?? []),
    { name: HIDDEN_OUTPUT, type: { tensorType: { elemType: FLOAT } } },
  ];
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The model with an untied head: `logits = hidden · lm_head.weight + lm_head.bias`. The old head
 * nodes (and a Transpose of the embeddings that nothing else reads) are removed; the embedding
 * table itself is kept, since the input side still reads it.
 */
export function withUntiedHead(head: OutputHead, weight: Float32Array, bias: Float32Array): Uint8Array {
  const model = onnx.ModelProto.decode(onnx.ModelProto.encode(head.model).finish());
  const graph = model.graph!;
  const nodes = graph.node ?? [];
  const produces = (n: Onnx.INodeProto, name: string): boolean => (n.output ?? []).includes(name);
  // Drop what produced logits back to the hidden input: Add?, MatMul, Transpose?.
  const drop = new Set<Onnx.INodeProto>();
  let frontier = [LOGITS_OUTPUT];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const name of frontier) {
      const node = nodes.find((n) => produces(n, name));
      if (node === undefined || drop.has(node)) continue;
      drop.add(node);
      for (const input of node.input ?? []) if (input !== head.hidden) next.push(input);
    }
    frontier = next;
  }
  // Keep any dropped node whose output something else still reads (it is not part of the head).
  for (const node of [...drop]) {
    const out = node.output ?? [];
    const readElsewhere = nodes.some((n) => !drop.has(n) && (n.input ?? []).some((i) => out.includes(i)));
    if (readElsewhere) drop.delete(node);
  }
  const dropped = new Set(
    [...drop].flatMap((n) => (n.output ?? []).concat(n.input ?? [])).filter((name) => name !== head.hidden),
  );
  const kept = nodes.filter((n) => !drop.has(n));
  const stillRead = new Set(kept.flatMap((n) => n.input ?? []));
  const initializers = (graph.initializer ?? []).filter(
    (t) => !dropped.has(t.name ?? '') || stillRead.has(t.name ?? ''),
  );
  graph.initializer = [
    ...initializers,
    { name: HEAD_WEIGHT, dims: [head.nEmbd, head.vocab], dataType: FLOAT, rawData: rawOf(weight) },
    { name: HEAD_BIAS, dims: [head.vocab], dataType: FLOAT, rawData: rawOf(bias) },
  ];
  const product = 'lm_head.matmul';
  graph.node = [
    ...kept,
    { opType: 'MatMul', name: 'lm_head_MatMul', input: [head.hidden, HEAD_WEIGHT], output: [product] },
    { opType: 'Add', name: 'lm_head_Add', input: [product, HEAD_BIAS], output: [LOGITS_OUTPUT] },
  ];
  return onnx.ModelProto.encode(model).finish();
}
