/**
 * Checks that fail in milliseconds what would otherwise fail after a NATS connect or halfway
 * through starting a cluster: a model folder that is not there.
 */
import { existsSync, statSync } from 'node:fs';
import { isRegistryUrl, parseRegistryUrl } from '../registry/source.ts';
import { basename, isAbsolute, join, relative } from 'node:path';
import { readManifest } from '../engine/manifest.ts';
import { StartupError } from '../errors/errors.ts';
import { describeSource, type OptionSource } from '../config/option.ts';
import { BUNDLED_MODEL_DIR } from '../config/paths.ts';

/** Throws a `model_missing` start-up error that says where the path came from and what to do. */
export function checkModelDir(dir: string, source: OptionSource | undefined): void {
  if (isRegistryUrl(dir)) {
    parseRegistryUrl(dir); // its form now; the registry answers the rest when the replica starts
    return;
  }
  if (existsSync(dir) && statSync(dir).isDirectory()) return;
  if (dir === BUNDLED_MODEL_DIR) {
    throw new StartupError(
      'model_missing',
      `the bundled model is not built yet (${dir}): run \`node scripts/setup.mjs\`, or give --model DIR`,
    );
  }
  const from = source === undefined || source.kind === 'default' ? '' : ` (from ${describeSource(source)})`;
  const what = existsSync(dir) ? 'is not a folder' : 'does not exist';
  throw new StartupError(
    'model_missing',
    `model folder ${dir}${from} ${what}; give a folder in the Hugging Face / Optimum layout (config.json, tokenizer.json, onnx/)`,
  );
}

/** A path as a human reads it: relative to the working directory when it lies inside it. */
export function displayPath(path: string, cwd = process.cwd()): string {
  if (isRegistryUrl(path)) return path;
  const rel = relative(cwd, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/** `id@version` of the model in a folder, from its manifest (the folder name when it has none). */
export async function modelLabel(dir: string): Promise<string> {
  if (isRegistryUrl(dir)) return dir;
  if (!existsSync(join(dir, 'manifest.json'))) return basename(dir);
  try {
    const manifest = await readManifest(dir);
    return `${manifest.id}@${manifest.version}`;
  } catch {
    return basename(dir);
  }
}
