/**
 * The manifest that sits next to a built model. The engine trusts nothing else about a model
 * folder: it reads the manifest, checks the ONNX file against `sha256`, and takes context length,
 * EOS and pad ids from here instead of re-deriving them from Hugging Face configs.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** File name of the manifest inside a model folder. */
export const MANIFEST_FILE = 'manifest.json';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** What a replica needs to know to load and serve one model version. */
export interface ModelManifest {
  /** Model id as clients name it (`model` in the OpenAI API). */
  id: string;
  /** Version of this model id; rollouts move traffic between versions. */
  version: string;
  /** ONNX file, relative to the model folder (forward slashes, no `..`). */
  path: string;
  /** Lowercase hex SHA-256 of the ONNX file, so a replica can refuse a corrupt or swapped file. */
  sha256: string;
  /** Largest past + new token count the model accepts (its position table size). */
  contextLength: number;
  /** Token ids that end a generation. */
  eosTokenIds: number[];
  /** Token id used to left-pad batched prompts. */
  padTokenId: number;
  /** Number of rows in the logits' last axis. */
  vocabSize: number;
  /** Identifies the builder and its inputs; a changed value means the folder must be rebuilt. */
  builder: string;
}

function fail(file: string, field: string, why: string): never {
  throw new Error(`${file}: field "${field}" ${why}`);
}

function requireString(obj: Record<string, unknown>, field: string, file: string): string {
  const value = obj[field];
  if (typeof value !== 'string' || value.length === 0) fail(file, field, 'must be a non-empty string');
  return value;
}

function requireInt(obj: Record<string, unknown>, field: string, file: string, min: number): number {
  const value = obj[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    fail(file, field, `must be an integer >= ${min}`);
  }
  return value;
}

/**
 * Validates a parsed manifest. Separate from {@link readManifest} so callers that receive a
 * manifest over the wire (the registry) apply the same rules as callers that read it from disk.
 * @param source names the origin in error messages (a file path or a subject).
 */
export function parseManifest(value: unknown, source: string): ModelManifest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${source}: must be a JSON object`);
  }
  const obj = value as Record<string, unknown>;
  const id = requireString(obj, 'id', source);
  const version = requireString(obj, 'version', source);
  const modelPath = requireString(obj, 'path', source);
  if (path.isAbsolute(modelPath) || modelPath.includes('\\') || modelPath.split('/').includes('..')) {
    fail(source, 'path', 'must be a relative path with forward slashes and no ".."');
  }
  const sha256 = requireString(obj, 'sha256', source);
  if (!SHA256_HEX.test(sha256)) fail(source, 'sha256', 'must be 64 lowercase hex digits');
  const contextLength = requireInt(obj, 'contextLength', source, 1);
  const vocabSize = requireInt(obj, 'vocabSize', source, 1);
  const padTokenId = requireInt(obj, 'padTokenId', source, 0);
  if (padTokenId >= vocabSize) fail(source, 'padTokenId', `must be below vocabSize (${vocabSize})`);
  const eos = obj['eosTokenIds'];
  if (!Array.isArray(eos) || eos.length === 0) fail(source, 'eosTokenIds', 'must be a non-empty array');
  const eosTokenIds = eos.map((id: unknown) => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id >= vocabSize) {
      fail(source, 'eosTokenIds', `must hold integers in [0, ${vocabSize})`);
    }
    return id;
  });
  const builder = requireString(obj, 'builder', source);
  return { id, version, path: modelPath, sha256, contextLength, eosTokenIds, padTokenId, vocabSize, builder };
}

/**
 * Reads and validates `<dir>/manifest.json`. Every failure (missing file, bad JSON, bad field)
 * is an Error that names the file, so an operator can fix a model folder without a debugger.
 */
export async function readManifest(dir: string): Promise<ModelManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new Error(`${file}: cannot read model manifest`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new Error(`${file}: not valid JSON`, { cause });
  }
  return parseManifest(json, file);
}
