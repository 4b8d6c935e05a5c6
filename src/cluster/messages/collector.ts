/**
 * The collector's requests: `stats` (per-version figures) and `export` (a dataset, in pages).
 * An export is computed once, as a snapshot held by the collector that answered, and its pages
 * are asked of that collector by id (`collectorPageSubject`), so an export is one consistent,
 * deterministic set of lines however many pages it takes and whatever arrives meanwhile.
 */
import { parseObject, readEnum, readInt, readObject, readString } from '../../validation/fields.ts';
import { readDatasetFilters, type DatasetFilters } from '../../collector/dataset-filters.ts';
import { DATASET_FORMATS, type DatasetFormat } from '../../collector/datasets.ts';

/** The first request of an export. */
export interface ExportRequest {
  format: DatasetFormat;
  /** Sent in the manifest's form (describeFilters), read back by readDatasetFilters. */
  filters: DatasetFilters;
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

/** The one decoder of export requests. */
export function decodeExportRequest(data: Uint8Array | string): ExportRequest {
  const o = parseObject(data, 'export request');
  return {
    format: readEnum('format', o.format, DATASET_FORMATS),
    filters: o.filters === undefined ? {} : readDatasetFilters(readObject('filters', o.filters)),
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
