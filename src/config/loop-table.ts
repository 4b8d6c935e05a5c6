/**
 * The `loop` subcommand's options (`switchyard loop`): export → train → push → rollout start,
 * once or after every N new feedback items. A time schedule is cron's job (docs/training.md).
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
import { trainerDefs } from './train-table.ts';

/** How often `--every-feedback` asks the collector for its feedback count. */
export const DEFAULT_LOOP_POLL_MS = 30_000;

/** `loop`'s settings as resolved. */
export interface LoopSettings extends CommonSettings {
  nats: ConnectionOptions;
  model?: string;
  base?: string;
  format: 'sft';
  workDir?: string;
  trainer?: string;
  steps?: string;
  canaryReplicas?: number;
  policy?: string;
  everyFeedback?: number;
  pollMs: number;
  timeoutMs: number;
}

const { env, text } = defBuilders('loop');

const defs: OptionDef[] = [
  text('model', 'model', 'ID', 'The model to improve: its records are exported, its candidate rolled out.'),
  text('base', 'base', 'FOLDER|URL', 'What to train from (default: registry://<model>@stable).'),
  {
    key: 'format',
    flag: 'format',
    env: env('format'),
    type: 'string',
    metavar: 'NAME',
    choices: ['sft'],
    default: 'sft',
    doc: 'The dataset format to export and train on.',
  },
  {
    key: 'workDir',
    flag: 'work-dir',
    env: env('work-dir'),
    type: 'path',
    doc: 'Where each round writes its dataset and model (one sub-folder per round).',
  },
  ...trainerDefs('loop'),
  text(
    'steps',
    'steps',
    'LIST',
    'Rollout canary weights in percent, e.g. 10,25,50,100 (default: the rollout default).',
  ),
  {
    key: 'canaryReplicas',
    flag: 'canary-replicas',
    env: env('canary-replicas'),
    type: 'int',
    min: 1,
    doc: 'Replicas that load the candidate (default: the rollout default).',
  },
  {
    key: 'policy',
    flag: 'policy',
    env: env('policy'),
    type: 'path',
    doc: 'A rollout policy file (default: the rollout default policy).',
  },
  {
    key: 'everyFeedback',
    flag: 'every-feedback',
    env: env('every-feedback'),
    type: 'int',
    min: 1,
    doc: 'Keep running: start a round after every N new feedback items on the model (default: one round, then exit).',
  },
  {
    key: 'pollMs',
    flag: 'poll-ms',
    env: env('poll-ms'),
    type: 'duration-ms',
    min: 1,
    default: DEFAULT_LOOP_POLL_MS,
    doc: "With --every-feedback: how often to ask the collector for the model's feedback count.",
  },
  logLevelDef(),
  ...natsDefs(DEFAULT_SERVERS_TEXT),
];

/** Options of `switchyard loop`. */
export const LOOP_TABLE: OptionTable = {
  section: 'loop',
  summary:
    'The closed loop: `loop --model ID --work-dir DIR` exports, trains, pushes and starts a rollout, once or `--every-feedback N`.',
  defs,
};
