/** Paths of the bundled models (built by `scripts/setup.mjs` before the tests run). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The bundled tiny-gpt2 model folder. */
export const TINY_MODEL = join(ROOT, 'models', 'tiny-gpt2');

/** The same model exported with a `use_cache_branch` input, as Optimum's merged decoders have. */
export const TINY_MODEL_CACHE_BRANCH = join(ROOT, 'models', 'tiny-gpt2-cache-branch');

/** Fails loudly when the set-up has not run, instead of letting every test time out. */
export function requireModel(dir: string): string {
  if (!existsSync(join(dir, 'manifest.json'))) {
    throw new Error(`${dir} is not built: run \`node scripts/setup.mjs\` (npm test does) first`);
  }
  return dir;
}

/** Engine settings for tests: one intra-op thread so that tests hold on 2 cores. */
export const TEST_THREADS = { intraOpThreads: 1, interOpThreads: 1 } as const;

/** The bundled second version (other weights, version 2): what hot swap tests swap to. */
export const TINY_MODEL_V2 = join(ROOT, 'models', 'tiny-gpt2-v2');
