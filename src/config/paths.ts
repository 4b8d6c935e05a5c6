/** Paths inside the switchyard checkout, found from this file so they hold from any working directory. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the switchyard checkout (or installed package). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The bundled tiny-gpt2 model that `scripts/setup.mjs` builds: the default model, so `up` works with no flags. */
export const BUNDLED_MODEL_DIR = join(REPO_ROOT, 'models', 'tiny-gpt2');

/** How docs and help name the bundled model (the absolute path differs per machine). */
export const BUNDLED_MODEL_TEXT = 'models/tiny-gpt2 (bundled)';
