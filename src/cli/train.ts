/**
 * `switchyard train`: runs a trainer command behind the trainer interface (src/trainer/protocol.ts,
 * docs/training.md) and checks what it leaves. The base may be a registry URL, fetched into the
 * model cache first. Progress goes to stderr (a bar on a terminal, plain lines otherwise); the
 * summary to stdout (one JSON document with `--json`).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { connectNats } from '../cluster/connection.ts';
import { resolveTrainConfig } from '../config/actors.ts';
import { subcommandHelp } from '../config/help.ts';
import { REPO_ROOT } from '../config/paths.ts';
import { TRAIN_TABLE } from '../config/train-table.ts';
import type { ConnectionOptions } from '../cluster/connection.ts';
import { readManifest, type ModelManifest } from '../engine/manifest.ts';
import { loadModelInfo } from '../engine/model-info.ts';
import { StartupError, TrainingError } from '../errors/errors.ts';
import { defaultModelCacheDir } from '../registry/cache.ts';
import { isRegistryUrl, parseRegistryUrl, resolveModel } from '../registry/source.ts';
import { parseTrainerLine, type TrainerProgress } from '../trainer/protocol.ts';
import { operatorConnection } from './local-up.ts';

/** stderr lines of a failed trainer quoted in the error. */
export const TRAINER_STDERR_TAIL = 12;

/** The default trainer: the reference trainer, run as a command so the interface is exercised. */
export function defaultTrainerCommand(): string {
  return `${shellQuote(process.execPath)} ${shellQuote(join(REPO_ROOT, 'bin', 'switchyard.mjs'))} train-reference`;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** What one training run needs. */
export interface TrainingRun {
  /** The dataset's manifest.json. */
  dataset: string;
  /** The base model folder (local: resolve a registry URL with {@link resolveBase} first). */
  base: string;
  out: string;
  /** A shell command; @default {@link defaultTrainerCommand} */
  trainer?: string;
  version?: string;
  /** Where progress and log lines go. @default a bar or lines on stderr */
  display?: TrainingDisplay;
}

/** What a finished run left. */
export interface TrainingOutcome {
  out: string;
  manifest: ModelManifest;
  baseManifest: ModelManifest;
  /** The trainer's `result` line, or undefined when it wrote none. */
  result: Record<string, unknown> | undefined;
  durationMs: number;
}

/** Where a run's progress goes. */
export interface TrainingDisplay {
  progress(p: TrainerProgress): void;
  log(line: string): void;
  /** Called once the trainer has exited. */
  done(): void;
}

/** A bar on a terminal (redrawn in place), plain lines otherwise. */
export function stderrDisplay(stream: NodeJS.WriteStream = process.stderr): TrainingDisplay {
  const tty = stream.isTTY === true;
  let drawn = false;
  const loss = (p: TrainerProgress): string =>
    typeof p.loss === 'number' ? ` loss ${p.loss.toFixed(4)}` : '';
  return {
    progress(p) {
      if (!tty) {
        stream.write(`train: step ${p.step}/${p.steps}${loss(p)}\n`);
        return;
      }
      const width = 30;
      const filled = Math.max(0, Math.min(width, Math.round((p.step / Math.max(1, p.steps)) * width)));
      stream.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.step}/${p.steps}${loss(p)}\x1b[K`,
      );
      drawn = true;
    },
    log(line) {
      stream.write(`${drawn ? '\n' : ''}${line}\n`);
      drawn = false;
    },
    done() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}

/** Resolves `--base`: a folder as it is, a registry URL fetched into the model cache. */
export async function resolveBase(
  base: string,
  nats: ConnectionOptions,
  timeoutMs: number,
  say: (line: string) => void,
): Promise<string> {
  if (!isRegistryUrl(base)) return resolve(base);
  const url = parseRegistryUrl(base);
  const nc = await connectNats({ name: 'switchyard-train', ...operatorConnection('train', nats, say) });
  try {
    const got = await resolveModel({ nc, url, cacheDir: defaultModelCacheDir(), timeoutMs });
    say(
      `train: ${base} is ${got.id}@${got.version}${got.fromCache ? ' (from the cache: the registry did not answer)' : ''} in ${got.dir}`,
    );
    return got.dir;
  } finally {
    await nc.close();
  }
}

/** Checks that `out` is a model folder the engine loads, of another version than the base. */
export async function validateTrainedFolder(
  out: string,
  baseManifest: ModelManifest,
): Promise<ModelManifest> {
  const bad = (why: string, cause?: unknown): TrainingError =>
    new TrainingError('bad_output', `the trainer exited 0 but ${out} ${why}`, 0, { cause });
  let manifest: ModelManifest;
  try {
    manifest = await readManifest(out);
    await loadModelInfo(out); // the ONNX file exists and matches the manifest's sha256; config.json is sound
  } catch (err) {
    throw bad(`is not a model folder the engine can load: ${(err as Error).message}`, err);
  }
  for (const file of ['tokenizer.json', 'tokenizer_config.json', 'config.json'])
    if (!existsSync(join(out, file))) throw bad(`has no ${file}`);
  if (manifest.version === baseManifest.version)
    throw bad(`keeps the base's version (${manifest.version}); a trained model needs a new one`);
  return manifest;
}

/** Runs the trainer (see the module comment) and validates its output. */
export async function runTraining(run: TrainingRun): Promise<TrainingOutcome> {
  const started = Date.now();
  const dataset = resolve(run.dataset);
  const base = resolve(run.base);
  const out = resolve(run.out);
  let baseManifest: ModelManifest;
  try {
    baseManifest = await readManifest(base);
  } catch (err) {
    throw new StartupError('model_missing', `--base ${base}: ${(err as Error).message}`, { cause: err });
  }
  if (!existsSync(dataset)) throw new StartupError('config', `--dataset ${dataset} does not exist`);
  const display = run.display ?? stderrDisplay();
  const command = run.trainer ?? defaultTrainerCommand();
  const args = ['--dataset', dataset, '--base', base, '--out', out];
  if (run.version !== undefined) args.push('--version', run.version);
  // `sh -c '<command> "$@"'`: the command may hold its own arguments; ours travel unquoted-safe.
  const child = spawn('/bin/sh', ['-c', `${command} "$@"`, 'trainer', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  let result: Record<string, unknown> | undefined;
  const stdout = createInterface({ input: child.stdout });
  stdout.on('line', (line) => {
    const parsed = parseTrainerLine(line);
    if (parsed.kind === 'progress') display.progress(parsed.progress);
    else if (parsed.kind === 'result') result = parsed.result;
    else display.log(line);
  });
  const stderr = createInterface({ input: child.stderr });
  stderr.on('line', (line) => {
    tail.push(line);
    if (tail.length > TRAINER_STDERR_TAIL) tail.shift();
    display.log(line);
  });
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (done) => {
      child.once('error', (error) => done({ code: null, signal: null, error }));
      child.once('close', (code, signal) => done({ code, signal }));
    },
  );
  display.done();
  if (exit.error !== undefined)
    throw new TrainingError('trainer_failed', `the trainer could not start: ${exit.error.message}`, null, {
      cause: exit.error,
    });
  if (exit.code !== 0) {
    const how =
      exit.code === null ? `was killed by ${exit.signal ?? 'a signal'}` : `exited with code ${exit.code}`;
    const last =
      tail.length === 0 ? ' and wrote nothing on stderr' : `; its last stderr lines:\n  ${tail.join('\n  ')}`;
    throw new TrainingError('trainer_failed', `the trainer (${command}) ${how}${last}`, exit.code);
  }
  const manifest = await validateTrainedFolder(out, baseManifest);
  return { out, manifest, baseManifest, result, durationMs: Date.now() - started };
}

function summary(o: TrainingOutcome): string {
  const lines = [
    `train: ${o.manifest.id}@${o.manifest.version} (from ${o.baseManifest.version}) in ${o.out}, ${(o.durationMs / 1000).toFixed(1)} s`,
  ];
  const r = o.result ?? {};
  const base = r['base_heldout_loss'];
  const trained = r['trained_heldout_loss'];
  if (typeof base === 'number' && typeof trained === 'number') {
    lines.push(
      `  held-out loss  ${base.toFixed(4)} -> ${trained.toFixed(4)} nats/token (${(((base - trained) / base) * 100).toFixed(1)}% lower)`,
    );
  }
  for (const key of ['train_examples', 'heldout_examples', 'epochs', 'steps'])
    if (typeof r[key] === 'number') lines.push(`  ${key.padEnd(14)} ${r[key]}`);
  return `${lines.join('\n')}\n`;
}

/** Runs `switchyard train`; resolves to the exit status. */
export async function trainCommand(argv: readonly string[]): Promise<number> {
  const resolved = resolveTrainConfig({ argv });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(TRAIN_TABLE));
    return 0;
  }
  const s = resolved.settings;
  for (const [flag, value] of [
    ['dataset', s.dataset],
    ['base', s.base],
    ['out', s.out],
  ] as const)
    if (value === undefined) throw new StartupError('config', `train needs --${flag}`);
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  const base = await resolveBase(s.base!, s.nats, s.timeoutMs, say);
  const outcome = await runTraining({
    dataset: s.dataset!,
    base,
    out: s.out!,
    ...(s.trainer !== undefined ? { trainer: s.trainer } : {}),
    ...(s.version !== undefined ? { version: s.version } : {}),
  });
  if (s.json)
    process.stdout.write(
      `${JSON.stringify({ out: outcome.out, manifest: outcome.manifest, base_version: outcome.baseManifest.version, result: outcome.result ?? null, duration_ms: outcome.durationMs }, null, 2)}\n`,
    );
  else process.stdout.write(summary(outcome));
  return 0;
}
