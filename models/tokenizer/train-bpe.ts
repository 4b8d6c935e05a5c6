/**
 * A byte-level BPE trainer in the GPT-2 style, small enough to read and fast enough to run on
 * every model build. It exists so that the bundled model's tokenizer is built from text the
 * project owns, with no downloaded vocabulary, and comes out byte-identical on every machine.
 *
 * The output is a standard Hugging Face `tokenizer.json`, so the same file serves transformers.js,
 * `@huggingface/tokenizers` and the Python `tokenizers` library.
 */

/**
 * GPT-2's pre-tokenizer pattern, exactly as the Hugging Face ByteLevel pre-tokenizer applies it.
 * Training must split text the same way the tokenizer will at run time, or merges are learned
 * across boundaries that encoding never sees.
 */
export const GPT2_SPLIT_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Number of single-byte tokens; every byte sequence is encodable with these alone. */
export const BYTE_TOKEN_COUNT = 256;

/**
 * GPT-2's byte → printable character table. Byte-level BPE works on these characters rather than
 * raw bytes so that every token is a visible string (space becomes `Ġ`, newline `Ċ`) and
 * vocab/merges survive JSON and whitespace-splitting merge formats.
 * @returns an array indexed by byte value.
 */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  const ranges: Array<[number, number]> = [
    [0x21, 0x7e],
    [0xa1, 0xac],
    [0xae, 0xff],
  ];
  for (const [lo, hi] of ranges) for (let b = lo; b <= hi; b++) printable.push(b);
  const table = new Array<string>(BYTE_TOKEN_COUNT);
  let shifted = 0;
  for (let b = 0; b < BYTE_TOKEN_COUNT; b++) {
    const code = printable.includes(b) ? b : BYTE_TOKEN_COUNT + shifted++;
    table[b] = String.fromCharCode(code);
  }
  return table;
}

/** Options for {@link trainByteLevelBpe}. */
export interface BpeTrainOptions {
  /** Total vocabulary size: special tokens + 256 byte tokens + learned merges. */
  vocabSize: number;
  /** Tokens that take ids 0..n-1, in this order, and never take part in merges. */
  specialTokens: readonly string[];
}

/** A trained byte-level BPE model. */
export interface BpeModel {
  /** Token string by id (byte-level characters for ordinary tokens). */
  vocab: string[];
  /** Merges in rank order: the earlier a merge, the earlier encoding applies it. */
  merges: Array<[string, string]>;
  /** How many leading ids are special tokens. */
  specialCount: number;
}

/** Splits text into GPT-2 pre-tokens and counts each, as byte-level strings. */
function countWords(text: string, byteChars: readonly string[]): Map<string, number> {
  const encoder = new TextEncoder();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(GPT2_SPLIT_PATTERN)) {
    const piece = match[0];
    counts.set(piece, (counts.get(piece) ?? 0) + 1);
  }
  // Re-key by byte-level string only after counting: fewer TextEncoder calls.
  const byteLevel = new Map<string, number>();
  for (const [piece, count] of counts) {
    let word = '';
    for (const b of encoder.encode(piece)) word += byteChars[b];
    byteLevel.set(word, (byteLevel.get(word) ?? 0) + count);
  }
  return byteLevel;
}

/**
 * Learns merges by pair frequency. Pair counts are kept incrementally (only the words that
 * contain the chosen pair are re-counted after each merge), which keeps training a 40 KB corpus
 * to a 1024-token vocabulary well under a second. Ties go to the pair with the lower
 * (left id, right id), the same order the Hugging Face trainer uses, so the result does not
 * depend on Map iteration order.
 *
 * Like the Hugging Face trainer, a merge whose result already exists in the vocabulary is
 * recorded but takes no new id; training continues until the vocabulary is full.
 */
export function trainByteLevelBpe(text: string, opts: BpeTrainOptions): BpeModel {
  const byteChars = bytesToUnicode();
  const vocab: string[] = [...opts.specialTokens, ...byteChars];
  if (opts.vocabSize < vocab.length) {
    throw new Error(`vocabSize ${opts.vocabSize} is smaller than special + byte tokens (${vocab.length})`);
  }
  const idOf = new Map<string, number>();
  vocab.forEach((token, id) => idOf.set(token, id));
  const firstByteId = opts.specialTokens.length;

  const words: number[][] = [];
  const freq: number[] = [];
  for (const [word, count] of countWords(text, byteChars)) {
    words.push(Array.from(word, (ch) => idOf.get(ch) ?? firstByteId));
    freq.push(count);
  }

  const stride = opts.vocabSize;
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (wi: number, sign: 1 | -1): void => {
    const w = words[wi] ?? [];
    const n = (freq[wi] ?? 0) * sign;
    for (let j = 0; j + 1 < w.length; j++) {
      const key = (w[j] ?? 0) * stride + (w[j + 1] ?? 0);
      const next = (pairCount.get(key) ?? 0) + n;
      if (next === 0) pairCount.delete(key);
      else pairCount.set(key, next);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (set === undefined) pairWords.set(key, (set = new Set()));
        set.add(wi);
      }
    }
  };
  for (let wi = 0; wi < words.length; wi++) addPairs(wi, 1);

  const merges: Array<[string, string]> = [];
  while (vocab.length < opts.vocabSize) {
    let bestKey = -1;
    let bestCount = 0;
    for (const [key, count] of pairCount) {
      if (count > bestCount || (count === bestCount && key < bestKey)) {
        bestKey = key;
        bestCount = count;
      }
    }
    if (bestKey < 0) {
      throw new Error(`corpus too small: no pairs left at vocabulary size ${vocab.length}`);
    }
    const left = Math.floor(bestKey / stride);
    const right = bestKey % stride;
    const leftToken = vocab[left] ?? '';
    const rightToken = vocab[right] ?? '';
    const mergedToken = leftToken + rightToken;
    let mergedId = idOf.get(mergedToken);
    if (mergedId === undefined) {
      mergedId = vocab.length;
      vocab.push(mergedToken);
      idOf.set(mergedToken, mergedId);
    }
    merges.push([leftToken, rightToken]);

    const affected = pairWords.get(bestKey) ?? new Set<number>();
    pairWords.delete(bestKey);
    for (const wi of affected) {
      const w = words[wi] ?? [];
      addPairs(wi, -1);
      const out: number[] = [];
      for (let j = 0; j < w.length; j++) {
        if (w[j] === left && w[j + 1] === right) {
          out.push(mergedId);
          j++;
        } else {
          out.push(w[j] ?? 0);
        }
      }
      words[wi] = out;
      addPairs(wi, 1);
    }
  }
  return { vocab, merges, specialCount: opts.specialTokens.length };
}

/**
 * Serialises a trained model as a Hugging Face `tokenizer.json` (GPT-2 layout: ByteLevel
 * pre-tokenizer without prefix space, ByteLevel decoder and post-processor, special tokens as
 * added tokens that are never split). Merges use the `"a b"` string form, which every reader
 * accepts; byte-level tokens never contain a literal space, so the form is unambiguous.
 */
export function toTokenizerJson(model: BpeModel): Record<string, unknown> {
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const vocab: Record<string, number> = {};
  model.vocab.forEach((token, id) => {
    vocab[token] = id;
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: model.vocab.slice(0, model.specialCount).map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: model.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}
