/**
 * Where the suite finds the repository's CLI and the bundled model, without going through
 * test/helpers: the chaos suite must run (and ship) apart from the tests.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (chaos/ sits directly under it). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The CLI every actor is started through, as a user starts it. */
export const SWITCHYARD_BIN = join(REPO_ROOT, 'bin', 'switchyard.mjs');

/** Preloaded into every actor the suite starts: answers memory questions over IPC. */
export const MEMORY_PROBE = join(REPO_ROOT, 'chaos', 'memory-probe.mjs');

/** The bundled tiny-gpt2 model folder the replicas and the reference engine load. */
export const CHAOS_MODEL_DIR = join(REPO_ROOT, 'models', 'tiny-gpt2');

/**
 * The bundled model's second version (same tokenizer, other weights, manifest version 2): what
 * the hot-swap scenario swaps to, so that tokens show which version made them.
 */
export const CHAOS_MODEL_V2_DIR = join(REPO_ROOT, 'models', 'tiny-gpt2-v2');

/** Every version of the bundled model the suite serves, references are computed for. */
export const CHAOS_MODEL_VERSION_DIRS: readonly string[] = [CHAOS_MODEL_DIR, CHAOS_MODEL_V2_DIR];

/** Thrown when the bundled model has not been built: every replica would fail to start. */
export class ModelNotBuiltError extends Error {
  constructor(dir: string) {
    super(`${dir} is not built (no manifest.json): run \`node scripts/setup.mjs\` first`);
    this.name = 'ModelNotBuiltError';
  }
}

/** `dir` when it holds a built model, else a ModelNotBuiltError that says how to build it. */
export function requireChaosModel(dir: string = CHAOS_MODEL_DIR): string {
  if (!existsSync(join(dir, 'manifest.json'))) throw new ModelNotBuiltError(dir);
  return dir;
}
