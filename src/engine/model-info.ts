/**
 * What the engine knows about a model folder before it loads the ONNX session: identity
 * (manifest), shape (config.json), special tokens (generation_config.json). The session's input
 * metadata is checked against this in the worker (see `onnx-model.ts`), so a user can point the
 * engine at any decoder exported in the Hugging Face / Optimum layout.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { StartupError } from '../errors/errors.ts';
import { readManifest } from './manifest.ts';

/** Where an Optimum export keeps its merged decoder. */
export const DEFAULT_ONNX_FILE = 'onnx/decoder_model_merged.onnx';

/** Identity and shape of a model, as the engine and the replica announce it. */
export interface ModelInfo {
  id: string;
  version: string;
  dir: string;
  onnxPath: string;
  sha256: string;
  contextLength: number;
  eosTokenIds: number[];
  padTokenId: number;
  vocabSize: number;
  numLayers: number;
  /** Heads of the KV cache (fewer than attention heads in grouped-query models). */
  numKvHeads: number;
  headDim: number;
}

type Json = Record<string, unknown>;

async function readJson(dir: string, file: string, required: boolean): Promise<Json | undefined> {
  const path = join(dir, file);
  if (!existsSync(path)) {
    if (!required) return undefined;
    throw new StartupError('model_missing', `model folder ${dir} has no ${file}: is it a model folder?`);
  }
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    if (parsed === null || typeof parsed !== 'object') throw new Error('not a JSON object');
    return parsed as Json;
  } catch (err) {
    throw new StartupError('model_corrupt', `${path} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function firstInt(config: Json, keys: readonly string[]): number | undefined {
  for (const key of keys) {
    const v = config[key];
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  }
  return undefined;
}

function requireInt(config: Json, keys: readonly string[], dir: string): number {
  const v = firstInt(config, keys);
  if (v === undefined) {
    throw new StartupError(
      'model_corrupt',
      `${dir}/config.json lacks ${keys.join(' / ')} (a positive integer)`,
    );
  }
  return v;
}

function tokenIds(value: unknown): number[] {
  if (typeof value === 'number' && Number.isInteger(value)) return [value];
  if (Array.isArray(value))
    return value.filter((v): v is number => typeof v === 'number' && Number.isInteger(v));
  return [];
}

/** sha256 of a file, streamed (exported models can be large). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Reads a model folder. With a `manifest.json` (models built by this project) identity comes from
 * it and the ONNX file's sha256 is verified; without one (a user's export) the id is the folder
 * name and the version is derived from the file's hash.
 */
export async function loadModelInfo(modelDir: string, onnxFile?: string): Promise<ModelInfo> {
  const dir = resolve(modelDir);
  if (!existsSync(dir)) {
    throw new StartupError(
      'model_missing',
      `model folder ${dir} does not exist (run \`npm run setup\` to build the bundled model)`,
    );
  }
  const config = (await readJson(dir, 'config.json', true)) ?? {};
  const generation = (await readJson(dir, 'generation_config.json', false)) ?? {};
  const manifest = existsSync(join(dir, 'manifest.json')) ? await readManifest(dir) : undefined;

  const onnxPath = join(dir, onnxFile ?? manifest?.path ?? DEFAULT_ONNX_FILE);
  if (!existsSync(onnxPath)) {
    throw new StartupError(
      'model_missing',
      `ONNX file ${onnxPath} is missing (run \`npm run setup\` to build the bundled model)`,
    );
  }
  const sha256 = await sha256File(onnxPath);
  if (manifest && manifest.sha256 !== sha256 && onnxFile === undefined) {
    throw new StartupError(
      'model_corrupt',
      `ONNX file ${onnxPath} does not match its manifest (sha256 ${sha256.slice(0, 12)}…, manifest says ` +
        `${manifest.sha256.slice(0, 12)}…): the file is corrupt or was replaced; rebuild it`,
    );
  }

  const numHeads = requireInt(config, ['n_head', 'num_attention_heads'], dir);
  const hidden = requireInt(config, ['n_embd', 'hidden_size', 'd_model'], dir);
  const eos = tokenIds(generation.eos_token_id ?? config.eos_token_id);
  if (manifest) eos.splice(0, eos.length, ...manifest.eosTokenIds);
  const pad =
    manifest?.padTokenId ?? tokenIds(generation.pad_token_id ?? config.pad_token_id)[0] ?? eos[0] ?? 0;
  return {
    id: manifest?.id ?? basename(dir).replace(/[^A-Za-z0-9_-]/g, '-'),
    version: manifest?.version ?? `sha-${sha256.slice(0, 12)}`,
    dir,
    onnxPath,
    sha256,
    contextLength:
      manifest?.contextLength ?? requireInt(config, ['n_positions', 'max_position_embeddings', 'n_ctx'], dir),
    eosTokenIds: eos,
    padTokenId: pad,
    vocabSize: requireInt(config, ['vocab_size'], dir),
    numLayers: requireInt(config, ['n_layer', 'num_hidden_layers'], dir),
    numKvHeads: firstInt(config, ['num_key_value_heads']) ?? numHeads,
    headDim: firstInt(config, ['head_dim']) ?? hidden / numHeads,
  };
}
