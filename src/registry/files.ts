/**
 * Reading a model folder for the registry: every file under it with its size and sha256, found
 * by walking the tree (symlinks followed, as a model folder is often a link to where a build
 * left it), and the id and version its `manifest.json` declares.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { MANIFEST_FILE } from '../engine/manifest.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import {
  MAX_VERSION_FILES,
  VERSION_MANIFEST_FILE,
  isSafeRelativePath,
  type VersionFile,
} from './version-manifest.ts';

/** Size and sha256 of one file, read as a stream (model files can be gigabytes). */
export async function hashFile(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    const bytes = chunk as Buffer;
    hash.update(bytes);
    size += bytes.length;
  }
  return { size, sha256: hash.digest('hex') };
}

async function walk(root: string, rel: string, out: string[]): Promise<void> {
  const entries = await readdir(path.join(root, rel), { withFileTypes: true });
  for (const entry of entries) {
    const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (rel === '' && entry.name === VERSION_MANIFEST_FILE) continue; // a cached copy's own manifest
    const info = await stat(path.join(root, child));
    if (info.isDirectory()) await walk(root, child, out);
    else if (info.isFile()) out.push(child);
    if (out.length > MAX_VERSION_FILES) {
      throw new InvalidRequestError(
        `${root}: more than ${MAX_VERSION_FILES} files; a model version holds fewer`,
      );
    }
  }
}

/** Every file of a folder (sorted by path) with size and sha256. */
export async function scanFolder(dir: string): Promise<VersionFile[]> {
  let info;
  try {
    info = await stat(dir);
  } catch (cause) {
    throw new InvalidRequestError(`${dir}: no such folder`, { cause });
  }
  if (!info.isDirectory()) throw new InvalidRequestError(`${dir}: not a folder`);
  const paths: string[] = [];
  await walk(dir, '', paths);
  if (paths.length === 0) throw new InvalidRequestError(`${dir}: the folder holds no files`);
  paths.sort();
  const files: VersionFile[] = [];
  for (const p of paths) {
    if (!isSafeRelativePath(p)) {
      throw new InvalidRequestError(
        `${dir}: file name ${JSON.stringify(p)} cannot be stored (backslash or odd segment)`,
      );
    }
    files.push({ path: p, ...(await hashFile(path.join(dir, p))) });
  }
  return files;
}

/** The id and version a folder's `manifest.json` declares, where it has one that says so. */
export async function folderIdentity(dir: string): Promise<{ id?: string; version?: string }> {
  let text: string;
  try {
    text = await readFile(path.join(dir, MANIFEST_FILE), 'utf8');
  } catch {
    return {};
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new InvalidRequestError(`${path.join(dir, MANIFEST_FILE)}: not valid JSON`, { cause });
  }
  if (typeof json !== 'object' || json === null) return {};
  const o = json as Record<string, unknown>;
  const found: { id?: string; version?: string } = {};
  if (typeof o['id'] === 'string') found.id = o['id'];
  if (typeof o['version'] === 'string') found.version = o['version'];
  return found;
}
