/**
 * The collector's requests: `stats` (per-version figures) and `export` (a dataset, in pages).
 * An export is computed once, as a snapshot held by the collector that answered, and its pages
 * are asked of that collector by id (`collectorPageSubject`), so an export is one consistent,
 * deterministic set of lines however many pages it takes and whatever arrives meanwhile.
 */
import {
  invalidField,
  parseObject,
  readEnum,
  readInt,
  readObject,
  readOptional,
  readPattern,
  readString,
  type WireObject,
} from '../../validation/fields.ts';
import { ID_PATTERN, MODEL_VERSION_PATTERN } from '../subjects.ts';

/** Dataset formats `dataset export` writes. */
export const DATASET_FORMATS = ['sft', 'preference', 'kto'] as const;
/** One of {@link DATASET_FORMATS}. */
export type DatasetFormatName = (typeof DATASET_FORMATS)[number];

/** Export filters as they travel (epoch ms for times). */
export interface ExportFiltersWire {
  model?: string;
  version?: string;
  since?: number;
  until?: number;
  min_rating?: number;
  finish_reason?: 'stop' | 'length';
  has_feedback?: boolean;
}

/** The first request of an export. */
export interface ExportRequest {
  format: DatasetFormatName;
  filters: ExportFiltersWire;
}

/** A later page of an export snapshot. */
export interface PageRequest {
  snapshot: string;
  offset: number;
}

/** One page of an export. */
export interface ExportPage {
  /** The collector holding the snapshot: later pages are asked of it. */
  collector: string;
  snapshot: string;
  /** Lines in the whole export. */
  total: number;
  offset: number;
  lines: string[];
  /** What the export counted (on the first page). */
  counts?: Record<string, number>;
  seq_range?: { first: number; last: number } | null;
}

/** Bytes of lines in one page: well under NATS' default 1 MiB payload. */
export const EXPORT_PAGE_BYTES = 512 * 1024;

function readFilters(o: WireObject): ExportFiltersWire {
  const f: ExportFiltersWire = {};
  const model = readOptional(o, 'model', (k, v) => readPattern(k, v, ID_PATTERN, '[A-Za-z0-9_-]{1,64}'));
  const version = readOptional(o, 'version', (k, v) =>
    readPattern(k, v, MODEL_VERSION_PATTERN, '[A-Za-z0-9._-]{1,64}'),
  );
  const since = readOptional(o, 'since', (k, v) => readInt(k, v, { min: 0, max: Number.MAX_SAFE_INTEGER }));
  const until = readOptional(o, 'until', (k, v) => readInt(k, v, { min: 0, max: Number.MAX_SAFE_INTEGER }));
  const minRating = readOptional(o, 'min_rating', (k, v) => {
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) invalidField(k, 'a number in [0, 1]', v);
    return v;
  });
  const finishReason = readOptional(o, 'finish_reason', (k, v) =>
    readEnum(k, v, ['stop', 'length'] as const),
  );
  const hasFeedback = readOptional(o, 'has_feedback', (k, v) => {
    if (typeof v !== 'boolean') invalidField(k, 'a boolean', v);
    return v;
  });
  if (model !== undefined) f.model = model;
  if (version !== undefined) f.version = version;
  if (since !== undefined) f.since = since;
  if (until !== undefined) f.until = until;
  if (minRating !== undefined) f.min_rating = minRating;
  if (finishReason !== undefined) f.finish_reason = finishReason;
  if (hasFeedback !== undefined) f.has_feedback = hasFeedback;
  return f;
}

/** The one decoder of export requests. */
export function decodeExportRequest(data: Uint8Array | string): ExportRequest {
  const o = parseObject(data, 'export request');
  return {
    format: readEnum('format', o.format, DATASET_FORMATS),
    filters: o.filters === undefined ? {} : readFilters(readObject('filters', o.filters)),
  };
}

/** The one decoder of page requests. */
export function decodePageRequest(data: Uint8Array | string): PageRequest {
  const o = parseObject(data, 'page request');
  return {
    snapshot: readString('snapshot', o.snapshot, { minLength: 1, maxLength: 64 }),
    offset: readInt('offset', o.offset, { min: 0, max: Number.MAX_SAFE_INTEGER }),
  };
}
