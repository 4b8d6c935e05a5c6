/**
 * Devices an engine can run on, and the onnxruntime execution providers for each.
 *
 * A device that cannot be had fails start-up with a message saying why and how to fix it; the
 * engine never falls back to CPU silently (a replica announcing `cuda:0` or `webgpu:0` must be
 * on that device).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { StartupError } from '../errors/errors.ts';

/** A parsed device: the CPU, one CUDA GPU by ordinal, or one WebGPU (Vulkan) adapter by index. */
export type Device = { kind: 'cpu' } | { kind: 'cuda'; id: number } | { kind: 'webgpu'; id: number };

/** GPU device kinds (those with an ordinal). */
export type GpuKind = 'cuda' | 'webgpu';

/** Parses `cpu`, `cuda:N`, `webgpu` or `webgpu:N`. */
export function parseDevice(text: string): Device {
  if (text === 'cpu') return { kind: 'cpu' };
  if (text === 'webgpu') return { kind: 'webgpu', id: 0 };
  const m = /^(cuda|webgpu):(\d{1,3})$/.exec(text);
  if (m?.[1] !== undefined && m[2] !== undefined) return { kind: m[1] as GpuKind, id: Number(m[2]) };
  throw new StartupError(
    'config',
    `device must be 'cpu', 'cuda:N' or 'webgpu[:N]' (e.g. cuda:0, webgpu), got '${text}'`,
  );
}

/** The canonical text form, as heartbeats and logs show it. */
export function formatDevice(device: Device): string {
  return device.kind === 'cpu' ? 'cpu' : `${device.kind}:${device.id}`;
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

/** The Vulkan loader that Dawn (onnxruntime's WebGPU provider) opens with dlopen. */
export const VULKAN_LOADER = 'libvulkan.so.1';

/** Chromium's software Vulkan driver (Debian's chromium package): a WebGPU adapter without a GPU. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

const WEBGPU_DRIVER_HOW_TO_FIX =
  "Install the GPU's Vulkan driver (NVIDIA: the driver package puts nvidia_icd.json in " +
  '/usr/share/vulkan/icd.d; check with `vulkaninfo --summary`), or, to run on the CPU through ' +
  `Chromium's software driver (correctness only, about 160x slower), set VK_ICD_FILENAMES=${SWIFTSHADER_ICD} ` +
  "(apt-get install chromium). Mesa's lavapipe is refused by Dawn.";

/**
 * Why `webgpu:N` for N > 0 is refused: onnxruntime-node 1.30's WebGPU options have no adapter
 * index (its `deviceId` names a context, and a custom context needs a WebGPU instance that the
 * JS API cannot pass), so the provider always opens the first adapter the Vulkan loader lists.
 * Two replicas asking for adapters 0 and 1 would both run on adapter 0.
 */
export function webgpuIndexRefusal(id: number): string {
  return (
    `device webgpu:${id} cannot be had: onnxruntime-node 1.30's WebGPU provider has no adapter index ` +
    'and always opens the first adapter the Vulkan loader lists, so only webgpu:0 can be honoured ' +
    `(asking for webgpu:${id} would silently share adapter 0). Run one WebGPU replica per host, or ` +
    'narrow what each replica process sees to one driver with the Vulkan loader (VK_ICD_FILENAMES / ' +
    'VK_LOADER_DRIVERS_SELECT) and give it webgpu:0'
  );
}

/** Finds the Vulkan loader where dlopen would (LD_LIBRARY_PATH, then the ld.so cache); undefined when absent. */
export function findVulkanLoader(
  env: NodeJS.ProcessEnv = process.env,
  ldconfig: () => string = ldconfigList,
  systemDirs: readonly string[] = SYSTEM_LIB_DIRS,
): string | undefined {
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d !== '')) {
    const path = join(dir, VULKAN_LOADER);
    if (existsSync(path)) return path;
  }
  for (const line of ldconfig().split('\n')) {
    const m = /^\s*libvulkan\.so\.1 \(.*\) => (\S+)$/.exec(line);
    if (m?.[1] !== undefined) return m[1];
  }
  for (const dir of systemDirs) {
    const path = join(dir, VULKAN_LOADER);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** Where dlopen looks when the ld.so cache is stale or `ldconfig` is not on PATH. */
const SYSTEM_LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib'];

function ldconfigList(): string {
  const result = spawnSync('ldconfig', ['-p'], { encoding: 'utf8', timeout: 5000 });
  return result.status === 0 ? result.stdout : '';
}

/** The provider list an engine session uses for `device`. */
export type ExecutionProviders = Array<'cpu' | { name: 'cuda'; deviceId: number } | { name: 'webgpu' }>;

/**
 * The execution providers for a device, after checking that the device can be had. The check
 * here catches the common cases (provider or loader not installed, an adapter index that cannot
 * be honoured) with a clear message; a GPU that the provider cannot open still fails at session
 * creation, and the caller wraps that error with {@link deviceFailure}.
 */
export function executionProviders(device: Device): ExecutionProviders {
  if (device.kind === 'cpu') return ['cpu'];
  if (device.kind === 'webgpu') {
    if (device.id > 0) throw new StartupError('device_unavailable', webgpuIndexRefusal(device.id));
    if (findVulkanLoader() === undefined) {
      throw new StartupError(
        'device_unavailable',
        `device webgpu:0 is unavailable: the Vulkan loader ${VULKAN_LOADER} is not installed, and ` +
          "onnxruntime's WebGPU provider (Dawn over Vulkan) needs it. Install it with " +
          '`apt-get install libvulkan1` (Debian/Ubuntu), or run the replica with --device cpu.',
      );
    }
    return [{ name: 'webgpu' }];
  }
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
  if (device.kind === 'webgpu') {
    const noAdapter = /adapter/i.test(detail);
    return new StartupError(
      'device_unavailable',
      noAdapter
        ? `device ${formatDevice(device)} is unavailable: no Vulkan adapter that WebGPU accepts ` +
            `(${lastLine(detail)}). ${WEBGPU_DRIVER_HOW_TO_FIX}`
        : `device ${formatDevice(device)} is unavailable: onnxruntime's WebGPU provider could not ` +
            `create a session (${lastLine(detail)}). ${WEBGPU_DRIVER_HOW_TO_FIX}`,
      { cause: err },
    );
  }
  return new StartupError(
    'device_unavailable',
    `device ${formatDevice(device)} is unavailable: onnxruntime could not create a session on it ` +
      `(${detail}). Check that the GPU exists (nvidia-smi) and that CUDA 12 and cuDNN 9 libraries are ` +
      `on the library path. ${CUDA_HOW_TO_FIX}`,
    { cause: err },
  );
}

/** onnxruntime's messages lead with a source path; the reason is at the end. */
function lastLine(detail: string): string {
  const at = detail.lastIndexOf(' was false. ');
  return (at >= 0 ? detail.slice(at + ' was false. '.length) : detail).trim();
}

/**
 * The environment that puts WebGPU on SwiftShader (tests, benchmarks, machines without a GPU):
 * the loader is told to use only Chromium's software driver, and Dawn gets the runtime directory
 * it expects. Returns undefined, with the reason, when Chromium's driver is not installed.
 */
export function swiftShaderEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> | string {
  if (!existsSync(SWIFTSHADER_ICD)) {
    return `SwiftShader is not installed (${SWIFTSHADER_ICD} is missing): apt-get install chromium`;
  }
  if (findVulkanLoader(env) === undefined)
    return `the Vulkan loader ${VULKAN_LOADER} is missing: apt-get install libvulkan1`;
  return { VK_ICD_FILENAMES: SWIFTSHADER_ICD, XDG_RUNTIME_DIR: env.XDG_RUNTIME_DIR ?? '/tmp' };
}
