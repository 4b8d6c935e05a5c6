/**
 * The `dataset` subcommand's options (`switchyard dataset stats|export`): what to export, where,
 * and how to reach NATS. It is a command, not an actor: on a secured `up`, pass the operator
 * credential `up` printed (`--nats-nkey-seed-file`).
 */
import type { ConnectionOptions } from '../cluster/connection.ts';
import { DATASET_FORMATS } from '../collector/datasets.ts';
import {
  DEFAULT_SERVERS_TEXT,
  defBuilders,
  logLevelDef,
  natsDefs,
  type CommonSettings,
} from './common-options.ts';
import type { OptionDef, OptionTable } from './option.ts';

/** How long the CLI waits for a collector's answer to one request. */
export const DEFAULT_DATASET_TIMEOUT_MS = 30_000;

/** `dataset`'s settings as resolved. */
export interface DatasetSettings extends CommonSettings {
  nats: ConnectionOptions;
  format?: (typeof DATASET_FORMATS)[number];
  out?: string;
  model?: string;
  version?: string;
  since?: string;
  until?: string;
  minRating?: string;
  finishReason?: 'stop' | 'length';
  hasFeedback?: boolean;
  json: boolean;
  timeoutMs: number;
}

const { env, text, bool, ms } = defBuilders('dataset');

const defs: OptionDef[] = [
  {
    key: 'format',
    flag: 'format',
    env: env('format'),
    type: 'string',
    metavar: 'NAME',
    choices: DATASET_FORMATS,
    doc: 'export: sft (chat messages, or prompt/completion pairs), preference (prompt, chosen, rejected from corrections) or kto (prompt, completion, label from thumbs).',
  },
  {
    key: 'out',
    flag: 'out',
    env: env('out'),
    type: 'path',
    doc: 'export: the directory to write shards and manifest.json into.',
  },
  text('model', 'model', 'ID', 'Only this model.'),
  text('version', 'version', 'VERSION', 'Only this model version.'),
  text('since', 'since', 'TIME', 'Only requests that ended at or after this time (ISO 8601 or epoch ms).'),
  text('until', 'until', 'TIME', 'Only requests that ended before this time (ISO 8601 or epoch ms).'),
  text('minRating', 'min-rating', 'RATING', 'Only requests with feedback rated at least this, in [0, 1].'),
  {
    key: 'finishReason',
    flag: 'finish-reason',
    env: env('finish-reason'),
    type: 'string',
    metavar: 'REASON',
    choices: ['stop', 'length'],
    doc: 'Only requests that ended so.',
  },
  {
    key: 'hasFeedback',
    flag: 'has-feedback',
    env: env('has-feedback'),
    type: 'bool',
    doc: 'Only requests with feedback (--has-feedback=false: only those without).',
  },
  bool('json', 'json', 'Write one JSON document on stdout and nothing else (progress goes to stderr).'),
  ms('timeoutMs', 'timeout-ms', DEFAULT_DATASET_TIMEOUT_MS, "How long to wait for a collector's answer."),
  logLevelDef(),
  ...natsDefs(DEFAULT_SERVERS_TEXT),
];

/** Options of `switchyard dataset`. */
export const DATASET_TABLE: OptionTable = {
  section: 'dataset',
  summary:
    'Datasets from the collector: `dataset stats` (per-version figures), `dataset export --format sft|preference|kto --out DIR`.',
  defs,
};
