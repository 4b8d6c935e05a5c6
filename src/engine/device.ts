/**
 * Devices an engine can run on, and the onnxruntime execution providers for each.
 *
 * A device that cannot be had fails start-up with a message saying why and how to fix it; the
 * engine never falls back to CPU silently (a replica announcing `cuda:0` must be on cuda:0).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { StartupError } from '../errors/errors.ts';

/** A parsed device: the CPU, or one CUDA GPU by ordinal. */
export type Device = { kind: 'cpu' } | { kind: 'cuda'; id: number };

/** Parses `cpu` or `cuda:N` (N a GPU ordinal). */
export function parseDevice(text: string): Device {
  if (text === 'cpu') return { kind: 'cpu' };
  const m = /^cuda:(\d{1,3})$/.exec(text);
  if (m?.[1] !== undefined) return { kind: 'cuda', id: Number(m[1]) };
  throw new StartupError('config', `device must be 'cpu' or 'cuda:N' (e.g. cuda:0), got '${text}'`);
}

/** The canonical text form, as heartbeats and logs show it. */
export function formatDevice(device: Device): string {
  return device.kind === 'cpu' ? 'cpu' : `cuda:${device.id}`;
}

/** The CUDA provider library that onnxruntime-node's install script puts next to its binding. */
const CUDA_PROVIDER_LIB = 'libonnxruntime_providers_cuda.so';

/** Where onnxruntime-node's native binding lives (its CUDA provider library must sit beside it). */
function ortBindingDir(): string {
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

const CUDA_HOW_TO_FIX =
  'Install the CUDA 12 provider on this GPU host with ' +
  '`node node_modules/onnxruntime-node/script/install --onnxruntime-node-install=cuda12` ' +
  '(it downloads from outside the npm registry), with CUDA 12 and cuDNN 9 on the library path, ' +
  'or run the replica with --device cpu.';

/**
 * The execution providers for a device, after checking that the device can be had. The check
 * here catches the common case (provider not installed) with a clear message; a GPU that the
 * provider cannot open still fails at session creation, and the caller wraps that error too.
 */
export function executionProviders(device: Device): Array<string | { name: 'cuda'; deviceId: number }> {
  if (device.kind === 'cpu') return ['cpu'];
  const lib = join(ortBindingDir(), CUDA_PROVIDER_LIB);
  if (!existsSync(lib)) {
    throw new StartupError(
      'device_unavailable',
      `device cuda:${device.id} is unavailable: onnxruntime-node's CUDA execution provider is not ` +
        `installed (${lib} is missing). ${CUDA_HOW_TO_FIX}`,
    );
  }
  return [{ name: 'cuda', deviceId: device.id }];
}

/** Wraps a session-creation failure on a GPU into a start-up error that says how to fix it. */
export function deviceFailure(device: Device, err: unknown): StartupError {
  const detail = err instanceof Error ? err.message : String(err);
  return new StartupError(
    'device_unavailable',
    `device ${formatDevice(device)} is unavailable: onnxruntime could not create a session on it ` +
      `(${detail}). Check that the GPU exists (nvidia-smi) and that CUDA 12 and cuDNN 9 libraries are ` +
      `on the library path. ${CUDA_HOW_TO_FIX}`,
    { cause: err },
  );
}
