/** Helpers the configuration tests share: scratch config files and config-error assertions. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { StartupError } from '../../src/errors/errors.ts';

/** A scratch folder removed after the test file, and a writer of numbered files in it. */
export function scratchFiles(prefix: string): { dir: string; file: (ext: string, text: string) => string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let count = 0;
  const file = (ext: string, text: string): string => {
    const path = join(dir, `f${count++}.${ext}`);
    writeFileSync(path, text);
    return path;
  };
  return { dir, file };
}

/** Asserts a config error whose message matches every pattern. */
export function rejectsConfig(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof StartupError, `expected a StartupError, got ${String(err)}`);
    assert.equal(err.reason, 'config');
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}
