/**
 * The manifest of one model version in the registry: what its files are (path, size, sha256),
 * the digest that names the whole version, and where it came from (lineage). It is the value of
 * the version's key in the versions bucket, snake_case on the wire, and the one decoder below
 * checks every field, the digest included, so a replica never trusts a manifest it did not check.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { ID_PATTERN, MODEL_VERSION_PATTERN, assertRegistryRef } from '../cluster/subjects.ts';
import { InvalidRequestError } from '../errors/errors.ts';
import {
  encodeObject,
  invalidField,
  parseObject,
  readInt,
  readObject,
  readOptional,
  readPattern,
  readString,
} from '../validation/fields.ts';

/** Lowercase hex SHA-256, as sha256sum prints it. */
export const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Name of the version manifest a cached copy keeps beside its files (never a pushed file). */
export const VERSION_MANIFEST_FILE = '.switchyard-version.json';
/** Most files one version may hold (a manifest stays well below NATS's 1 MiB payload). */
export const MAX_VERSION_FILES = 2_000;
/** Longest relative file path. */
export const MAX_FILE_PATH_LENGTH = 512;
/** Longest trainer command kept in the lineage. */
export const MAX_TRAINER_LENGTH = 4_096;
/** Longest `pushed_by` (`user@host`, or what `--by` says). */
export const MAX_ACTOR_LENGTH = 256;

const ID_SHAPE = '[A-Za-z0-9_-]{1,64}';
const VERSION_SHAPE = '[A-Za-z0-9._-]{1,64}';
const SHA_SHAPE = '64 lowercase hex digits';

/** One file of a version. */
export interface VersionFile {
  /** Relative to the version's folder, forward slashes, no `..`. */
  path: string;
  /** Bytes. */
  size: number;
  /** Lowercase hex SHA-256 of the file's bytes. */
  sha256: string;
}

/** Where a version came from; every field optional (a hand-built model has none). */
export interface VersionLineage {
  /** sha256 of the dataset manifest it was trained on. */
  dataset?: string;
  /** The command that trained it. */
  trainer?: string;
  /** The version it was trained from. */
  parent?: string;
}

/** One version of one model, as the registry stores it. */
export interface VersionManifest {
  id: string;
  version: string;
  /** {@link versionDigest} of `files`: names the version's content. */
  digest: string;
  /** Sorted by path. */
  files: VersionFile[];
  lineage: VersionLineage;
  /** ISO 8601. */
  createdAt: string;
  /** Who pushed it (`user@host`). */
  pushedBy: string;
}

/**
 * True when `p` is a relative path with forward slashes and no `..`, the rule of the engine's
 * `parseManifest` for its model file, tightened against empty and `.` segments so that one file
 * has exactly one spelling (and one object name).
 */
export function isSafeRelativePath(p: string): boolean {
  if (p.length === 0 || p.length > MAX_FILE_PATH_LENGTH) return false;
  if (path.isAbsolute(p) || p.includes('\\') || p.includes('\0')) return false;
  return p.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

/**
 * The digest of a version: sha256 of the lines `<sha256>  <path>\n` sorted by path (what
 * `sha256sum` prints, so `sha256sum $(find . -type f | sort) | sha256sum` can check it by hand
 * once the `./` prefixes are cut). The one function that computes it.
 */
export function versionDigest(files: readonly Pick<VersionFile, 'path' | 'sha256'>[]): string {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const hash = createHash('sha256');
  for (const f of sorted) hash.update(`${f.sha256}  ${f.path}\n`, 'utf8');
  return hash.digest('hex');
}

function readFiles(value: unknown): VersionFile[] {
  if (!Array.isArray(value)) invalidField('files', 'an array of files', value);
  if (value.length === 0 || value.length > MAX_VERSION_FILES) {
    throw new InvalidRequestError(`files must hold 1 to ${MAX_VERSION_FILES} entries, got ${value.length}`);
  }
  const seen = new Set<string>();
  const files = value.map((item: unknown, i): VersionFile => {
    const o = readObject(`files[${i}]`, item);
    const p = readString(`files[${i}].path`, o.path, { minLength: 1, maxLength: MAX_FILE_PATH_LENGTH });
    if (!isSafeRelativePath(p) || p === VERSION_MANIFEST_FILE) {
      invalidField(
        `files[${i}].path`,
        `a relative path with forward slashes, no '..', not ${VERSION_MANIFEST_FILE}`,
        p,
      );
    }
    if (seen.has(p)) invalidField(`files[${i}].path`, 'a path no other file has', p);
    seen.add(p);
    return {
      path: p,
      size: readInt(`files[${i}].size`, o.size, { min: 0, max: Infinity }),
      sha256: readPattern(`files[${i}].sha256`, o.sha256, SHA256_HEX, SHA_SHAPE),
    };
  });
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function readLineage(value: unknown): VersionLineage {
  const o = readObject('lineage', value ?? {});
  const lineage: VersionLineage = {};
  const dataset = readOptional(o, 'dataset', (f, v) => readPattern(`lineage.${f}`, v, SHA256_HEX, SHA_SHAPE));
  const trainer = readOptional(o, 'trainer', (f, v) =>
    readString(`lineage.${f}`, v, { minLength: 1, maxLength: MAX_TRAINER_LENGTH }),
  );
  const parent = readOptional(o, 'parent', (f, v) =>
    readPattern(`lineage.${f}`, v, MODEL_VERSION_PATTERN, VERSION_SHAPE),
  );
  if (dataset !== undefined) lineage.dataset = dataset;
  if (trainer !== undefined) lineage.trainer = trainer;
  if (parent !== undefined) lineage.parent = parent;
  return lineage;
}

function readTime(field: string, value: unknown): string {
  const text = readString(field, value, { minLength: 1, maxLength: 64 });
  if (!Number.isFinite(Date.parse(text))) invalidField(field, 'an ISO 8601 time', text);
  return text;
}

/**
 * The one decoder of version manifests. `source` names the origin in errors (a KV key, a
 * file). Checks every field and that `digest` is the digest of `files`.
 */
export function decodeVersionManifest(data: Uint8Array | string, source: string): VersionManifest {
  try {
    const o = parseObject(data, 'version manifest');
    const version = readPattern('version', o.version, MODEL_VERSION_PATTERN, VERSION_SHAPE);
    assertRegistryRef('version', version);
    const files = readFiles(o.files);
    const digest = readPattern('digest', o.digest, SHA256_HEX, SHA_SHAPE);
    const computed = versionDigest(files);
    if (digest !== computed) {
      throw new InvalidRequestError(`digest ${digest} is not the digest of its files (${computed})`);
    }
    return {
      id: readPattern('id', o.id, ID_PATTERN, ID_SHAPE),
      version,
      digest,
      files,
      lineage: readLineage(o.lineage),
      createdAt: readTime('created_at', o.created_at),
      pushedBy: readString('pushed_by', o.pushed_by, { minLength: 1, maxLength: MAX_ACTOR_LENGTH }),
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new InvalidRequestError(`${source}: invalid version manifest: ${message}`, { cause: err });
  }
}

/** The manifest as its wire object (snake_case), for `--json` output and the cache's copy. */
export function versionManifestObject(m: VersionManifest): Record<string, unknown> {
  return {
    id: m.id,
    version: m.version,
    digest: m.digest,
    files: m.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
    lineage: { ...m.lineage },
    created_at: m.createdAt,
    pushed_by: m.pushedBy,
  };
}

/** Serialises a manifest for the versions bucket. */
export function encodeVersionManifest(m: VersionManifest): Uint8Array {
  return encodeObject(versionManifestObject(m));
}

/** Total bytes of a version's files. */
export function versionSize(m: Pick<VersionManifest, 'files'>): number {
  return m.files.reduce((sum, f) => sum + f.size, 0);
}
