/**
 * A version's files in the object store: one object per file, named `<id>/<digest>/<path>`.
 * Uploads skip an object that already holds the same bytes (a retried push, or another version
 * with identical files), so a push never rewrites, and never purges, chunks a reader may be
 * streaming.
 */
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ObjectStore } from '@nats-io/obj';
import { StartupError } from '../errors/errors.ts';
import type { VersionFile, VersionManifest } from './version-manifest.ts';

/** The object holding one file of one version's content. */
export function objectName(id: string, digest: string, filePath: string): string {
  return `${id}/${digest}/${filePath}`;
}

/** The object store's own digest text (`SHA-256=<base64url, padded>`) of a hex sha256. */
export function objectStoreDigest(sha256Hex: string): string {
  const b64 = Buffer.from(sha256Hex, 'hex').toString('base64url');
  return `SHA-256=${b64.padEnd(Math.ceil(b64.length / 4) * 4, '=')}`;
}

/** Uploads the files of `folder` under `id`/`digest`; resolves to the names written (not skipped). */
export async function uploadFiles(
  os: ObjectStore,
  id: string,
  digest: string,
  folder: string,
  files: readonly VersionFile[],
): Promise<string[]> {
  const written: string[] = [];
  for (const f of files) {
    const name = objectName(id, digest, f.path);
    const info = await os.info(name);
    if (
      info !== null &&
      !info.deleted &&
      info.size === f.size &&
      info.digest === objectStoreDigest(f.sha256)
    ) {
      continue;
    }
    const data = Readable.toWeb(createReadStream(path.join(folder, f.path))) as ReadableStream<Uint8Array>;
    await os.put({ name }, data);
    written.push(name);
  }
  return written;
}

/**
 * The bytes of one file of a version, as a stream. A missing object is a `model_missing`
 * start-up failure naming the file; the object store checks its own digest as the stream ends
 * (the caller checks the manifest's sha256 too).
 */
export async function openFile(
  os: ObjectStore,
  m: VersionManifest,
  file: VersionFile,
): Promise<ReadableStream<Uint8Array>> {
  const result = await os.get(objectName(m.id, m.digest, file.path));
  if (result === null) {
    throw new StartupError(
      'model_missing',
      `${m.id}@${m.version}: file ${file.path} is missing from the registry's object store (digest ${m.digest})`,
    );
  }
  return result.data;
}

/** Deletes the objects of one digest's files (those that exist); resolves to how many went. */
export async function deleteFiles(
  os: ObjectStore,
  id: string,
  digest: string,
  files: readonly VersionFile[],
): Promise<number> {
  let deleted = 0;
  for (const f of files) {
    const name = objectName(id, digest, f.path);
    const info = await os.info(name);
    if (info === null || info.deleted) continue;
    await os.delete(name);
    deleted++;
  }
  return deleted;
}
