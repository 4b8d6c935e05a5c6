/**
 * docs/configuration.md, generated from the option tables. `npm run docs:config` writes it and a
 * test fails when the file on disk differs, so the reference can only say what the code does.
 */
import { KEYS_FILE_ENV } from './bridge-table.ts';
import { defaultText, fileKey, metavar, type OptionDef, type OptionTable } from './option.ts';
import { CONFIG_ENV, CONFIG_FILE_DEF } from './resolve.ts';

/** The example config file shown in the docs (a test checks that it resolves cleanly). */
export const EXAMPLE_CONFIG_YAML = `# switchyard.yaml: every section and key is optional
nats: # shared by every actor
  servers: [nats://10.0.0.5:4222, nats://10.0.0.6:4222]
  user: switchyard # the password is better kept in SWITCHYARD_NATS_PASSWORD
replica:
  engine:
    modelDir: ../models/my-model # relative paths start at this file's folder
    maxBatchSize: 16
  drainGraceMs: 15s
router:
  strategy: least-loaded
  requestTimeoutMs: 60000
bridge:
  keysFile: keys.yaml # API keys and their limits, beside this file
  rateLimit:
    failMode: closed
  cache:
    enabled: true
up:
  replicas: 2
  routers: 2
`;

function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

function code(text: string | undefined): string {
  return text === undefined || text === '' ? '' : `\`${cell(text)}\``;
}

function row(table: OptionTable, def: OptionDef): string {
  const value = metavar(def);
  const flag = `--${def.flag}${value === '' ? '' : ` ${value}`}`;
  const type = def.choices === undefined ? def.type : `${def.type}: ${def.choices.join(', ')}`;
  const cells = [
    code(flag),
    code(def.env),
    code(fileKey(table, def)),
    cell(type),
    code(defaultText(def)),
    cell(def.doc),
  ];
  return `| ${cells.join(' | ')} |`;
}

function section(table: OptionTable): string[] {
  return [
    `## \`switchyard ${table.section}\``,
    '',
    table.summary,
    '',
    '| flag | environment | file key | type | default | meaning |',
    '| --- | --- | --- | --- | --- | --- |',
    ...table.defs.map((d) => row(table, d)),
    '',
  ];
}

/** The whole of docs/configuration.md, before prettier lays out its tables. */
export function renderConfigurationDoc(tables: readonly OptionTable[]): string {
  return [
    '# Configuration',
    '',
    '<!-- Generated from src/config/*-table.ts by `npm run docs:config`; edit those, not this file. -->',
    '',
    'Every subcommand of `switchyard` resolves its settings from four sources, per option, in this',
    'order of precedence:',
    '',
    '1. command-line flags (`--max-batch-size 16` or `--max-batch-size=16`);',
    '2. environment variables (`SWITCHYARD_REPLICA_MAX_BATCH_SIZE=16`);',
    `3. a config file given by \`--config FILE\` or \`${CONFIG_ENV}\` (JSON or YAML, by its extension);`,
    '4. the defaults listed below.',
    '',
    'An unknown flag, an unknown key in the config file or a value of the wrong type stops the',
    'process at once with a message that names the flag, variable or file key (exit status 2);',
    'an unknown `SWITCHYARD_*` variable only gets a warning, because one environment is shared by',
    'every actor on a host.',
    '',
    '## Values',
    '',
    '- **int**: a whole number, within the bounds the option states.',
    '- **duration-ms**: milliseconds; flags, variables and files may add a unit: `250`, `250ms`, `2s`, `1m`.',
    '- **bool**: a bare flag (`--allow-fault-injection`) is true; `--flag=false` turns it off;',
    '  variables take `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`; files take `true`/`false`.',
    '- **list**: comma-separated (`--nats a:4222,b:4222`, or the flag repeated); a list in files.',
    "- **path**: relative paths start at the working directory, or in a config file at the file's folder.",
    '',
    '## Environment variable names',
    '',
    'Options of one subcommand are `SWITCHYARD_<SUBCOMMAND>_<FLAG>` (`SWITCHYARD_ROUTER_STRATEGY`).',
    'Options that mean the same everywhere drop the subcommand: the NATS connection',
    '(`SWITCHYARD_NATS_*`), `SWITCHYARD_LOG_LEVEL`, `SWITCHYARD_MODEL`, `SWITCHYARD_ALLOW_FAULT_INJECTION`,',
    `\`${KEYS_FILE_ENV}\` and \`${CONFIG_ENV}\`. \`up\` places the bridge, so it reads the bridge's`,
    '`SWITCHYARD_BRIDGE_HOST`, `SWITCHYARD_BRIDGE_PORT` and `SWITCHYARD_BRIDGE_CACHE` too.',
    '',
    '## The config file',
    '',
    'One file can serve a whole deployment: the shared `nats` section sits at the top level, and',
    'each subcommand reads its own section, whose keys follow the options object of its actor.',
    '`up --config FILE` hands the file on to every child it starts. The whole file is checked',
    'against every subcommand, so a typo in any section fails at once.',
    '',
    '```yaml',
    EXAMPLE_CONFIG_YAML.trimEnd(),
    '```',
    '',
    '## `up` and its children',
    '',
    '`up` starts every actor as its own process with `--id`, `--log-level`, `--model` and `--threads`',
    '(and `--device` with `--gpus`, `--metrics-port` with `--metrics`) set on its command line, and the',
    'bridge with `--host` and `--port` (and `--keys-file`, `--cache` when `up` is given them), so those win',
    'over the `replica`, `router` and `bridge` sections of a config file; everything else there applies.',
    'The NATS connection reaches the children through the environment.',
    '',
    '## Common options',
    '',
    '| flag | environment | meaning |',
    '| --- | --- | --- |',
    `| \`--config FILE\` | \`${CONFIG_ENV}\` | ${CONFIG_FILE_DEF.doc} |`,
    '| `-h`, `--help` | | Show the options of a subcommand. |',
    '',
    ...tables.flatMap(section),
  ].join('\n');
}
