/**
 * `up --gpus`: which GPUs get a replica each. `all` asks nvidia-smi, the one tool every NVIDIA
 * driver install ships, instead of guessing from /dev or CUDA_VISIBLE_DEVICES.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { StartupError } from '../errors/errors.ts';

/** `all`, or explicit GPU ordinals in the order given. */
export type GpuSelection = { kind: 'all' } | { kind: 'list'; ids: number[] };

/** The most GPUs one machine plausibly has; an ordinal beyond it is a typo. */
const MAX_GPU_ORDINAL = 255;

/** Parses `all` or `0,1,…`; returns what is wrong as a string so the caller can name the source. */
export function parseGpus(text: string): GpuSelection | string {
  const trimmed = text.trim();
  if (trimmed === 'all') return { kind: 'all' };
  const parts = trimmed.split(',').map((s) => s.trim());
  const ids: number[] = [];
  for (const part of parts) {
    const id = /^\d{1,3}$/.test(part) ? Number(part) : NaN;
    if (!Number.isInteger(id) || id > MAX_GPU_ORDINAL) {
      return `expected 'all' or a comma-separated list of GPU ordinals (e.g. 0,1), got '${text}'`;
    }
    if (ids.includes(id)) return `GPU ${id} is listed twice in '${text}'; one replica per GPU`;
    ids.push(id);
  }
  return { kind: 'list', ids };
}

/** GPU ordinals in `nvidia-smi -L` output (`GPU 0: NVIDIA H100 … (UUID: GPU-…)`), one per line. */
export function parseNvidiaSmiList(stdout: string): number[] {
  const ids: number[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^GPU (\d+):/.exec(line.trim());
    if (m?.[1] !== undefined) ids.push(Number(m[1]));
  }
  return ids;
}

/** Runs `nvidia-smi -L`; swappable in tests. */
export type NvidiaSmi = () => SpawnSyncReturns<string>;

const runNvidiaSmi: NvidiaSmi = () => spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10_000 });

/**
 * The GPU ordinals a selection stands for; `all` asks nvidia-smi, with a clear error when it cannot.
 * For WebGPU without nvidia-smi (another vendor's driver, or SwiftShader) `all` is adapter 0, the
 * one adapter onnxruntime's WebGPU provider opens.
 */
export function selectGpus(
  selection: GpuSelection,
  nvidiaSmi: NvidiaSmi = runNvidiaSmi,
  webgpu = false,
): number[] {
  if (selection.kind === 'list') return selection.ids;
  const result = nvidiaSmi();
  if (webgpu && result.error !== undefined && (result.error as NodeJS.ErrnoException).code === 'ENOENT')
    return [0];
  if (result.error !== undefined) {
    const missing = (result.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new StartupError(
      'device_unavailable',
      missing
        ? '--gpus all counts GPUs with nvidia-smi, which is not installed or not on PATH; install the NVIDIA driver (it ships nvidia-smi) or name the GPUs, e.g. --gpus 0,1'
        : `--gpus all: nvidia-smi could not run: ${result.error.message}`,
      { cause: result.error },
    );
  }
  if (result.status !== 0) {
    const detail = `${result.stderr ?? ''}${result.stdout ?? ''}`.trim().split('\n')[0] ?? '';
    throw new StartupError(
      'device_unavailable',
      `--gpus all: nvidia-smi -L failed (exit ${String(result.status)}): ${detail}`,
    );
  }
  const ids = parseNvidiaSmiList(result.stdout);
  if (ids.length === 0) {
    throw new StartupError(
      'device_unavailable',
      '--gpus all: nvidia-smi -L lists no GPUs; run on CPU (leave out --gpus)',
    );
  }
  return ids;
}
