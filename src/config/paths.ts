/** Paths inside the switchyard checkout, found from this file so they hold from any working directory. */
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the switchyard checkout (or installed package). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The bundled tiny-gpt2 model that `scripts/setup.mjs` builds: the default model, so `up` works with no flags. */
export const BUNDLED_MODEL_DIR = join(REPO_ROOT, 'models', 'tiny-gpt2');

/** How docs and help name the bundled model (the absolute path differs per machine). */
export const BUNDLED_MODEL_TEXT = 'models/tiny-gpt2 (bundled)';

/** Environment variable naming the replicas' model cache. */
export const MODEL_CACHE_ENV = 'SWITCHYARD_MODEL_CACHE';

/**
 * Where replicas cache registry versions by digest: `$SWITCHYARD_MODEL_CACHE`, else
 * `$XDG_CACHE_HOME/switchyard/models`, else `~/.cache/switchyard/models`.
 */
export function defaultModelCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const set = env[MODEL_CACHE_ENV];
  if (set) return set;
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'switchyard', 'models');
}
