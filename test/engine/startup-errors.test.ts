/** A model or device that cannot be had fails start-up with a clear error, never silently. */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { StartupError } from '../../src/errors/errors.ts';
import { findVulkanLoader, VULKAN_LOADER } from '../../src/engine/device.ts';
import { Engine } from '../../src/engine/engine.ts';
import { TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';

const scratch = mkdtempSync(join(tmpdir(), 'switchyard-startup-'));

function copyModel(name: string): string {
  const dir = join(scratch, name);
  // Dereferenced: a worktree's models/ may be a symlink to a shared build, which the tampering
  // below must never reach (a plain copy of the link deleted the shared model's ONNX file).
  cpSync(TINY_MODEL, dir, { recursive: true, dereference: true });
  return dir;
}

async function startupFailure(opts: Parameters<typeof Engine.start>[0]): Promise<StartupError> {
  try {
    const engine = await Engine.start(opts);
    await engine.stop();
  } catch (err) {
    assert.ok(err instanceof StartupError, `expected a StartupError, got ${String(err)}`);
    return err;
  }
  assert.fail('start-up succeeded but should have failed');
}

describe('engine start-up errors', () => {
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('a missing model folder says so and how to build it', async () => {
    const err = await startupFailure({ modelDir: join(scratch, 'nope'), ...TEST_THREADS });
    assert.equal(err.reason, 'model_missing');
    assert.match(err.message, /does not exist.*npm run setup/);
  });

  it('a missing ONNX file says which file', async () => {
    const dir = copyModel('no-onnx');
    rmSync(join(dir, 'onnx'), { recursive: true });
    const err = await startupFailure({ modelDir: dir, ...TEST_THREADS });
    assert.equal(err.reason, 'model_missing');
    assert.match(err.message, /decoder_model_merged\.onnx is missing/);
  });

  it('an ONNX file that does not match its manifest is refused as corrupt', async () => {
    const dir = copyModel('tampered');
    writeFileSync(join(dir, 'onnx', 'decoder_model_merged.onnx'), 'not an onnx model');
    const err = await startupFailure({ modelDir: dir, ...TEST_THREADS });
    assert.equal(err.reason, 'model_corrupt');
    assert.match(err.message, /does not match its manifest/);
  });

  it('a corrupt ONNX file without a manifest is reported by onnxruntime, wrapped', async () => {
    const dir = copyModel('corrupt');
    rmSync(join(dir, 'manifest.json'));
    writeFileSync(join(dir, 'onnx', 'decoder_model_merged.onnx'), Buffer.alloc(4096, 7));
    const err = await startupFailure({ modelDir: dir, ...TEST_THREADS });
    assert.equal(err.reason, 'model_corrupt');
    assert.match(err.message, /onnxruntime could not load .*decoder_model_merged\.onnx/);
  });

  it('a CUDA device without the CUDA provider fails with how to fix it, never falling back to CPU', async () => {
    const err = await startupFailure({ modelDir: TINY_MODEL, device: 'cuda:0', ...TEST_THREADS });
    assert.equal(err.reason, 'device_unavailable');
    assert.match(err.message, /cuda:0 is unavailable/);
    assert.match(err.message, /onnxruntime-node-install=cuda12/);
  });

  it('an unknown device name is a configuration error', async () => {
    const err = await startupFailure({ modelDir: TINY_MODEL, device: 'gpu0', ...TEST_THREADS });
    assert.equal(err.reason, 'config');
    assert.match(err.message, /'cpu', 'cuda:N' or 'webgpu\[:N\]'/);
  });

  it('a WebGPU adapter other than 0 is refused: the provider cannot choose one', async () => {
    const err = await startupFailure({ modelDir: TINY_MODEL, device: 'webgpu:1', ...TEST_THREADS });
    assert.equal(err.reason, 'device_unavailable');
    assert.match(err.message, /webgpu:1 cannot be had: .*has no adapter index/);
    assert.match(err.message, /only webgpu:0 can be honoured/);
  });

  it('WebGPU without a Vulkan driver fails with how to fix it, never falling back to CPU', async () => {
    // No driver manifest at all (this process never opened a WebGPU device before).
    process.env.VK_ICD_FILENAMES = join(tmpdir(), 'switchyard-no-such-driver', 'icd.json');
    const err = await startupFailure({ modelDir: TINY_MODEL, device: 'webgpu', ...TEST_THREADS });
    assert.equal(err.reason, 'device_unavailable');
    assert.match(err.message, /webgpu:0 is unavailable: no Vulkan adapter that WebGPU accepts/);
    assert.match(err.message, /VK_ICD_FILENAMES=.*vk_swiftshader_icd\.json/);
  });

  it('finds the Vulkan loader where dlopen would, and nothing where it is absent', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-vulkan-'));
    writeFileSync(join(dir, VULKAN_LOADER), '');
    assert.equal(
      findVulkanLoader({ LD_LIBRARY_PATH: dir }, () => '', []),
      join(dir, VULKAN_LOADER),
    );
    const cache = '\tlibvulkan.so.1 (libc6,x86-64) => /opt/vk/libvulkan.so.1\n';
    assert.equal(
      findVulkanLoader({}, () => cache, []),
      '/opt/vk/libvulkan.so.1',
    );
    assert.equal(
      findVulkanLoader({}, () => '', []),
      undefined,
    );
    rmSync(dir, { recursive: true });
  });
});
