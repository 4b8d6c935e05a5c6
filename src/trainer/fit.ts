/**
 * Fits an output layer `logits = x · W + b` to target tokens with softmax cross-entropy and Adam,
 * in plain Float32Arrays: the whole of the reference trainer's optimisation. Mini-batches are
 * drawn in a seeded order, so the same features, options and seed give the same weights.
 */
import type { Features } from './features.ts';

/** Epochs over the training rows. */
export const DEFAULT_EPOCHS = 4;
/** Adam's step size. */
export const DEFAULT_LEARNING_RATE = 0.02;
/** Rows per Adam step. */
export const DEFAULT_BATCH_ROWS = 64;
/** Seed of the mini-batch order. */
export const DEFAULT_SEED = 1;

const BETA1 = 0.9;
const BETA2 = 0.999;
const ADAM_EPS = 1e-8;

/** How to fit. */
export interface FitOptions {
  /** @default DEFAULT_EPOCHS */
  epochs?: number;
  /** @default DEFAULT_LEARNING_RATE */
  learningRate?: number;
  /** @default DEFAULT_BATCH_ROWS */
  batchRows?: number;
  /** @default DEFAULT_SEED */
  seed?: number;
  /** Called after every step with the step's mean loss. */
  onStep?: (p: { step: number; steps: number; epoch: number; loss: number }) => void;
}

/** Seeded uniform PRNG (mulberry32, as the model build uses). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(n: number, rand: () => number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** Adam state of one parameter tensor. */
class Adam {
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  constructor(
    private readonly param: Float32Array,
    private readonly lr: number,
  ) {
    this.m = new Float32Array(param.length);
    this.v = new Float32Array(param.length);
  }
  step(grad: Float32Array, t: number): void {
    const c1 = 1 - BETA1 ** t;
    const c2 = 1 - BETA2 ** t;
    const { m, v, param, lr } = this;
    for (let i = 0; i < param.length; i++) {
      const g = grad[i]!;
      m[i] = BETA1 * m[i]! + (1 - BETA1) * g;
      v[i] = BETA2 * v[i]! + (1 - BETA2) * g * g;
      param[i] = param[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + ADAM_EPS);
    }
  }
}

/**
 * Trains `weight` (`[nEmbd, vocab]`) and `bias` (`[vocab]`) in place on `data`; returns the mean
 * loss of the last epoch.
 */
export function fitHead(
  data: Features,
  weight: Float32Array,
  bias: Float32Array,
  opts: FitOptions = {},
): { steps: number; lastEpochLoss: number } {
  const epochs = opts.epochs ?? DEFAULT_EPOCHS;
  const batchRows = opts.batchRows ?? DEFAULT_BATCH_ROWS;
  const E = data.nEmbd;
  const V = bias.length;
  const rand = mulberry32(opts.seed ?? DEFAULT_SEED);
  const perEpoch = Math.ceil(data.rows / batchRows);
  const steps = epochs * perEpoch;
  const adamW = new Adam(weight, opts.learningRate ?? DEFAULT_LEARNING_RATE);
  const adamB = new Adam(bias, opts.learningRate ?? DEFAULT_LEARNING_RATE);
  const gradW = new Float32Array(weight.length);
  const gradB = new Float32Array(V);
  const logits = new Float32Array(V);
  let step = 0;
  let lastEpochLoss = NaN;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const order = shuffled(data.rows, rand);
    let epochLoss = 0;
    for (let start = 0; start < data.rows; start += batchRows) {
      const batch = order.subarray(start, Math.min(start + batchRows, data.rows));
      gradW.fill(0);
      gradB.fill(0);
      let loss = 0;
      for (const r of batch) {
        const x = data.x.subarray(r * E, (r + 1) * E);
        logits.set(bias);
        for (let e = 0; e < E; e++) {
          const xe = x[e]!;
          const w = e * V;
          for (let v = 0; v < V; v++) logits[v] = logits[v]! + xe * weight[w + v]!;
        }
        let max = -Infinity;
        for (let v = 0; v < V; v++) if (logits[v]! > max) max = logits[v]!;
        let sum = 0;
        for (let v = 0; v < V; v++) {
          logits[v] = Math.exp(logits[v]! - max);
          sum += logits[v]!;
        }
        const target = data.y[r]!;
        loss += Math.log(sum) - Math.log(logits[target]!);
        // d(loss)/d(logits) = softmax - onehot, averaged over the batch.
        const scale = 1 / (sum * batch.length);
        for (let v = 0; v < V; v++) logits[v] = logits[v]! * scale;
        logits[target] = logits[target]! - 1 / batch.length;
        for (let v = 0; v < V; v++) gradB[v] = gradB[v]! + logits[v]!;
        for (let e = 0; e < E; e++) {
          const xe = x[e]!;
          const w = e * V;
          for (let v = 0; v < V; v++) gradW[w + v] = gradW[w + v]! + xe * logits[v]!;
        }
      }
      step += 1;
      adamW.step(gradW, step);
      adamB.step(gradB, step);
      epochLoss += loss;
      opts.onStep?.({ step, steps, epoch, loss: loss / batch.length });
    }
    lastEpochLoss = epochLoss / data.rows;
  }
  return { steps, lastEpochLoss };
}
