/**
 * WebGPU in tests runs on SwiftShader, Chromium's software Vulkan driver (DESIGN.md): correct,
 * about 160x slower than the CPU provider, so device tests stay small.
 */
import { swiftShaderEnv } from '../../src/engine/device.ts';

/**
 * Points this process's Vulkan loader at SwiftShader (before the first WebGPU session: the loader
 * reads it when Dawn creates its instance). Returns the reason when it cannot, for `skip`.
 */
export function useSwiftShader(): string | undefined {
  const env = swiftShaderEnv();
  if (typeof env === 'string') {
    if (process.env.CI === 'true') throw new Error(`CI must run the WebGPU tests: ${env}`);
    return env;
  }
  Object.assign(process.env, env);
  return undefined;
}

/** The environment for a child process (a replica) that runs on SwiftShader. */
export function swiftShaderChildEnv(): Record<string, string> {
  const env = swiftShaderEnv();
  if (typeof env === 'string') throw new Error(env);
  return env;
}
