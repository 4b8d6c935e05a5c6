/** Environments for child processes in tests and benchmarks. */

/**
 * This process's environment without any `OTEL_*` variable (the machine's own tracing settings
 * must not leak into an actor under test), plus `extra`.
 */
export function envWithoutOtel(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTEL_') && v !== undefined) env[k] = v;
  return { ...env, ...extra };
}
