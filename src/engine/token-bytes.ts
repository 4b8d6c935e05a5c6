/**
 * Per-token output bytes, precomputed from a Hugging Face tokenizer.json.
 *
 * The decode loop turns each generated token into text without running the tokenizer's decoder
 * over the whole sequence each step: it looks up the token's bytes here and streams them through
 * a `TextStream` (text-stream.ts), which joins bytes into whole UTF-8 characters. Bytes
 * (not strings) are the right unit because byte-level BPE and sentencepiece byte fallback split
 * one character across several tokens.
 */

/** Shared result for tokens that contribute nothing (special tokens, unused ids). */
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** sentencepiece's word-boundary marker (U+2581). */
const METASPACE = '\u2581';
/** sentencepiece byte-fallback pieces: `<0x0A>`. */
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** Decoder steps understood here; each maps one token to its piece of output. */
const SUPPORTED_DECODERS = ['ByteLevel', 'Metaspace', 'Replace', 'ByteFallback', 'Fuse', 'Strip', 'Sequence'];

type Piece = string | Uint8Array;
type Step = (piece: Piece) => Piece;

/**
 * For every token id, the exact bytes that token contributes to generated text.
 *
 * Supported: ByteLevel decoders (GPT-2's byte↔unicode map), Metaspace decoders, and `Sequence`
 * chains of Replace / ByteFallback / Fuse / Strip / ByteLevel / Metaspace as in Llama and other
 * sentencepiece-derived tokenizers; `<0xAB>` pieces become that byte when the chain has a
 * ByteFallback step or the model sets `byte_fallback`. Special added tokens contribute no bytes
 * (they never appear in output text); other added tokens contribute their UTF-8 content.
 *
 * Whole-text steps are deliberately not applied: sentencepiece's removal of the first token's
 * leading space (Metaspace `prepend_scheme`, a `Strip` after `Fuse`) belongs to decoding a text
 * from its start, whereas generated text continues a prompt, so " world" after "Hello" keeps its
 * space. Invalid UTF-8 from byte tokens is left to the stream decoder (U+FFFD), where Hugging
 * Face's ByteFallback would replace each run of byte tokens; valid output is identical.
 *
 * The array has one entry per id up to the largest id in the vocabulary or the added tokens;
 * ids with no token get an empty array. Entries may share storage: treat them as read-only.
 *
 * @throws Error naming the decoder (or model) type when the tokenizer is not one of the above.
 */
export function tokenBytesTable(tokenizerJson: unknown): Uint8Array[] {
  const root = asObject(tokenizerJson, 'tokenizer.json');
  const model = asObject(root['model'], 'tokenizer.json "model"');
  const vocab = readVocab(model);
  const modelByteFallback = model['byte_fallback'] === true;
  const { steps, byteFallback } = compileDecoder(root['decoder'], modelByteFallback);

  const added = readAddedTokens(root['added_tokens']);
  let size = 0;
  for (const [, id] of vocab) size = Math.max(size, id + 1);
  for (const token of added) size = Math.max(size, token.id + 1);

  const table: Uint8Array[] = new Array<Uint8Array>(size).fill(EMPTY);
  for (const [token, id] of vocab) {
    let piece: Piece = token;
    if (byteFallback) {
      const match = BYTE_PIECE.exec(token);
      if (match) piece = Uint8Array.of(parseInt(match[1]!, 16));
    }
    for (const step of steps) piece = step(piece);
    table[id] = typeof piece === 'string' ? utf8.encode(piece) : piece;
  }
  for (const token of added) {
    table[token.id] = token.special ? EMPTY : utf8.encode(token.content);
  }
  return table;
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${what} is not an object`);
  }
  return value as Record<string, unknown>;
}

function isTokenId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** (token, id) pairs: a `{ token: id }` map (BPE, WordLevel) or Unigram's `[[piece, score]]`. */
function readVocab(model: Record<string, unknown>): Array<[string, number]> {
  const type = model['type'];
  if (type !== undefined && type !== 'BPE' && type !== 'Unigram' && type !== 'WordLevel') {
    throw new Error(`unsupported tokenizer model type ${JSON.stringify(type)}`);
  }
  const vocab = model['vocab'];
  const pairs: Array<[string, number]> = [];
  if (Array.isArray(vocab)) {
    vocab.forEach((entry, id) => {
      const piece: unknown = Array.isArray(entry) ? entry[0] : undefined;
      if (typeof piece !== 'string') throw new Error(`tokenizer vocab entry ${id} is not [piece, score]`);
      pairs.push([piece, id]);
    });
  } else {
    for (const [token, id] of Object.entries(asObject(vocab, 'tokenizer.json "model.vocab"'))) {
      if (!isTokenId(id)) throw new Error(`tokenizer vocab id of ${JSON.stringify(token)} is not a token id`);
      pairs.push([token, id]);
    }
  }
  return pairs;
}

function readAddedTokens(value: unknown): AddedToken[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new Error('tokenizer.json "added_tokens" is not an array');
  return value.map((entry, i) => {
    const token = asObject(entry, `tokenizer.json added_tokens[${i}]`);
    const { id, content, special } = token;
    if (!isTokenId(id) || typeof content !== 'string') {
      throw new Error(`tokenizer.json added_tokens[${i}] lacks an id or content`);
    }
    return { id, content, special: special === true };
  });
}

/**
 * The decoder as a list of per-token steps, plus whether `<0xAB>` pieces are bytes. Those are
 * converted before any step runs, wherever ByteFallback sits in the chain: in Llama-style chains it
 * follows Replace, which cannot touch a `<0x..>` piece anyway (it holds no ▁).
 */
function compileDecoder(
  value: unknown,
  modelByteFallback: boolean,
): { steps: Step[]; byteFallback: boolean } {
  const steps: Step[] = [];
  let byteFallback = modelByteFallback;
  let fused = false;
  const add = (decoder: unknown): void => {
    const config = asObject(decoder, 'tokenizer decoder');
    const type = config['type'];
    switch (type) {
      case 'Sequence': {
        const decoders = config['decoders'];
        if (!Array.isArray(decoders)) throw new Error('tokenizer Sequence decoder has no "decoders" array');
        for (const inner of decoders) add(inner);
        return;
      }
      case 'ByteLevel':
        steps.push(byteLevelStep);
        return;
      case 'Metaspace': {
        const replacement = typeof config['replacement'] === 'string' ? config['replacement'] : METASPACE;
        steps.push(replaceStep(replacement, ' '));
        return;
      }
      case 'Replace':
        steps.push(replaceStep(replacePattern(config), stringField(config, 'content')));
        return;
      case 'ByteFallback':
        byteFallback = true;
        return;
      case 'Fuse':
        // Joining tokens changes nothing per token, but what follows now sees the whole text.
        fused = true;
        return;
      case 'Strip':
        // After Fuse a Strip trims the whole text's ends (the leading space of sentencepiece's
        // first token): not applied to generated text, see tokenBytesTable.
        if (!fused) steps.push(stripStep(config));
        return;
      default:
        throw new Error(
          `unsupported tokenizer decoder type ${JSON.stringify(type)} (supported: ${SUPPORTED_DECODERS.join(', ')})`,
        );
    }
  };
  if (value === null || value === undefined) {
    throw new Error('unsupported tokenizer decoder type null (the tokenizer has no decoder)');
  }
  add(value);
  return { steps, byteFallback };
}

function stringField(config: Record<string, unknown>, key: string): string {
  const value = config[key];
  if (typeof value !== 'string')
    throw new Error(`tokenizer ${String(config['type'])} decoder lacks "${key}"`);
  return value;
}

function replacePattern(config: Record<string, unknown>): string | RegExp {
  const pattern = asObject(config['pattern'], 'tokenizer Replace decoder "pattern"');
  if (typeof pattern['String'] === 'string') return pattern['String'];
  if (typeof pattern['Regex'] === 'string') return new RegExp(pattern['Regex'], 'gu');
  throw new Error('tokenizer Replace decoder pattern is neither String nor Regex');
}

function replaceStep(pattern: string | RegExp, content: string): Step {
  return (piece) => (typeof piece === 'string' ? piece.replaceAll(pattern, content) : piece);
}

function stripStep(config: Record<string, unknown>): Step {
  const content = stringField(config, 'content');
  const start = typeof config['start'] === 'number' ? config['start'] : 0;
  const stop = typeof config['stop'] === 'number' ? config['stop'] : 0;
  return (piece) => {
    if (typeof piece !== 'string') return piece;
    const chars = Array.from(piece);
    let from = 0;
    while (from < start && from < chars.length && chars[from] === content) from++;
    let to = chars.length;
    while (chars.length - to < stop && to > from && chars[to - 1] === content) to--;
    return chars.slice(from, to).join('');
  };
}

/**
 * GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes stand for
 * themselves, the rest are shifted to U+0100 and up. Built once, inverted here.
 */
const BYTE_OF_CHAR: ReadonlyMap<string, number> = (() => {
  const map = new Map<string, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map.set(String.fromCharCode(printable ? b : 256 + shifted++), b);
  }
  return map;
})();

/**
 * ByteLevel: every character names one byte. As in Hugging Face's decoder, a token with any
 * character outside the map (an added token written as plain text) is taken as its UTF-8.
 */
function byteLevelStep(piece: Piece): Piece {
  if (typeof piece !== 'string') return piece;
  const bytes = new Uint8Array(piece.length);
  for (let i = 0; i < piece.length; i++) {
    const byte = BYTE_OF_CHAR.get(piece[i]!);
    if (byte === undefined) return utf8.encode(piece);
    bytes[i] = byte;
  }
  return bytes;
}
