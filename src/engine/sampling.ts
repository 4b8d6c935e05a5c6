/**
 * Token sampling for the decode loop.
 *
 * Sampling is a pure function of (seed, token position, logits, generated-token history): the
 * random number for a step comes from hashing the seed with the step's position, not from a
 * stateful generator. A request that a router resumes on another replica at position k with the
 * same seed therefore continues exactly as the original run would have (DESIGN.md invariant 2,
 * extended from greedy to seeded sampling), and batching never changes a request's output.
 *
 * This runs once per token per sequence in the engine worker, so {@link Sampler} keeps scratch
 * buffers sized to the vocabulary and allocates nothing per call.
 */

/**
 * Per-request sampling parameters, already validated (validation of request input lives with
 * the request decoders, not here). Preconditions:
 * - `temperature` finite and >= 0; 0 means greedy, and then topK/topP/seed are ignored.
 * - `topK` an integer >= 0; 0 (or >= vocabulary size) means off.
 * - `topP` in [0, 1]; 1 means off. At least one token is always kept.
 * - `presencePenalty`, `frequencyPenalty` finite (OpenAI allows -2..2).
 * - `seed` an integer in [0, 2^53); see `randomSeed` in cluster/messages/params.ts for requests that bring none.
 */
export interface SamplingParams {
  temperature: number;
  topK: number;
  topP: number;
  presencePenalty: number;
  frequencyPenalty: number;
  seed: number;
}

/** Greedy decoding with every other knob off: the neutral parameters tests and benchmarks start from. */
export const GREEDY: Readonly<SamplingParams> = {
  temperature: 0,
  topK: 0,
  topP: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  seed: 0,
};

const TWO_POW_32 = 4294967296;
const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;
/** Two independent hash streams: one 32-bit word each, 53 bits together. */
const STREAM_A = 0x9e3779b9;
const STREAM_B = 0x7f4a7c15;
/**
 * Tokens whose tempered logit is this far below the best get weight 0 and skip Math.exp: their
 * weight would be below e^-40 ≈ 4e-18 of the best token's, under the 2^-53 resolution of the draw.
 */
const NEGLIGIBLE_LOGIT_GAP = 40;
/** Top-p buckets per unit of tempered logit gap (each spans a weight ratio of e^(1/64) ≈ 1.6 %). */
const NUCLEUS_BUCKETS_PER_UNIT = 64;
const NUCLEUS_BUCKETS = NEGLIGIBLE_LOGIT_GAP * NUCLEUS_BUCKETS_PER_UNIT;

/** One murmur3_32 block step. */
function mixBlock(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** murmur3 fmix32 finaliser: full avalanche of a 32-bit word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** murmur3_32 of the 16-byte key (seedLo, seedHi, posLo, posHi) under hash seed `stream`. */
function hash4(stream: number, a: number, b: number, c: number, d: number): number {
  let h = stream | 0;
  h = mixBlock(h, a);
  h = mixBlock(h, b);
  h = mixBlock(h, c);
  h = mixBlock(h, d);
  return fmix32(h ^ 16);
}

/**
 * A uniform number in [0, 1) with 53-bit resolution, determined only by `seed` and the token
 * `position` (index of the token being sampled in the generated sequence, or any fixed
 * convention the engine keeps across replicas). No state, so a resumed request at position k
 * draws what the original run drew at k. Preconditions: both are integers in [0, 2^53).
 */
export function uniformAt(seed: number, position: number): number {
  const seedLo = seed >>> 0;
  const seedHi = Math.floor(seed / TWO_POW_32) >>> 0;
  const posLo = position >>> 0;
  const posHi = Math.floor(position / TWO_POW_32) >>> 0;
  const a = hash4(STREAM_A, seedLo, seedHi, posLo, posHi);
  const b = hash4(STREAM_B, seedLo, seedHi, posLo, posHi);
  return ((a >>> 5) * TWO_POW_26 + (b >>> 6)) / TWO_POW_53;
}

/**
 * Counts of the tokens a request has generated so far (not its prompt: OpenAI's penalties apply
 * to generated tokens only). Penalties walk the distinct ids, which keeps them O(distinct) rather
 * than O(vocabulary); indexed access keeps that walk free of iterator allocations.
 */
export class TokenCounts {
  readonly #slot = new Map<number, number>();
  readonly #ids: number[] = [];
  readonly #counts: number[] = [];
  #total = 0;

  /** Counts of `ids`, as when a resumed request rebuilds its history. */
  static from(ids: Iterable<number>): TokenCounts {
    const counts = new TokenCounts();
    for (const id of ids) counts.add(id);
    return counts;
  }

  /** Records one more generated occurrence of `id`. */
  add(id: number): void {
    const slot = this.#slot.get(id);
    if (slot === undefined) {
      this.#slot.set(id, this.#ids.length);
      this.#ids.push(id);
      this.#counts.push(1);
    } else {
      this.#counts[slot]!++;
    }
    this.#total++;
  }

  /** How often `id` has been generated (0 if never). */
  count(id: number): number {
    const slot = this.#slot.get(id);
    return slot === undefined ? 0 : this.#counts[slot]!;
  }

  /** Number of distinct ids generated; `idAt`/`countAt` accept 0 .. distinct-1. */
  get distinct(): number {
    return this.#ids.length;
  }

  /** Number of tokens generated in all. */
  get total(): number {
    return this.#total;
  }

  /** The i-th distinct id, in order of first generation. */
  idAt(i: number): number {
    return this.#ids[i]!;
  }

  /** The count of the i-th distinct id. */
  countAt(i: number): number {
    return this.#counts[i]!;
  }

  /** Forgets everything, so that a slot's object can serve its next request. */
  clear(): void {
    this.#slot.clear();
    this.#ids.length = 0;
    this.#counts.length = 0;
    this.#total = 0;
  }
}

/**
 * Picks the next token from one row of logits. One per engine worker (or per batch slot): the
 * scratch buffers are sized to the vocabulary once and reused, and the caller's logits are never
 * modified (penalties are applied to a copy).
 *
 * Order, as in Hugging Face's logits processors and OpenAI's documented penalties: presence and
 * frequency penalties; greedy argmax when temperature is 0 (ties go to the lowest id); otherwise
 * temperature, top-k, top-p over the sorted tempered distribution (renormalised after top-k),
 * softmax, and one draw of {@link uniformAt}(seed, position) by a cumulative scan (over the k
 * candidates best first after top-k, otherwise in id order). Candidates are ranked by logit, ties
 * by lower id, so the result never depends on sort stability or on the engine's batch layout.
 *
 * Cost: one copy and O(vocabulary) exponentials per call (no sort) without top-k/top-p; a bounded
 * heap for top-k (O(vocabulary · log k)); for top-p alone, bucketed masses and a weighted
 * quickselect inside the bucket where the nucleus ends, so even a wide nucleus (high temperature,
 * flat distribution) costs O(vocabulary) and no sort.
 *
 * Logits may contain -Infinity (masked tokens); NaN counts as masked. If every token is masked
 * the result is token 0.
 */
export class Sampler {
  /** Penalised copy of the row. */
  #work: Float32Array;
  /** Unnormalised probabilities: by id (plain and top-p paths) or by rank (top-k path). */
  #weights: Float64Array;
  /** Candidate ids: a heap while selecting, then sorted best first. */
  #order: Int32Array;
  /** Top-p: weight per bucket of tempered logit gap. */
  readonly #bucketMass = new Float64Array(NUCLEUS_BUCKETS);

  constructor(vocabSize: number) {
    this.#work = new Float32Array(vocabSize);
    this.#weights = new Float64Array(vocabSize);
    this.#order = new Int32Array(vocabSize);
  }

  /**
   * The sampled token id for the token at `position` (see {@link uniformAt}). `logits` is one
   * row, possibly a subarray view of a batch's output; its length is the vocabulary size. Token
   * ids in `counts` outside the row are ignored.
   */
  sample(logits: Float32Array, params: SamplingParams, position: number, counts: TokenCounts): number {
    const n = logits.length;
    if (n === 0) throw new RangeError('cannot sample from an empty logits row');
    if (n > this.#work.length) this.#grow(n);
    const work = this.#work;
    work.set(logits);
    const { presencePenalty, frequencyPenalty } = params;
    if (presencePenalty !== 0 || frequencyPenalty !== 0) {
      for (let i = 0; i < counts.distinct; i++) {
        const id = counts.idAt(i);
        if (id >= 0 && id < n) {
          work[id] = work[id]! - (frequencyPenalty * counts.countAt(i) + presencePenalty);
        }
      }
    }
    const best = argmax(work, n);
    if (params.temperature === 0 || params.topP <= 0) return best; // top-p 0 keeps only the best
    const max = work[best]!;
    if (!Number.isFinite(max)) return best;
    const invT = 1 / params.temperature;
    const u = uniformAt(params.seed, position);
    const topK = params.topK > 0 && params.topK < n ? params.topK : 0;
    if (topK > 0) return this.#sampleTopK(n, topK, max, invT, params.topP, u);
    if (params.topP < 1) return this.#sampleNucleus(n, max, invT, params.topP, u);
    return this.#samplePlain(n, max, invT, u);
  }

  #grow(n: number): void {
    this.#work = new Float32Array(n);
    this.#weights = new Float64Array(n);
    this.#order = new Int32Array(n);
  }

  /** No top-k, no top-p: softmax over the whole row, drawn in id order, no sorting. */
  #samplePlain(n: number, max: number, invT: number, u: number): number {
    const work = this.#work;
    const weights = this.#weights;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const w = weightOf((max - work[i]!) * invT);
      weights[i] = w;
      total += w;
    }
    return drawById(weights, n, u * total);
  }

  /** Top-k (then top-p over the k, renormalised), drawn in rank order. */
  #sampleTopK(n: number, k: number, max: number, invT: number, topP: number, u: number): number {
    const work = this.#work;
    const order = this.#order;
    const weights = this.#weights;
    selectTop(order, work, n, k);
    let total = 0;
    for (let j = 0; j < k; j++) {
      const w = weightOf((max - work[order[j]!]!) * invT);
      weights[j] = w;
      total += w;
    }
    let keep = k;
    if (topP < 1) {
      const threshold = topP * total;
      let cum = weights[0]!;
      for (let j = 1; j < k; j++) {
        if (cum >= threshold) {
          keep = j;
          break;
        }
        cum += weights[j]!;
      }
    }
    let mass = 0;
    for (let j = 0; j < keep; j++) mass += weights[j]!;
    const target = u * mass;
    let cum = 0;
    for (let j = 0; j < keep; j++) {
      cum += weights[j]!;
      if (cum > target) return order[j]!;
    }
    for (let j = keep - 1; j > 0; j--) if (weights[j]! > 0) return order[j]!;
    return order[0]!;
  }

  /**
   * Top-p alone. The nucleus is every token ranked at or above its last member (the pivot), so
   * only the pivot needs finding: token weights are summed into buckets of logit gap, the buckets
   * are walked best first until they hold `topP` of the mass, and the pivot is selected among the
   * members of that last bucket only. Kept tokens are then drawn in id order.
   */
  #sampleNucleus(n: number, max: number, invT: number, topP: number, u: number): number {
    const work = this.#work;
    const weights = this.#weights;
    const order = this.#order;
    const bucketMass = this.#bucketMass;
    bucketMass.fill(0);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const gap = (max - work[i]!) * invT;
      const w = weightOf(gap);
      weights[i] = w;
      if (w > 0) {
        total += w;
        bucketMass[(gap * NUCLEUS_BUCKETS_PER_UNIT) | 0]! += w;
      }
    }
    const threshold = topP * total;
    let cum = 0;
    let bucket = 0;
    while (bucket < NUCLEUS_BUCKETS && cum + bucketMass[bucket]! < threshold) cum += bucketMass[bucket++]!;
    if (bucket === NUCLEUS_BUCKETS) return drawById(weights, n, u * total); // rounding: keep all

    let m = 0;
    for (let i = 0; i < n; i++) {
      const inBucket = (((max - work[i]!) * invT * NUCLEUS_BUCKETS_PER_UNIT) | 0) === bucket;
      if (inBucket && weights[i]! > 0) order[m++] = i;
    }
    const pivot = nucleusPivot(order, work, weights, m, cum, threshold);

    const pivotLogit = work[pivot]!;
    let mass = 0;
    for (let i = 0; i < n; i++) {
      const v = work[i]!;
      if (v > pivotLogit || (v === pivotLogit && i <= pivot)) mass += weights[i]!;
      else weights[i] = 0;
    }
    return drawById(weights, n, u * mass);
  }
}

/** Weight of a token whose tempered logit is `gap` below the best; NaN (masked) gives 0. */
function weightOf(gap: number): number {
  return gap < NEGLIGIBLE_LOGIT_GAP ? Math.exp(-gap) : 0;
}

/** Cumulative scan in id order: the first id whose running weight passes `target`. */
function drawById(weights: Float64Array, n: number, target: number): number {
  let cum = 0;
  for (let i = 0; i < n; i++) {
    cum += weights[i]!;
    if (cum > target) return i;
  }
  // u · total rounded up to total: the last token with any weight.
  for (let i = n - 1; i > 0; i--) if (weights[i]! > 0) return i;
  return 0;
}

/** Index of the largest value in values[0..n); ties go to the lowest index; NaN never wins. */
function argmax(values: Float32Array, n: number): number {
  let best = 0;
  let max = values[0]!;
  for (let i = 1; i < n; i++) {
    const v = values[i]!;
    if (v > max || (max !== max && v === v)) {
      max = v;
      best = i;
    }
  }
  return best;
}

/**
 * Leaves the k best ids of values[0..n) in order[0..k), best first: a bounded heap whose root is
 * the worst kept candidate (most ids are rejected by one comparison with it), then a heapsort.
 */
function selectTop(order: Int32Array, values: Float32Array, n: number, k: number): void {
  for (let i = 0; i < k; i++) {
    order[i] = i;
    siftUp(order, values, i);
  }
  for (let i = k; i < n; i++) {
    const root = order[0]!;
    const v = values[i]!;
    const r = values[root]!;
    if (v > r || (v === r && i < root)) {
      order[0] = i;
      siftDown(order, values, 0, k);
    }
  }
  sortDown(order, values, k);
}

/** Ranges of candidates this short are insertion-sorted rather than partitioned further. */
const PIVOT_SORT_RANGE = 16;
/** Any nonzero xorshift32 state; fixed so that pivot selection is reproducible. */
const PIVOT_RNG_SEED = 0x2545f491;

/**
 * The last member of a nucleus that ends among the candidates order[0..m) (one logit-gap bucket,
 * in any order), where `before` is the mass ranked above all of them (< threshold). A weighted
 * quickselect: expected O(m) with no full sort, also when a flat distribution puts most of the
 * vocabulary into that one bucket. Every range searched starts with a kept token.
 */
function nucleusPivot(
  order: Int32Array,
  values: Float32Array,
  weights: Float64Array,
  m: number,
  before: number,
  threshold: number,
): number {
  let lo = 0;
  let hi = m;
  let rng = PIVOT_RNG_SEED;
  for (;;) {
    if (hi - lo <= PIVOT_SORT_RANGE) {
      insertionSort(order, values, lo, hi);
      let pivot = order[lo]!;
      let cum = before + weights[pivot]!;
      for (let j = lo + 1; j < hi && cum < threshold; j++) {
        pivot = order[j]!;
        cum += weights[pivot]!;
      }
      return pivot;
    }
    // Partition element: median of three positions from a fixed xorshift sequence, so that no
    // input order (a flat row arrives sorted) makes the selection quadratic, yet the result stays
    // a pure function of the row.
    const span = hi - lo;
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    const a = lo + ((rng >>> 0) % span);
    const b = lo + ((rng >>> 11) % span);
    const c = lo + ((rng >>> 21) % span);
    const last = hi - 1;
    swap(order, medianOfThree(values, order, a, b, c), last);
    const p = order[last]!;
    // Lomuto partition: ids ranked above p to the front (the ranking is a total order: no ties).
    let store = lo;
    let better = 0;
    for (let j = lo; j < last; j++) {
      const id = order[j]!;
      if (worse(values, p, id)) {
        better += weights[id]!;
        order[j] = order[store]!;
        order[store++] = id;
      }
    }
    order[last] = order[store]!;
    order[store] = p;
    if (before + better >= threshold) {
      hi = store; // p is not kept, so the last kept one ranks above it
      continue;
    }
    const through = before + better + weights[p]!;
    if (through >= threshold || store + 1 === hi) return p;
    before = through;
    lo = store + 1;
  }
}

/** The position among a, b, c whose id ranks in the middle. */
function medianOfThree(values: Float32Array, order: Int32Array, a: number, b: number, c: number): number {
  const x = order[a]!;
  const y = order[b]!;
  const z = order[c]!;
  if (worse(values, x, y)) {
    if (worse(values, y, z)) return b;
    return worse(values, x, z) ? c : a;
  }
  if (worse(values, x, z)) return a;
  return worse(values, y, z) ? c : b;
}

function swap(order: Int32Array, a: number, b: number): void {
  const t = order[a]!;
  order[a] = order[b]!;
  order[b] = t;
}

/** Sorts the ids order[lo..hi) best first; for short ranges only. */
function insertionSort(order: Int32Array, values: Float32Array, lo: number, hi: number): void {
  for (let i = lo + 1; i < hi; i++) {
    const id = order[i]!;
    let j = i;
    while (j > lo && worse(values, order[j - 1]!, id)) {
      order[j] = order[j - 1]!;
      j--;
    }
    order[j] = id;
  }
}

/** Heapsort's second phase on a worst-at-root heap: repeatedly moves the worst to the end. */
function sortDown(heap: Int32Array, values: Float32Array, m: number): void {
  for (let size = m - 1; size > 0; size--) {
    const worst = heap[0]!;
    heap[0] = heap[size]!;
    heap[size] = worst;
    siftDown(heap, values, 0, size);
  }
}

/** Whether candidate a ranks below candidate b: lower logit, or equal logit and higher id. */
function worse(values: Float32Array, a: number, b: number): boolean {
  const va = values[a]!;
  const vb = values[b]!;
  return va < vb || (va === vb && a > b);
}

function siftUp(heap: Int32Array, values: Float32Array, i: number): void {
  const item = heap[i]!;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const p = heap[parent]!;
    if (!worse(values, item, p)) break;
    heap[i] = p;
    i = parent;
  }
  heap[i] = item;
}

function siftDown(heap: Int32Array, values: Float32Array, i: number, size: number): void {
  const item = heap[i]!;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= size) break;
    const right = child + 1;
    if (right < size && worse(values, heap[right]!, heap[child]!)) child = right;
    const c = heap[child]!;
    if (!worse(values, c, item)) break;
    heap[i] = c;
    i = child;
  }
  heap[i] = item;
}
