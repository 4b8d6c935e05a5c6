/**
 * `switchyard dataset stats|export`: asks a collector over NATS and, for an export, writes the
 * shards and manifest where the command runs, so it works from any host that reaches NATS.
 * With `--json`, stdout carries one JSON document and nothing else; progress goes to stderr.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../cluster/connection.ts';
import { operatorConnection } from './local-up.ts';
import type { ExportPage } from '../cluster/messages/collector.ts';
import { collectorPageSubject, collectorSubject } from '../cluster/subjects.ts';
import { describeFilters, type DatasetFilters } from '../collector/dataset-filters.ts';
import { writeShards, type DatasetManifest } from '../collector/shards.ts';
import type { DatasetFormat } from '../collector/datasets.ts';
import type { VersionStats } from '../collector/stats.ts';
import { resolveDatasetConfig } from '../config/actors.ts';
import { DATASET_TABLE, type DatasetSettings } from '../config/dataset-table.ts';
import { subcommandHelp } from '../config/help.ts';
import {
  InternalError,
  StartupError,
  UnavailableError,
  errorFromCode,
  isErrorCode,
} from '../errors/errors.ts';

/** Progress and summaries: stderr, so stdout holds only data. */
function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** The actions of `dataset`. */
const ACTIONS = ['stats', 'export'] as const;

/** Runs `dataset <action>`; resolves to the exit status. */
export async function datasetCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') {
    process.stdout.write(subcommandHelp(DATASET_TABLE));
    return 0;
  }
  if (!(ACTIONS as readonly string[]).includes(action)) {
    throw new StartupError(
      'config',
      `dataset: unknown action '${action}'; the actions are ${ACTIONS.join(', ')}`,
    );
  }
  const resolved = resolveDatasetConfig({ argv: rest });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(DATASET_TABLE));
    return 0;
  }
  const settings = resolved.settings;
  const nats = operatorConnection('dataset', settings.nats, say);
  const nc = await connectNats({ name: 'switchyard-dataset', ...nats });
  try {
    if (action === 'stats') await printStats(nc, settings);
    else await runExport(nc, settings);
    return 0;
  } finally {
    await nc.close();
  }
}

/** The filters the flags give, checked for form (the collector checks the rest). */
function filtersOf(s: DatasetSettings): DatasetFilters {
  const f: DatasetFilters = {};
  if (s.model !== undefined) f.model = s.model;
  if (s.version !== undefined) f.version = s.version;
  if (s.since !== undefined) f.since = timeOf('--since', s.since);
  if (s.until !== undefined) f.until = timeOf('--until', s.until);
  if (s.minRating !== undefined) {
    const r = Number(s.minRating);
    if (!(r >= 0 && r <= 1))
      throw new StartupError('config', `--min-rating must be a number in [0, 1], got '${s.minRating}'`);
    f.minRating = r;
  }
  if (s.finishReason !== undefined) f.finishReason = s.finishReason;
  if (s.hasFeedback !== undefined) f.hasFeedback = s.hasFeedback;
  return f;
}

function timeOf(flag: string, text: string): Date {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(ms)) {
    throw new StartupError('config', `${flag} must be an ISO 8601 time or epoch milliseconds, got '${text}'`);
  }
  return new Date(ms);
}

/** One request to a collector; its `{ error }` answer or no answer becomes a typed error. */
async function ask<T>(nc: NatsConnection, subject: string, body: unknown, timeoutMs: number): Promise<T> {
  let reply;
  try {
    reply = await nc.request(subject, JSON.stringify(body), { timeout: timeoutMs });
  } catch (err) {
    throw new UnavailableError(
      `no collector answered on ${subject} (${err instanceof Error ? err.message : String(err)}); ` +
        'is one running? `switchyard up` starts one unless --collector=false; `switchyard collector` runs one',
    );
  }
  const answer = reply.json<T & { error?: { code: string; message: string } }>();
  if (answer.error !== undefined) {
    const { code, message } = answer.error;
    throw isErrorCode(code) ? errorFromCode(code, message) : new InternalError(message);
  }
  return answer;
}

async function printStats(nc: NatsConnection, s: DatasetSettings): Promise<void> {
  const stats = await collectorStats(nc, s.timeoutMs);
  if (s.json) {
    process.stdout.write(`${JSON.stringify(stats, null, 2)}\n`);
    return;
  }
  const ms = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v.toFixed(1));
  const rows = stats.versions.map((v) => [
    v.model,
    v.version,
    String(v.requests),
    `${(v.error_rate * 100).toFixed(1)}%`,
    ms(v.latency_ms.ttft.p50),
    ms(v.latency_ms.ttft.p99),
    ms(v.latency_ms.tpot.p50),
    String(v.feedback.count),
    v.feedback.rating_mean === null ? '-' : v.feedback.rating_mean.toFixed(2),
  ]);
  const head = [
    'model',
    'version',
    'requests',
    'errors',
    'ttft p50 ms',
    'ttft p99 ms',
    'tpot p50 ms',
    'feedback',
    'rating',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`${[line(head), ...rows.map(line)].join('\n')}\n`);
  process.stdout.write(`${stats.records} records (collector ${stats.collector})\n`);
}

/** What one export asks for. */
export interface ExportRequest {
  format: DatasetFormat;
  /** The directory to write shards and manifest.json into. */
  out: string;
  filters: DatasetFilters;
  timeoutMs: number;
}

/**
 * Exports a dataset from a collector (every page of one snapshot) and writes it into `req.out`;
 * `say` hears page progress. `dataset export` and `loop` both call it.
 */
export async function exportDataset(
  nc: NatsConnection,
  req: ExportRequest,
  say: (line: string) => void = () => {},
): Promise<DatasetManifest> {
  const first = await ask<ExportPage>(
    nc,
    collectorSubject('export'),
    { format: req.format, filters: describeFilters(req.filters) },
    req.timeoutMs,
  );
  const lines = [...first.lines];
  while (lines.length < first.total) {
    const page = await ask<ExportPage>(
      nc,
      collectorPageSubject(first.collector),
      { snapshot: first.snapshot, offset: lines.length },
      req.timeoutMs,
    );
    if (page.lines.length === 0)
      throw new UnavailableError('the collector sent an empty page before the end');
    lines.push(...page.lines);
    say(`dataset: ${lines.length}/${first.total} lines`);
  }
  return writeShards(req.out, lines, {
    format: req.format,
    filters: req.filters,
    counts: first.counts as never,
    seqRange: first.seq_range ?? null,
  });
}

/** The collector's `stats` answer. */
export interface CollectorStats {
  collector: string;
  records: number;
  versions: VersionStats[];
}

/** Asks a collector for its per-version figures. */
export function collectorStats(nc: NatsConnection, timeoutMs: number): Promise<CollectorStats> {
  return ask<CollectorStats>(nc, collectorSubject('stats'), {}, timeoutMs);
}

async function runExport(nc: NatsConnection, s: DatasetSettings): Promise<void> {
  if (s.format === undefined)
    throw new StartupError('config', 'dataset export needs --format sft|preference|kto');
  if (s.out === undefined) throw new StartupError('config', 'dataset export needs --out DIR');
  const manifest = await exportDataset(
    nc,
    { format: s.format, out: s.out, filters: filtersOf(s), timeoutMs: s.timeoutMs },
    say,
  );
  if (s.json) {
    process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
    return;
  }
  const lines = manifest.shards.reduce((n, shard) => n + shard.lines, 0);
  say(
    `dataset: wrote ${lines} ${s.format} line(s) in ${manifest.shards.length} shard(s) to ${s.out} ` +
      `(manifest.json; ${JSON.stringify(manifest.counts)})`,
  );
}
