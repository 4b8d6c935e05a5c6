/**
 * Runs `chaos/run.ts` as a child process the way a user would (`tsx chaos/run.ts ...`), with its
 * report folder in a temp dir, for the end-to-end tests of the runner.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './models.ts';

/** What one run left: its exit status, its output, and its report folder. */
export interface ChaosRun {
  status: number | null;
  output: string;
  /** The run's `<timestamp>/` folder. */
  dir: string;
}

/** Runs the chaos runner with `args` (plus `--reports <temp dir>`) and waits for it to exit. */
export async function runChaos(args: readonly string[]): Promise<ChaosRun> {
  const reports = mkdtempSync(join(tmpdir(), 'sy-chaos-reports-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'chaos/run.ts', ...args, '--reports', reports], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const [stamp] = readdirSync(reports);
  if (stamp === undefined) throw new Error(`the chaos run made no report folder:\n${output}`);
  return { status, output, dir: join(reports, stamp) };
}
