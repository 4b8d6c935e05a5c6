/**
 * Builds the bundled model `tiny-gpt2` from text and code in this repository: a byte-level BPE
 * tokenizer trained on `models/corpus`, and a GPT-2-shaped ONNX decoder with seeded weights.
 * Nothing is downloaded, the build takes seconds, and the same inputs give byte-identical files,
 * so tests and every replica of a cluster agree on the model without shipping 14 MB in git.
 *
 *   tsx models/build.ts [--out DIR] [--use-cache-branch] [--version V] [--weight-seed N]
 *                       [--context N] [--force]
 *
 * `--context N` gives the model a position table of N rows (default 512): a longer-context
 * variant of the same model for benchmarks (`bench:gpu` runs a 2048 one).
 *
 * `--all` builds the bundled variants: the model, the same model with a `use_cache_branch`
 * input, and a second version of it (other seeded weights, version 2) that hot swap and
 * rollouts are shown and tested with.
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { MANIFEST_FILE, readManifest } from '../src/engine/manifest.ts';
import type { ModelManifest } from '../src/engine/manifest.ts';
import {
  N_EMBD,
  N_HEAD,
  N_LAYER,
  N_INNER,
  N_POSITIONS,
  VOCAB_SIZE,
  LAYER_NORM_EPSILON,
} from './onnx/gpt2-graph.ts';
import { DEFAULT_WEIGHT_SEED, buildGpt2Onnx } from './onnx/gpt2-graph.ts';
import { toTokenizerJson, trainByteLevelBpe } from './tokenizer/train-bpe.ts';

export type { ModelManifest } from '../src/engine/manifest.ts';

/**
 * Bump when the output changes for a reason the input digest cannot see (a dependency that
 * changes its encoding, say). Edits to the corpus or to these sources change the digest already.
 */
export const BUILDER_VERSION = '1';
/** Model id as served. */
export const MODEL_ID = 'tiny-gpt2';
/** Version written when none is given. */
export const DEFAULT_MODEL_VERSION = '1';
/** ONNX file inside the model folder (the name transformers.js looks for with `model_file_name`). */
export const ONNX_PATH = 'onnx/decoder_model_merged.onnx';

/** Special tokens, in id order: 0 doubles as BOS, EOS and pad like GPT-2's `<|endoftext|>`. */
export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;
const ENDOFTEXT_ID = 0;
const IM_END_ID = 2;
/** A plain completion ends at `<|endoftext|>`, a chat turn at `<|im_end|>`. */
export const EOS_TOKEN_IDS = [ENDOFTEXT_ID, IM_END_ID];
/** Left padding uses `<|endoftext|>`; the attention mask hides it anyway. */
export const PAD_TOKEN_ID = ENDOFTEXT_ID;

/** ChatML, the format the special tokens were chosen for. */
export const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const MODELS_DIR = path.dirname(fileURLToPath(import.meta.url));
const CORPUS_DIR = path.join(MODELS_DIR, 'corpus');
/** Files whose content decides the output; hashed into the manifest's `builder`. */
const SOURCE_FILES = [
  'build.ts',
  '../src/engine/manifest.ts',
  'onnx/gpt2-graph.ts',
  'tokenizer/train-bpe.ts',
];
const DIGEST_HEX_CHARS = 12;

/** Where the build writes by default: next to this file, so the cwd does not matter. */
export function defaultOutDir(useCacheBranch = false): string {
  return path.join(MODELS_DIR, useCacheBranch ? 'tiny-gpt2-cache-branch' : 'tiny-gpt2');
}

/** The bundled second version: same architecture and tokenizer, other weights. */
export const SECOND_VERSION: Readonly<Required<Omit<BuildOptions, 'useCacheBranch' | 'context'>>> = {
  outDir: path.join(MODELS_DIR, 'tiny-gpt2-v2'),
  version: '2',
  weightSeed: 20261202,
};

/** Options for {@link buildModel}. */
export interface BuildOptions {
  /** Folder to write; created if missing. */
  outDir: string;
  /** Add optimum's `use_cache_branch` input. @default false */
  useCacheBranch?: boolean;
  /** Manifest `version`; weights do not depend on it. @default DEFAULT_MODEL_VERSION */
  version?: string;
  /** Seed of the random weights: another seed, another model. @default DEFAULT_WEIGHT_SEED */
  weightSeed?: number;
  /** Context length (rows of the position table). @default N_POSITIONS */
  context?: number;
}

/** The longest context `--context` accepts (the position table grows by 1 KiB per position). */
export const MAX_CONTEXT = 32768;

/** Git may check text out with CRLF; hash and train on LF so every checkout builds the same. */
const toLf = (text: string): string => text.replace(/\r\n/g, '\n');

async function readCorpus(): Promise<Array<{ name: string; text: string }>> {
  const names = (await readdir(CORPUS_DIR)).filter((n) => n.endsWith('.txt')).sort();
  if (names.length === 0) throw new Error(`${CORPUS_DIR}: no .txt files to train the tokenizer on`);
  return Promise.all(
    names.map(async (name) => ({ name, text: toLf(await readFile(path.join(CORPUS_DIR, name), 'utf8')) })),
  );
}

/** The manifest's `builder`: version, variant and a digest of every input of the build. */
async function builderId(useCacheBranch: boolean, weightSeed?: number, context?: number): Promise<string> {
  const hash = createHash('sha256');
  for (const { name, text } of await readCorpus()) hash.update(`corpus/${name}\0${text}\0`);
  for (const file of SOURCE_FILES) {
    hash.update(`${file}\0${toLf(await readFile(path.join(MODELS_DIR, file), 'utf8'))}\0`);
  }
  const seeded = weightSeed === undefined || weightSeed === DEFAULT_WEIGHT_SEED ? '' : `-seed${weightSeed}`;
  const ctx = context === undefined || context === N_POSITIONS ? '' : `-ctx${context}`;
  const variant = `${useCacheBranch ? 'cache-branch' : 'plain'}${seeded}${ctx}`;
  return `${BUILDER_VERSION}/${variant}/${hash.digest('hex').slice(0, DIGEST_HEX_CHARS)}`;
}

const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const json = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

function hfConfig(context: number): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: VOCAB_SIZE,
    n_positions: context,
    n_ctx: context,
    n_embd: N_EMBD,
    n_layer: N_LAYER,
    n_head: N_HEAD,
    n_inner: N_INNER,
    activation_function: 'gelu_new',
    layer_norm_epsilon: LAYER_NORM_EPSILON,
    bos_token_id: ENDOFTEXT_ID,
    eos_token_id: ENDOFTEXT_ID,
    pad_token_id: PAD_TOKEN_ID,
    tie_word_embeddings: true,
    use_cache: true,
    hidden_size: N_EMBD,
    num_hidden_layers: N_LAYER,
    num_attention_heads: N_HEAD,
    max_position_embeddings: context,
  };
}

function tokenizerConfig(context: number): Record<string, unknown> {
  const [eot = '', imStart = '', imEnd = ''] = SPECIAL_TOKENS;
  const decoder: Record<string, unknown> = {};
  SPECIAL_TOKENS.forEach((content, id) => {
    decoder[String(id)] = {
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  });
  return {
    tokenizer_class: 'GPT2Tokenizer',
    model_max_length: context,
    add_prefix_space: false,
    add_bos_token: false,
    // Exact round trips: the default clean-up rewrites " ." and " 's" in decoded text.
    clean_up_tokenization_spaces: false,
    bos_token: eot,
    eos_token: eot,
    pad_token: eot,
    unk_token: eot,
    additional_special_tokens: [imStart, imEnd],
    added_tokens_decoder: decoder,
    chat_template: CHAT_TEMPLATE,
  };
}

/** Every file of the folder except the manifest, by relative path. */
async function renderFiles(
  useCacheBranch: boolean,
  weightSeed: number | undefined,
  context: number,
): Promise<Map<string, Uint8Array | string>> {
  const corpus = (await readCorpus()).map((f) => f.text).join('\n');
  const bpe = trainByteLevelBpe(corpus, { vocabSize: VOCAB_SIZE, specialTokens: SPECIAL_TOKENS });
  const [eot = '', imStart = '', imEnd = ''] = SPECIAL_TOKENS;
  return new Map<string, Uint8Array | string>([
    ['config.json', json(hfConfig(context))],
    [
      'generation_config.json',
      json({ bos_token_id: ENDOFTEXT_ID, eos_token_id: EOS_TOKEN_IDS, pad_token_id: PAD_TOKEN_ID }),
    ],
    ['tokenizer.json', json(toTokenizerJson(bpe))],
    ['tokenizer_config.json', json(tokenizerConfig(context))],
    [
      'special_tokens_map.json',
      json({
        bos_token: eot,
        eos_token: eot,
        pad_token: eot,
        unk_token: eot,
        additional_special_tokens: [imStart, imEnd],
      }),
    ],
    // Only the hand-bumped version goes into the ONNX file, so its sha256 moves when the graph
    // or weights do and not when a comment in these sources changes.
    [
      ONNX_PATH,
      buildGpt2Onnx({
        useCacheBranch,
        producerVersion: BUILDER_VERSION,
        positions: context,
        ...(weightSeed !== undefined ? { seed: weightSeed } : {}),
      }),
    ],
  ]);
}

/**
 * Builds the model folder and returns its manifest. The manifest is deleted first and written
 * last, so a folder with a manifest is always complete even if a build was interrupted.
 */
export async function buildModel(opts: BuildOptions): Promise<ModelManifest> {
  const useCacheBranch = opts.useCacheBranch ?? false;
  const context = opts.context ?? N_POSITIONS;
  const builder = await builderId(useCacheBranch, opts.weightSeed, opts.context);
  const files = await renderFiles(useCacheBranch, opts.weightSeed, context);
  await mkdir(path.join(opts.outDir, path.dirname(ONNX_PATH)), { recursive: true });
  await rm(path.join(opts.outDir, MANIFEST_FILE), { force: true });
  for (const [rel, data] of files) await writeFile(path.join(opts.outDir, rel), data);
  const onnxBytes = files.get(ONNX_PATH);
  if (!(onnxBytes instanceof Uint8Array)) throw new Error('internal: ONNX bytes missing');
  const manifest: ModelManifest = {
    id: MODEL_ID,
    version: opts.version ?? DEFAULT_MODEL_VERSION,
    path: ONNX_PATH,
    sha256: sha256Hex(onnxBytes),
    contextLength: context,
    eosTokenIds: EOS_TOKEN_IDS,
    padTokenId: PAD_TOKEN_ID,
    vocabSize: VOCAB_SIZE,
    builder,
  };
  await writeFile(path.join(opts.outDir, MANIFEST_FILE), json(manifest));
  return manifest;
}

/**
 * The folder's manifest when it is what {@link buildModel} would write now (same builder, same
 * version, ONNX file intact), else undefined. Lets `npm test` skip a rebuild in milliseconds.
 */
export async function upToDateManifest(opts: BuildOptions): Promise<ModelManifest | undefined> {
  let manifest: ModelManifest;
  try {
    manifest = await readManifest(opts.outDir);
  } catch {
    return undefined;
  }
  const builder = await builderId(opts.useCacheBranch ?? false, opts.weightSeed, opts.context);
  if (manifest.builder !== builder || manifest.version !== (opts.version ?? DEFAULT_MODEL_VERSION))
    return undefined;
  try {
    const onnxBytes = await readFile(path.join(opts.outDir, manifest.path));
    return sha256Hex(onnxBytes) === manifest.sha256 ? manifest : undefined;
  } catch {
    return undefined;
  }
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      'use-cache-branch': { type: 'boolean', default: false },
      version: { type: 'string' },
      'weight-seed': { type: 'string' },
      context: { type: 'string' },
      force: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.all) {
    // Both bundled variants in one process (the set-up script's call): cheap when up to date.
    for (const variant of [false, true]) {
      await buildOne({ outDir: defaultOutDir(variant), useCacheBranch: variant }, values.force);
    }
    await buildOne(SECOND_VERSION, values.force);
    return;
  }
  const useCacheBranch = values['use-cache-branch'];
  const opts: BuildOptions = {
    outDir: values.out !== undefined ? path.resolve(values.out) : defaultOutDir(useCacheBranch),
    useCacheBranch,
    ...(values.version !== undefined ? { version: values.version } : {}),
    ...(values['weight-seed'] !== undefined ? { weightSeed: seedOf(values['weight-seed']) } : {}),
    ...(values.context !== undefined ? { context: contextOf(values.context) } : {}),
  };
  await buildOne(opts, values.force);
}

function contextOf(text: string): number {
  const context = Number(text);
  if (!Number.isSafeInteger(context) || context < 8 || context > MAX_CONTEXT) {
    throw new Error(`--context must be an integer in [8, ${MAX_CONTEXT}], got '${text}'`);
  }
  return context;
}

function seedOf(text: string): number {
  const seed = Number(text);
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new Error(`--weight-seed must be an integer in [0, 2^32), got '${text}'`);
  }
  return seed;
}

async function buildOne(opts: BuildOptions, force: boolean): Promise<void> {
  const started = performance.now();
  const current = force ? undefined : await upToDateManifest(opts);
  if (current !== undefined) {
    console.log(`${opts.outDir}: up to date (builder ${current.builder})`);
    return;
  }
  const manifest = await buildModel(opts);
  const ms = Math.round(performance.now() - started);
  console.log(
    `${opts.outDir}: built ${manifest.id}@${manifest.version} sha256 ${manifest.sha256} in ${ms} ms`,
  );
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(realpathSync(path.resolve(entry))).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
