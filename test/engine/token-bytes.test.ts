import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Tokenizer as UntypedTokenizer } from '@huggingface/tokenizers';

import { tokenBytesTable } from '../../src/engine/token-bytes.ts';
import { TINY_MODEL } from '../helpers/models.ts';

/**
 * The reference tokenizer (the implementation transformers.js v4 uses). Its published .d.ts files
 * use extensionless relative imports that NodeNext resolution cannot follow, so the little of its
 * API used here is typed by hand.
 */
interface ReferenceTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(
    ids: number[],
    options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean },
  ): string;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
}
const Tokenizer = UntypedTokenizer as unknown as new (
  tokenizerJson: object,
  config: object,
) => ReferenceTokenizer;

const utf8 = new TextEncoder();
const BUNDLED_TOKENIZER = join(TINY_MODEL, 'tokenizer.json');

/** GPT-2's byte → character table, written out here independently of the module under test. */
function gpt2ByteChars(): string[] {
  const chars: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(String.fromCodePoint(printable ? b : 256 + shifted++));
  }
  return chars;
}

function concat(table: readonly Uint8Array[], ids: readonly number[]): Uint8Array {
  const out: number[] = [];
  for (const id of ids) out.push(...table[id]!);
  return Uint8Array.from(out);
}

function decodeIds(table: readonly Uint8Array[], ids: readonly number[]): string {
  return new TextDecoder().decode(concat(table, ids));
}

/** A GPT-2-style tokenizer.json: 256 byte tokens after three special ones, a few merges, gaps. */
function gpt2Fixture(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  gpt2ByteChars().forEach((c, b) => (vocab[c] = 3 + b));
  const words = ['Ġw', 'Ġwor', 'ld', 'Ġworld', 'Ã©', 'âĺ', 'âĺĥ', 'ĊĊ'];
  words.forEach((w, i) => (vocab[w] = 259 + i));
  const merges = ['Ġ w', 'Ġw o', 'Ġwo r', 'l d', 'Ġwor ld', 'Ã ©', 'â ĺ', 'âĺ ĥ', 'Ċ Ċ'];
  vocab['Ġwo'] = 270;
  return {
    version: '1.0',
    added_tokens: [
      { id: 0, content: '<|endoftext|>', special: true },
      { id: 1, content: '<|im_start|>', special: true },
      { id: 2, content: '<|im_end|>', special: true },
      { id: 280, content: '<tool call>', special: false },
      { id: 281, content: 'naïve', special: false },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', vocab, merges, byte_fallback: false },
  };
}

/** A Llama-style sentencepiece BPE: ▁ words, <0xAB> byte fallback, Replace/ByteFallback/Fuse/Strip. */
function llamaFixture(): Record<string, unknown> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  ['▁', '▁Hello', 'world', '▁world', 'é', '▁▁', 'x'].forEach((p, i) => (vocab[p] = 259 + i));
  return {
    version: '1.0',
    added_tokens: [
      { id: 0, content: '<unk>', special: true },
      { id: 1, content: '<s>', special: true },
      { id: 2, content: '</s>', special: true },
    ],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: { type: 'BPE', vocab, merges: [], byte_fallback: true, unk_token: '<unk>', fuse_unk: true },
  };
}

describe('tokenBytesTable: byte-level BPE', () => {
  it('maps byte-level tokens to their exact bytes, special tokens to none', () => {
    const table = tokenBytesTable(gpt2Fixture());
    assert.equal(table.length, 282);
    const byId = (token: string): Uint8Array => {
      const vocab = (gpt2Fixture()['model'] as { vocab: Record<string, number> }).vocab;
      return table[vocab[token]!]!;
    };
    assert.deepEqual(byId('Ġworld'), utf8.encode(' world'));
    assert.deepEqual(byId('Ã©'), Uint8Array.of(0xc3, 0xa9));
    assert.deepEqual(byId('âĺ'), Uint8Array.of(0xe2, 0x98), 'two thirds of a snowman');
    assert.deepEqual(byId('ĊĊ'), utf8.encode('\n\n'));
    assert.deepEqual(byId('Ā'), Uint8Array.of(0x00));
    for (let b = 0; b < 256; b++) assert.deepEqual(table[3 + b], Uint8Array.of(b), `byte token ${b}`);
    assert.equal(table[0]!.length, 0);
    assert.equal(table[2]!.length, 0);
    assert.equal(table[275]!.length, 0, 'an unused id contributes nothing');
    assert.deepEqual(table[280], utf8.encode('<tool call>'));
    assert.deepEqual(table[281], utf8.encode('naïve'), 'non-special added tokens are their UTF-8 content');
  });

  it('agrees with the tokenizer on encode → bytes → text', () => {
    const json = gpt2Fixture();
    const tokenizer = new Tokenizer(json, {});
    const table = tokenBytesTable(json);
    for (const text of ['Hello world', ' world\n\nworld', 'café ☃ 😀', 'naïve <tool call> x']) {
      const { ids } = tokenizer.encode(text, { add_special_tokens: false });
      assert.equal(decodeIds(table, ids), text);
    }
    assert.deepEqual(tokenizer.encode(' world').ids, [262], 'the fixture merges as intended');
  });

  it('matches the bundled tiny-gpt2 tokenizer', { skip: !existsSync(BUNDLED_TOKENIZER) }, () => {
    const json = JSON.parse(readFileSync(BUNDLED_TOKENIZER, 'utf8')) as object;
    const config = JSON.parse(readFileSync(join(TINY_MODEL, 'tokenizer_config.json'), 'utf8')) as object;
    const tokenizer = new Tokenizer(json, config);
    const table = tokenBytesTable(json);
    assert.equal(table.length, tokenizer.get_vocab(true).size);
    const texts = [
      'The quick brown fox jumps over the lazy dog.',
      '  leading spaces, tabs\tand\nnew\r\nlines  ',
      'Unicode: café, naïve, 日本語, ☃, 😀👍🏽, Ω≈ç√',
      'It\'s 3.14159 — numbers & symbols: {"a": [1, 2]} <|im_start|>user',
    ];
    for (const text of texts) {
      const { ids } = tokenizer.encode(text, { add_special_tokens: false });
      const specials = new Set([0, 1, 2]);
      const expected = tokenizer.decode(ids, {
        skip_special_tokens: true,
        clean_up_tokenization_spaces: false,
      });
      assert.equal(decodeIds(table, ids), expected);
      if (!ids.some((id) => specials.has(id))) assert.equal(decodeIds(table, ids), text);
    }
    // Arbitrary id sequences, including ones that are not valid UTF-8 on their own.
    let s = 12345;
    for (let trial = 0; trial < 200; trial++) {
      const ids = Array.from({ length: 8 }, () => {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        return 3 + (s % (table.length - 3));
      });
      const expected = tokenizer.decode(ids, {
        skip_special_tokens: true,
        clean_up_tokenization_spaces: false,
      });
      assert.equal(decodeIds(table, ids), expected, `ids ${ids.join(',')}`);
    }
  });
});

describe('tokenBytesTable: sentencepiece', () => {
  it('maps ▁ to a space and <0xAB> pieces to bytes, keeping the leading space', () => {
    const json = llamaFixture();
    const table = tokenBytesTable(json);
    const vocab = (json['model'] as { vocab: Record<string, number> }).vocab;
    assert.equal(table.length, 266);
    assert.deepEqual(table[vocab['▁Hello']!], utf8.encode(' Hello'), 'not stripped: text continues a prompt');
    assert.deepEqual(table[vocab['▁▁']!], utf8.encode('  '));
    assert.deepEqual(table[vocab['<0x0A>']!], Uint8Array.of(0x0a));
    assert.deepEqual(table[vocab['<0xE2>']!], Uint8Array.of(0xe2));
    assert.deepEqual(table[vocab['é']!], utf8.encode('é'));
    assert.equal(table[1]!.length, 0);

    // Against the reference decoder: after a first token without ▁, its Strip changes nothing.
    const tokenizer = new Tokenizer(json, {});
    const snowman = [0xe2, 0x98, 0x83].map((b) => 3 + b);
    const ids = [vocab['world']!, vocab['▁Hello']!, ...snowman, vocab['▁world']!, 3 + 0x0a, vocab['é']!, 2];
    const expected = tokenizer.decode(ids, { skip_special_tokens: true });
    assert.equal(expected, 'world Hello☃ world\né');
    assert.equal(decodeIds(table, ids), expected);
  });

  it('supports a Metaspace decoder over a Unigram vocabulary with byte fallback', () => {
    const table = tokenBytesTable({
      added_tokens: [{ id: 0, content: '<pad>', special: true }],
      decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      model: {
        type: 'Unigram',
        byte_fallback: true,
        vocab: [
          ['<pad>', 0],
          ['▁the', -1],
          ['ing', -2],
          ['<0xF0>', -3],
        ],
      },
    });
    assert.equal(table.length, 4);
    assert.equal(table[0]!.length, 0);
    assert.deepEqual(table[1], utf8.encode(' the'));
    assert.deepEqual(table[2], utf8.encode('ing'));
    assert.deepEqual(table[3], Uint8Array.of(0xf0));
  });
});

describe('tokenBytesTable: unsupported tokenizers', () => {
  it('names the decoder type it cannot handle', () => {
    const json = gpt2Fixture();
    assert.throws(
      () => tokenBytesTable({ ...json, decoder: { type: 'WordPiece', prefix: '##' } }),
      /WordPiece/,
    );
    assert.throws(
      () => tokenBytesTable({ ...json, decoder: { type: 'Sequence', decoders: [{ type: 'CTC' }] } }),
      /"CTC"/,
    );
    assert.throws(() => tokenBytesTable({ ...json, decoder: null }), /decoder type null/);
    assert.throws(() => tokenBytesTable({ ...json, model: { type: 'WordPiece', vocab: {} } }), /WordPiece/);
    assert.throws(() => tokenBytesTable('not a tokenizer'), /not an object/);
  });
});
