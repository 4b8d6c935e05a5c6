/**
 * The `models` subcommand's options (`switchyard models push|list|show|rm|alias`): lineage for a
 * push, the reason and mover of an alias move, output form, and how to reach NATS. It is a
 * command, not an actor: on a secured `up`, pass the operator credential `up` printed
 * (`--nats-nkey-seed-file`). Positional arguments (folder, `<id>@<ref>`) are taken apart by the
 * command before these options are resolved.
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

/** How long one JetStream call of a `models` command may take. */
export const DEFAULT_MODELS_TIMEOUT_MS = 10_000;

/** `models`'s settings as resolved. */
export interface ModelsSettings extends CommonSettings {
  nats: ConnectionOptions;
  id?: string;
  version?: string;
  parent?: string;
  dataset?: string;
  trainer?: string;
  reason?: string;
  by?: string;
  json: boolean;
  timeoutMs: number;
}

const { text, bool, by, ms } = defBuilders('models');

const defs: OptionDef[] = [
  text(
    'id',
    'id',
    'ID',
    "push: the model id (default: the folder's manifest.json id, else the folder's name).",
  ),
  text('version', 'version', 'VERSION', "push: the version (default: the folder's manifest.json version)."),
  text('parent', 'parent', 'VERSION', 'push: lineage, the version this one was trained from.'),
  text(
    'dataset',
    'dataset',
    'SHA256',
    'push: lineage, the sha256 of the dataset manifest it was trained on.',
  ),
  text('trainer', 'trainer', 'COMMAND', 'push: lineage, the command that trained it.'),
  text('reason', 'reason', 'TEXT', 'alias: why the alias moves (kept in its history).'),
  by('push, alias: who is acting, as the registry records it.'),
  bool('json', 'json', 'Write one JSON document on stdout and nothing else (messages go to stderr).'),
  ms('timeoutMs', 'timeout-ms', DEFAULT_MODELS_TIMEOUT_MS, 'How long one JetStream call may take.'),
  logLevelDef(),
  ...natsDefs(DEFAULT_SERVERS_TEXT),
];

/** Options of `switchyard models`. */
export const MODELS_TABLE: OptionTable = {
  section: 'models',
  summary:
    'The model registry: `models push <folder>`, `models list [<id>]`, `models show <id>@<ref>`, `models rm <id>@<version>`, `models alias <id> <alias> <version>`.',
  defs,
};
