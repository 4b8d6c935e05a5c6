/**
 * The `train` subcommand's options (`switchyard train`): the dataset, the base model, where the
 * trained model goes, which trainer command runs, and how to reach NATS when the base is a
 * registry URL. It is a command, not an actor; the trainer interface is in docs/training.md.
 */
import type { ConnectionOptions } from '../cluster/connection.ts';
import {
  DEFAULT_SERVERS_TEXT,
  defBuilders,
  logLevelDef,
  natsDefs,
  type CommonSettings,
} from './common-options.ts';
import type { OptionDef, OptionTable } from './option.ts';

/** How long fetching a registry base may wait for JetStream. */
export const DEFAULT_TRAIN_TIMEOUT_MS = 30_000;

/** What `--trainer` defaults to, as the help shows it. */
export const DEFAULT_TRAINER_TEXT = 'node <repo>/bin/switchyard.mjs train-reference';

/** `train`'s settings as resolved. */
export interface TrainSettings extends CommonSettings {
  nats: ConnectionOptions;
  dataset?: string;
  base?: string;
  out?: string;
  trainer?: string;
  version?: string;
  json: boolean;
  timeoutMs: number;
}

const { env, text } = defBuilders('train');

/** The options `train` and `loop` share: the trainer and how to fetch a registry base. */
export function trainerDefs(section: 'train' | 'loop'): OptionDef[] {
  const b = defBuilders(section);
  return [
    {
      key: 'trainer',
      flag: 'trainer',
      env: b.env('trainer'),
      type: 'string',
      metavar: 'COMMAND',
      defaultText: DEFAULT_TRAINER_TEXT,
      doc: 'The trainer command, run by /bin/sh with --dataset, --base, --out (absolute paths) and --version appended (docs/training.md).',
    },
    {
      key: 'timeoutMs',
      flag: 'timeout-ms',
      env: b.env('timeout-ms'),
      type: 'duration-ms',
      min: 1,
      default: DEFAULT_TRAIN_TIMEOUT_MS,
      doc: 'How long one request to NATS (registry, collector) may wait.',
    },
  ];
}

const defs: OptionDef[] = [
  {
    key: 'dataset',
    flag: 'dataset',
    env: env('dataset'),
    type: 'path',
    doc: 'The manifest.json of a dataset export (`switchyard dataset export --format sft`).',
  },
  text(
    'base',
    'base',
    'FOLDER|URL',
    'The model to start from: a model folder, or registry://<id>@<version|alias> (fetched into the model cache).',
  ),
  {
    key: 'out',
    flag: 'out',
    env: env('out'),
    type: 'path',
    doc: 'The folder the trained model is written to (missing or empty).',
  },
  text(
    'version',
    'version',
    'VERSION',
    "The trained model's version (default: the trainer's; the reference trainer's is <base version>-ft-<dataset sha256, 8 hex>).",
  ),
  ...trainerDefs('train'),
  {
    key: 'json',
    flag: 'json',
    env: env('json'),
    type: 'bool',
    default: false,
    doc: 'Write the summary as one JSON document on stdout (progress goes to stderr).',
  },
  logLevelDef(),
  ...natsDefs(DEFAULT_SERVERS_TEXT),
];

/** Options of `switchyard train`. */
export const TRAIN_TABLE: OptionTable = {
  section: 'train',
  summary:
    'Train a model version: `train --dataset DIR/manifest.json --base <folder|registry://id@ref> --out FOLDER [--trainer CMD]`.',
  defs,
};
