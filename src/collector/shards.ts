/**
 * Writes a dataset export where the CLI runs: JSONL shards and a manifest that names them with
 * their sha256, the filters and counts that chose their lines, and the completions stream's
 * sequence range they came from. Byte-identical for the same lines and meta (no wall-clock time
 * unless the caller passes one), so re-running an export proves it by comparing manifests.
 *
 * The manifest is written last and removed first: a directory with shards and no manifest is an
 * export that did not finish, and a manifest always describes the shards beside it.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COMPLETIONS_STREAM } from '../cluster/subjects.ts';
import { InternalError, StartupError } from '../errors/errors.ts';
import { describeFilters, type DatasetFilters, type DescribedDatasetFilters } from './dataset-filters.ts';
import { DATASET_FORMATS, type DatasetCounts, type DatasetFormat, type SeqRange } from './datasets.ts';

/** Most lines per shard: small enough to stream, upload or inspect one shard, few files for most exports. */
export const DEFAULT_SHARD_MAX_LINES = 10_000;

/** The manifest's file name in an export directory. */
export const MANIFEST_FILE = 'manifest.json';

/** Version of the manifest's format. */
export const DATASET_MANIFEST_VERSION = 1;

/** Digits of a shard's number in its file name (`sft-00000.jsonl`), so names sort in order. */
const SHARD_INDEX_DIGITS = 5;

/** A file a previous export wrote: its manifest or one of its shards, of any format. */
const EXPORT_FILE = new RegExp(`^(?:${DATASET_FORMATS.join('|')})-\\d{${SHARD_INDEX_DIGITS},}\\.jsonl$`);

/** What the manifest says besides the shards. */
export interface ShardMeta {
  format: DatasetFormat;
  /** As the export was asked for; recorded by {@link describeFilters}. */
  filters: DatasetFilters;
  counts: DatasetCounts;
  seqRange: SeqRange | null;
  /** When given, recorded as `created_at`; absent by default so that re-runs are byte-identical. */
  createdAt?: Date | string;
}

/** How shards are cut. */
export interface ShardOptions {
  /** Most lines per shard. @default DEFAULT_SHARD_MAX_LINES */
  maxLinesPerShard?: number;
}

/** One shard as the manifest lists it. */
export interface DatasetShard {
  /** File name, relative to the manifest. */
  file: string;
  lines: number;
  bytes: number;
  /** Hex sha256 of the file's bytes. */
  sha256: string;
}

/** `manifest.json` of an export directory. */
export interface DatasetManifest {
  created_by: 'switchyard';
  manifest_version: typeof DATASET_MANIFEST_VERSION;
  format: DatasetFormat;
  filters: DescribedDatasetFilters;
  counts: DatasetCounts;
  /** The completions stream the lines came from and the sequences of the first and last (null when empty). */
  source: { stream: typeof COMPLETIONS_STREAM; first_seq: number | null; last_seq: number | null };
  /** In order; none for an export with no line. */
  shards: DatasetShard[];
  created_at?: string;
}

/** The file name of shard `index` of a format's export. */
export function shardFileName(format: DatasetFormat, index: number): string {
  return `${format}-${String(index).padStart(SHARD_INDEX_DIGITS, '0')}.jsonl`;
}

/**
 * The names in `dir` a previous export wrote (to replace), creating `dir` when it is missing.
 * Refuses a directory that holds anything else: an export must never delete or mix with files
 * it did not write (a mistyped `--out` pointing at a home directory).
 */
async function previousExportFiles(dir: string): Promise<string[]> {
  const info = await stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (info === undefined) {
    await mkdir(dir, { recursive: true });
    return [];
  }
  if (!info.isDirectory())
    throw new StartupError('config', `dataset output ${dir} (--out) is not a directory`);
  const entries = await readdir(dir, { withFileTypes: true });
  const foreign = entries.filter(
    (e) => !e.isFile() || (e.name !== MANIFEST_FILE && !EXPORT_FILE.test(e.name)),
  );
  if (foreign.length > 0) {
    const names = foreign.map((e) => e.name).sort();
    throw new StartupError(
      'config',
      `dataset output ${dir} (--out) holds ${names.slice(0, 3).join(', ')}${names.length > 3 ? ` and ${names.length - 3} more` : ''}, ` +
        `which no dataset export wrote; export into a new or empty directory, or one that holds only a ` +
        `previous export (${MANIFEST_FILE} and <format>-NNNNN.jsonl shards), which the new export replaces`,
    );
  }
  return entries.map((e) => e.name);
}

/** The counts in the one key order, however the caller built them (decoded from a NATS reply, say). */
function orderedCounts(c: DatasetCounts): DatasetCounts {
  return {
    records: c.records,
    not_completed: c.not_completed,
    filtered_out: c.filtered_out,
    no_text: c.no_text,
    not_in_format: c.not_in_format,
    duplicates: c.duplicates,
    exported: c.exported,
  };
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Writes `lines` (JSON, one per line, none holding a line break) into `dir` as shards of at most
 * `maxLinesPerShard` lines and `dir/manifest.json`, replacing a previous export there; returns
 * the manifest. Throws StartupError (`config`) for a directory it must not write into.
 */
export async function writeShards(
  dir: string,
  lines: readonly string[],
  meta: ShardMeta,
  options: ShardOptions = {},
): Promise<DatasetManifest> {
  const maxLines = options.maxLinesPerShard ?? DEFAULT_SHARD_MAX_LINES;
  if (!Number.isInteger(maxLines) || maxLines < 1) {
    throw new StartupError('config', `maxLinesPerShard must be a positive integer, got ${maxLines}`);
  }
  const broken = lines.findIndex((l) => l.includes('\n') || l.includes('\r'));
  if (broken >= 0) throw new InternalError(`dataset line ${broken} holds a line break; JSONL lines must not`);
  const filters = describeFilters(meta.filters);

  const previous = await previousExportFiles(dir);
  // Manifest first: from here until the new one is written, the directory says "unfinished".
  await rm(join(dir, MANIFEST_FILE), { force: true });
  await Promise.all(
    previous.filter((n) => n !== MANIFEST_FILE).map((n) => rm(join(dir, n), { force: true })),
  );

  const shards: DatasetShard[] = [];
  for (let start = 0, index = 0; start < lines.length; start += maxLines, index += 1) {
    const chunk = lines.slice(start, start + maxLines);
    const bytes = Buffer.from(chunk.map((l) => `${l}\n`).join(''), 'utf8');
    const file = shardFileName(meta.format, index);
    await writeFile(join(dir, file), bytes);
    shards.push({ file, lines: chunk.length, bytes: bytes.length, sha256: sha256Hex(bytes) });
  }

  const manifest: DatasetManifest = {
    created_by: 'switchyard',
    manifest_version: DATASET_MANIFEST_VERSION,
    format: meta.format,
    filters,
    counts: orderedCounts(meta.counts),
    source: {
      stream: COMPLETIONS_STREAM,
      first_seq: meta.seqRange?.first ?? null,
      last_seq: meta.seqRange?.last ?? null,
    },
    shards,
    ...(meta.createdAt !== undefined
      ? { created_at: meta.createdAt instanceof Date ? meta.createdAt.toISOString() : meta.createdAt }
      : {}),
  };
  await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
