/**
 * The local copy of registry versions, keyed by digest: `<cacheDir>/<digest>/` holds a version's
 * files and its manifest ({@link VERSION_MANIFEST_FILE}). A download goes to a private temp
 * folder that is renamed into place, so two processes fetching one version at once both succeed
 * and nobody sees half a copy. Every file's size and sha256 is checked on each use, cache hits
 * included; a mismatch refuses the version and removes the bad copy. Refs
 * (`<cacheDir>/refs/<id>/<ref>.json`) remember what a version or alias resolved to last, so a
 * replica restarts from the cache while the registry is unreachable.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { assertId, assertRegistryRef } from '../cluster/subjects.ts';
import { StartupError } from '../errors/errors.ts';
import { hashFile } from './files.ts';
import type { Registry } from './registry.ts';
import {
  SHA256_HEX,
  VERSION_MANIFEST_FILE,
  decodeVersionManifest,
  versionManifestObject,
  type VersionFile,
  type VersionManifest,
} from './version-manifest.ts';

/** Environment variable naming the cache folder. */
export const MODEL_CACHE_ENV = 'SWITCHYARD_MODEL_CACHE';
/** Folder under the cache home (`$XDG_CACHE_HOME` or `~/.cache`). */
export const MODEL_CACHE_SUBDIR = path.join('switchyard', 'models');

/** `$SWITCHYARD_MODEL_CACHE`, else `$XDG_CACHE_HOME/switchyard/models`, else `~/.cache/switchyard/models`. */
export function defaultModelCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env[MODEL_CACHE_ENV];
  if (explicit !== undefined && explicit !== '') return path.resolve(explicit);
  const xdg = env['XDG_CACHE_HOME'];
  const home = xdg !== undefined && xdg !== '' ? xdg : path.join(homedir(), '.cache');
  return path.resolve(home, MODEL_CACHE_SUBDIR);
}

/** The folder of one digest's copy. */
export function cachedVersionDir(cacheDir: string, digest: string): string {
  if (!SHA256_HEX.test(digest)) throw new StartupError('config', `not a version digest: '${digest}'`);
  return path.join(cacheDir, digest);
}

function corrupt(
  m: VersionManifest,
  where: string,
  file: VersionFile,
  actual: { size: number; sha256: string },
): StartupError {
  const what =
    actual.size !== file.size
      ? `size ${actual.size} bytes, expected ${file.size}; sha256 ${actual.sha256}, expected ${file.sha256}`
      : `sha256 ${actual.sha256}, expected ${file.sha256}`;
  return new StartupError(
    'model_corrupt',
    `${m.id}@${m.version} (digest ${m.digest}) refused: file ${file.path} ${where} has ${what}`,
  );
}

/**
 * Checks a cached copy against its manifest; resolves when every file matches. A bad copy is
 * removed and a `model_corrupt` error names the file and both digests.
 */
export async function verifyCachedVersion(dir: string, m: VersionManifest): Promise<void> {
  for (const file of m.files) {
    let actual: { size: number; sha256: string };
    try {
      actual = await hashFile(path.join(dir, file.path));
    } catch {
      actual = { size: 0, sha256: 'missing' };
    }
    if (actual.size !== file.size || actual.sha256 !== file.sha256) {
      await rm(dir, { recursive: true, force: true });
      throw corrupt(m, `in the cache (${dir})`, file, actual);
    }
  }
}

/** The manifest a cached copy keeps beside its files, or undefined when there is no copy. */
export async function readCachedManifest(
  cacheDir: string,
  digest: string,
): Promise<VersionManifest | undefined> {
  const file = path.join(cachedVersionDir(cacheDir, digest), VERSION_MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  return decodeVersionManifest(text, file);
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Downloads one file into `dir`, hashing it on the way; resolves to what arrived. */
async function download(
  registry: Registry,
  m: VersionManifest,
  file: VersionFile,
  dir: string,
): Promise<{ size: number; sha256: string }> {
  const target = path.join(dir, file.path);
  await mkdir(path.dirname(target), { recursive: true });
  const hash = createHash('sha256');
  let size = 0;
  const data = await registry.openFile(m, file);
  const out = Writable.toWeb(createWriteStream(target)) as WritableStream<Uint8Array>;
  await data
    .pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          hash.update(chunk);
          size += chunk.length;
          controller.enqueue(chunk);
        },
      }),
    )
    .pipeTo(out);
  return { size, sha256: hash.digest('hex') };
}

/**
 * The folder holding a verified copy of version `m`, downloading it first when the cache lacks
 * it. A file whose bytes do not match the manifest (in the registry or in the cache) refuses the
 * version with a `model_corrupt` error naming the file, the expected and the actual sha256.
 */
export async function fetchVersion(
  registry: Registry,
  m: VersionManifest,
  cacheDir: string,
): Promise<string> {
  const dir = cachedVersionDir(cacheDir, m.digest);
  if (await exists(path.join(dir, VERSION_MANIFEST_FILE))) {
    await verifyCachedVersion(dir, m);
    return dir;
  }
  // A folder without its manifest is no copy (something removed part of it): clear the way.
  await rm(dir, { recursive: true, force: true });
  await mkdir(cacheDir, { recursive: true });
  const tmp = `${dir}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await mkdir(tmp);
    for (const file of m.files) {
      let actual: { size: number; sha256: string };
      try {
        actual = await download(registry, m, file, tmp);
      } catch (err) {
        if (err instanceof StartupError) throw err;
        const reason = err instanceof Error ? err.message : String(err);
        if (/corrupt|digest/i.test(reason)) {
          throw new StartupError(
            'model_corrupt',
            `${m.id}@${m.version} (digest ${m.digest}) refused: file ${file.path} in the registry is corrupt ` +
              `(expected sha256 ${file.sha256}): ${reason}`,
            { cause: err },
          );
        }
        throw err;
      }
      if (actual.size !== file.size || actual.sha256 !== file.sha256)
        throw corrupt(m, 'in the registry', file, actual);
    }
    await writeFile(
      path.join(tmp, VERSION_MANIFEST_FILE),
      `${JSON.stringify(versionManifestObject(m), null, 2)}\n`,
    );
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another process renamed its copy first (ENOTEMPTY/EEXIST): use that one, once checked.
      if (!(await exists(path.join(dir, VERSION_MANIFEST_FILE)))) throw err;
      await verifyCachedVersion(dir, m);
    }
    return dir;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** What a ref resolved to when the registry last answered. */
export interface CachedRef {
  version: string;
  digest: string;
}

function refFile(cacheDir: string, id: string, ref: string): string {
  assertId('model id', id);
  assertRegistryRef('model version or alias', ref);
  return path.join(cacheDir, 'refs', id, `${ref}.json`);
}

/** Records what `id@ref` resolved to (written whole, through a rename). */
export async function recordRef(cacheDir: string, id: string, ref: string, value: CachedRef): Promise<void> {
  const file = refFile(cacheDir, id, ref);
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  await writeFile(tmp, `${JSON.stringify({ version: value.version, digest: value.digest })}\n`);
  await rename(tmp, file);
}

/** What `id@ref` resolved to last, or undefined when never (or the record is unreadable). */
export async function readRef(cacheDir: string, id: string, ref: string): Promise<CachedRef | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(refFile(cacheDir, id, ref), 'utf8'));
  } catch {
    return undefined;
  }
  const o = parsed as Partial<CachedRef> | null;
  if (typeof o?.version !== 'string' || typeof o.digest !== 'string' || !SHA256_HEX.test(o.digest))
    return undefined;
  return { version: o.version, digest: o.digest };
}
