/** Model folders for registry tests: a few small files, one big enough to span object chunks. */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Bytes of the chunked file (the object store cuts chunks of 128 KiB). */
export const BIG_FILE_BYTES = 300_000;

/** A fresh temp folder (the caller removes it). */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `sy-reg-${prefix}-`));
}

/**
 * A model folder under `parent`: `manifest.json` (id, version), `onnx/model.onnx` (random
 * bytes, several chunks) and `tokenizer.json` whose text is `tag`, so two folders differ by tag.
 */
export function modelFolder(
  parent: string,
  name: string,
  opts: { id?: string; version?: string; tag?: string } = {},
): string {
  const dir = join(parent, name);
  mkdirSync(join(dir, 'onnx'), { recursive: true });
  const manifest: Record<string, string> = {};
  if (opts.id !== undefined) manifest['id'] = opts.id;
  if (opts.version !== undefined) manifest['version'] = opts.version;
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  writeFileSync(join(dir, 'onnx', 'model.onnx'), randomBytes(BIG_FILE_BYTES));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ tag: opts.tag ?? name }));
  return dir;
}
