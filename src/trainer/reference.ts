/**
 * The reference trainer: fine-tunes the output layer of a model folder on an SFT export, in
 * TypeScript, behind the trainer interface of `protocol.ts` (so `switchyard train` drives it as
 * it would drive any other trainer). The model's body is frozen; its head is untied from the
 * token embeddings (a new `lm_head.weight` and `lm_head.bias`, initialised from the tied head) and
 * trained with Adam on the completion tokens of the training split. The held-out split is scored
 * with the engine's forward pass for the base and the trained folder (`engine/token-loss.ts`).
 */
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MODEL_VERSION_PATTERN } from '../cluster/subjects.ts';
import { MANIFEST_FILE, readManifest, type ModelManifest } from '../engine/manifest.ts';
import { loadModelInfo, sha256File } from '../engine/model-info.ts';
import { meanTokenLoss } from '../engine/token-loss.ts';
import { ModelTokenizer } from '../engine/tokenizer.ts';
import { StartupError } from '../errors/errors.ts';
import { VERSION_MANIFEST_FILE, type VersionLineage } from '../registry/version-manifest.ts';
import { isHeldOut, readSftDataset, toExample, type Example } from './examples.ts';
import { targetFeatures } from './features.ts';
import { DEFAULT_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULT_SEED, fitHead, type FitOptions } from './fit.ts';
import { readOutputHead, withHiddenOutput, withUntiedHead } from './onnx-head.ts';

/** What the reference trainer writes beside the model: how it was trained and what it measured. */
export const TRAINING_FILE = 'training.json';
/** What the trainer records as itself in lineage. */
export const REFERENCE_TRAINER_NAME = 'switchyard train-reference (output layer, Adam)';

/** One training run. */
export interface ReferenceTrainingOptions extends Omit<FitOptions, 'onStep'> {
  /** The dataset's manifest.json. */
  dataset: string;
  /** The base model folder. */
  base: string;
  /** The folder to write (missing or empty). */
  out: string;
  /** @default `<base version>-ft-<first 8 hex of the dataset manifest's sha256>` */
  version?: string;
  onProgress?: FitOptions['onStep'];
  /** Called when a phase begins (features, fit, scoring), for log lines. */
  onPhase?: (text: string) => void;
}

/** What `<out>/training.json` holds (and the result line carries). */
export interface TrainingSummary {
  model: string;
  base_version: string;
  version: string;
  dataset_sha256: string;
  examples: number;
  train_examples: number;
  heldout_examples: number;
  train_tokens: number;
  heldout_tokens: number;
  epochs: number;
  steps: number;
  learning_rate: number;
  seed: number;
  /** The output layer no longer shares the token embeddings' weights. */
  untied: true;
  train_loss: number;
  base_heldout_loss: number;
  trained_heldout_loss: number;
  lineage: VersionLineage;
  duration_ms: number;
}

/** The default version of a trained model (kept within the version pattern's 64 characters). */
export function trainedVersion(baseVersion: string, datasetSha256: string): string {
  const suffix = `-ft-${datasetSha256.slice(0, 8)}`;
  return `${baseVersion.slice(0, 64 - suffix.length)}${suffix}`;
}

async function emptyOrMissing(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) return;
  if (!info.isDirectory() || (await readdir(dir)).length > 0)
    throw new StartupError('config', `--out ${dir} exists and is not an empty folder; give a new folder`);
}

/** Copies the base folder's files except its manifests and the ONNX file (written anew). */
async function copyBase(base: string, out: string, skip: ReadonlySet<string>, rel = ''): Promise<void> {
  for (const entry of await readdir(join(base, rel), { withFileTypes: true })) {
    const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (skip.has(child)) continue;
    if (entry.isDirectory()) {
      await mkdir(join(out, child), { recursive: true });
      await copyBase(base, out, skip, child);
    } else if (entry.isFile()) await copyFile(join(base, child), join(out, child));
  }
}

/** Runs one training (see the module comment) and returns its summary. */
export async function trainReference(opts: ReferenceTrainingOptions): Promise<TrainingSummary> {
  const started = Date.now();
  const phase = opts.onPhase ?? (() => {});
  await emptyOrMissing(opts.out);
  const info = await loadModelInfo(opts.base);
  const baseManifest: ModelManifest = await readManifest(opts.base);
  const tokenizer = await ModelTokenizer.load(opts.base);
  const dataset = await readSftDataset(opts.dataset);
  const version = opts.version ?? trainedVersion(baseManifest.version, dataset.manifestSha256);
  if (!MODEL_VERSION_PATTERN.test(version) || version.startsWith('.') || version.includes('..'))
    throw new StartupError('config', `--version '${version}' must match [A-Za-z0-9._-]{1,64}`);
  if (version === baseManifest.version)
    throw new StartupError(
      'config',
      `--version ${version} is the base's version; a trained model needs another`,
    );

  const examples: Example[] = [];
  for (const line of dataset.lines) {
    const ex = toExample(line, tokenizer, info.eosTokenIds);
    if (ex !== undefined && ex.promptIds.length + ex.targetIds.length <= info.contextLength)
      examples.push(ex);
  }
  const heldout = examples.filter((e) => isHeldOut(e.prompt));
  const train = examples.filter((e) => !isHeldOut(e.prompt));
  if (train.length === 0 || heldout.length === 0) {
    throw new StartupError(
      'config',
      `dataset ${opts.dataset}: ${examples.length} usable SFT example(s) give ${train.length} to train on and ` +
        `${heldout.length} held out; export more (one prompt in five, by hash, is held out)`,
    );
  }

  phase(`features: ${train.length} training examples through the frozen model`);
  const onnxBytes = await readFile(info.onnxPath);
  const head = readOutputHead(onnxBytes, info.onnxPath);
  const features = await targetFeatures(withHiddenOutput(head), info, head.nEmbd, train);
  const weight = Float32Array.from(head.weight);
  const bias = Float32Array.from(head.bias);
  const epochs = opts.epochs ?? DEFAULT_EPOCHS;
  phase(`fit: ${features.rows} target tokens, ${epochs} epoch(s)`);
  const fitted = fitHead(features, weight, bias, {
    ...opts,
    epochs,
    ...(opts.onProgress !== undefined ? { onStep: opts.onProgress } : {}),
  });

  const onnxRel = baseManifest.path;
  await mkdir(join(opts.out, dirname(onnxRel)), { recursive: true });
  await copyBase(
    opts.base,
    opts.out,
    new Set([MANIFEST_FILE, VERSION_MANIFEST_FILE, TRAINING_FILE, onnxRel]),
  );
  const onnxOut = join(opts.out, onnxRel);
  await writeFile(onnxOut, withUntiedHead(head, weight, bias));
  const configPath = join(opts.out, 'config.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
  await writeFile(configPath, `${JSON.stringify({ ...config, tie_word_embeddings: false }, null, 2)}\n`);
  const lineage: VersionLineage = {
    parent: baseManifest.version,
    dataset: dataset.manifestSha256,
    trainer: REFERENCE_TRAINER_NAME,
  };
  const manifest = {
    ...baseManifest,
    version,
    sha256: await sha256File(onnxOut),
    builder: `${baseManifest.builder}+head-ft/${dataset.manifestSha256.slice(0, 12)}`,
    lineage,
  };
  await writeFile(join(opts.out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);

  phase(`scoring: ${heldout.length} held-out examples with the engine, base and trained`);
  const baseLoss = await meanTokenLoss(opts.base, heldout);
  const trainedLoss = await meanTokenLoss(opts.out, heldout);
  const summary: TrainingSummary = {
    model: baseManifest.id,
    base_version: baseManifest.version,
    version,
    dataset_sha256: dataset.manifestSha256,
    examples: examples.length,
    train_examples: train.length,
    heldout_examples: heldout.length,
    train_tokens: features.rows,
    heldout_tokens: baseLoss.tokens,
    epochs,
    steps: fitted.steps,
    learning_rate: opts.learningRate ?? DEFAULT_LEARNING_RATE,
    seed: opts.seed ?? DEFAULT_SEED,
    untied: true,
    train_loss: fitted.lastEpochLoss,
    base_heldout_loss: baseLoss.loss,
    trained_heldout_loss: trainedLoss.loss,
    lineage,
    duration_ms: Date.now() - started,
  };
  await writeFile(join(opts.out, TRAINING_FILE), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
