/**
 * The `rollout` subcommand's options (`switchyard rollout start|status|promote|abort`): the
 * steps, canary replicas and policy of a start, output form, and how to reach NATS. A command,
 * not an actor: on a secured `up`, pass the operator credential `up` printed.
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

/** How long one JetStream call of a `rollout` command may take. */
export const DEFAULT_ROLLOUT_TIMEOUT_MS = 10_000;

/** `rollout`'s settings as resolved. */
export interface RolloutSettings extends CommonSettings {
  nats: ConnectionOptions;
  steps?: string;
  canaryReplicas: number;
  policy?: string;
  alias?: string;
  reason?: string;
  by?: string;
  json: boolean;
  timeoutMs: number;
}

const { text, int, bool, by, ms } = defBuilders('rollout');

const defs: OptionDef[] = [
  text(
    'steps',
    'steps',
    'LIST',
    "start: canary weights in percent, ascending (default 10,25,50,100). The first is the canary's first weight; 100 (appended when missing) is promotion, not judged.",
  ),
  int(
    'canaryReplicas',
    'canary-replicas',
    1,
    "start: fewest replicas that load the canary; more are swapped when a step's weight exceeds their share of the model's replicas (one always stays on stable while the canary is judged).",
  ),
  text(
    'policy',
    'policy',
    'FILE',
    'start: the checks and pacing, a YAML or JSON file (default: docs/rollouts.md, "Policy").',
  ),
  text('alias', 'alias', 'ALIAS', 'start: the alias promotion moves (default stable).'),
  text('reason', 'reason', 'TEXT', 'promote, abort: why (kept in the decisions).'),
  by('Who is acting, as the rollout records it.'),
  bool('json', 'json', 'status: write one JSON document on stdout and nothing else.'),
  ms('timeoutMs', 'timeout-ms', DEFAULT_ROLLOUT_TIMEOUT_MS, 'How long one JetStream call may take.'),
  logLevelDef(),
  ...natsDefs(DEFAULT_SERVERS_TEXT),
];

/** Options of `switchyard rollout`. */
export const ROLLOUT_TABLE: OptionTable = {
  section: 'rollout',
  summary:
    'Canary rollouts judged on evidence: `rollout start <model> <version>`, `rollout status [<model>]`, `rollout promote <model>`, `rollout abort <model>`.',
  defs,
};
