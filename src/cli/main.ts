/**
 * The `switchyard` command: one entry point for every actor (`bin/switchyard.mjs` imports this
 * module, and `up` forks it once per child). Importing it runs the command line.
 *
 * Exit status: 0 after a clean stop, 1 when start-up fails (missing model, unavailable device,
 * NATS refused the credentials, no NATS server, the HTTP port taken) or an actor dies, 2 for a usage error (unknown
 * command or option, a value of the wrong type, a bad config file).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ALL_TABLES } from '../config/actors.ts';
import { BRIDGE_TABLE } from '../config/bridge-table.ts';
import { topLevelHelp, type CommandSummary } from '../config/help.ts';
import { REPO_ROOT } from '../config/paths.ts';
import { REPLICA_TABLE } from '../config/replica-table.ts';
import { unknownEnvironment } from '../config/resolve.ts';
import { ROUTER_TABLE } from '../config/router-table.ts';
import { UP_TABLE } from '../config/up-table.ts';
import { COLLECTOR_TABLE } from '../config/collector-table.ts';
import { DATASET_TABLE } from '../config/dataset-table.ts';
import { MODELS_TABLE } from '../config/models-table.ts';
import { ROLLOUT_TABLE } from '../config/rollout-table.ts';
import { RegistryError, StartupError, SwitchyardError } from '../errors/errors.ts';
import { subcommandHelp } from '../config/help.ts';
import { hasParent, reportedReady, tellParent } from './ipc.ts';

/** Exit status of a usage error (POSIX convention, as getopt-style tools use it). */
export const EXIT_USAGE = 2;
/** Exit status of a failed start or an actor that died. */
export const EXIT_FAILURE = 1;

type Command = (argv: readonly string[]) => Promise<number>;

interface CommandEntry {
  readonly summary: string;
  /** Its `--help` text, for `switchyard help <command>`. */
  readonly help?: string;
  readonly run: Command;
}

const COMMANDS: ReadonlyMap<string, CommandEntry> = new Map<string, CommandEntry>([
  [
    'up',
    {
      summary: UP_TABLE.summary,
      help: subcommandHelp(UP_TABLE),
      run: lazy(() => import('./up.ts'), 'upCommand'),
    },
  ],
  [
    'replica',
    {
      summary: REPLICA_TABLE.summary,
      help: subcommandHelp(REPLICA_TABLE),
      run: lazy(() => import('./replica.ts'), 'replicaCommand'),
    },
  ],
  [
    'router',
    {
      summary: ROUTER_TABLE.summary,
      help: subcommandHelp(ROUTER_TABLE),
      run: lazy(() => import('./router.ts'), 'routerCommand'),
    },
  ],
  [
    'bridge',
    {
      summary: BRIDGE_TABLE.summary,
      help: subcommandHelp(BRIDGE_TABLE),
      run: lazy(() => import('./bridge.ts'), 'bridgeCommand'),
    },
  ],
  [
    'collector',
    {
      summary: COLLECTOR_TABLE.summary,
      help: subcommandHelp(COLLECTOR_TABLE),
      run: lazy(() => import('./collector.ts'), 'collectorCommand'),
    },
  ],
  [
    'dataset',
    {
      summary: DATASET_TABLE.summary,
      help: subcommandHelp(DATASET_TABLE),
      run: lazy(() => import('./dataset.ts'), 'datasetCommand'),
    },
  ],
  [
    'models',
    {
      summary: MODELS_TABLE.summary,
      help: subcommandHelp(MODELS_TABLE),
      run: lazy(() => import('./models.ts'), 'modelsCommand'),
    },
  ],
  [
    'rollout',
    {
      summary: ROLLOUT_TABLE.summary,
      help: subcommandHelp(ROLLOUT_TABLE),
      run: lazy(() => import('./rollout.ts'), 'rolloutCommand'),
    },
  ],
  ['help', { summary: "Show this help, or a command's: switchyard help <command>.", run: helpCommand }],
]);

/** Loads a command's module only when it runs, so `--help` never loads onnxruntime. */
function lazy<M extends Record<K, Command>, K extends string>(load: () => Promise<M>, name: K): Command {
  return async (argv) => (await load())[name](argv);
}

function summaries(): CommandSummary[] {
  return [...COMMANDS].map(([name, c]) => ({ name, summary: c.summary }));
}

function helpCommand(argv: readonly string[]): Promise<number> {
  const topic = argv[0];
  if (topic === undefined) {
    process.stdout.write(topLevelHelp(summaries()));
    return Promise.resolve(0);
  }
  const help = COMMANDS.get(topic)?.help;
  if (help === undefined) return Promise.resolve(unknownCommand(topic));
  process.stdout.write(help);
  return Promise.resolve(0);
}

function unknownCommand(name: string): number {
  const names = [...COMMANDS.keys()].join(', ');
  process.stderr.write(
    `switchyard: unknown command '${name}'; the commands are ${names} (switchyard --help)\n`,
  );
  return EXIT_USAGE;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

/** Prints a failure as one line (a stack only for what is not a known start-up failure) and picks the exit status. */
async function report(command: string, err: unknown): Promise<number> {
  const known = err instanceof StartupError || err instanceof SwitchyardError || err instanceof RegistryError;
  const message = err instanceof Error ? err.message : String(err);
  // Under `up`, a start-up failure goes to the parent, which prints it once for the cluster.
  if (hasParent() && !reportedReady()) await tellParent({ type: 'failed', message });
  else process.stderr.write(`switchyard ${command}: ${message}\n`);
  if (!known && err instanceof Error && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
  return err instanceof StartupError && err.reason === 'config' ? EXIT_USAGE : EXIT_FAILURE;
}

/** Runs the command line; resolves to the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') return helpCommand([]);
  if (name === '--version' || name === '-v') {
    process.stdout.write(`switchyard ${version()}\n`);
    return 0;
  }
  const command = COMMANDS.get(name);
  if (command === undefined) return unknownCommand(name);
  // Children of `up` share its environment: `up` has warned already.
  const unknown = hasParent() ? [] : unknownEnvironment(process.env, ALL_TABLES);
  for (const variable of unknown) {
    process.stderr.write(`switchyard ${name}: warning: ignoring unknown environment variable ${variable}\n`);
  }
  try {
    return await command.run(rest);
  } catch (err) {
    return await report(name, err);
  }
}

process.exit(await main(process.argv.slice(2)));
