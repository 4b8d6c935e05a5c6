/**
 * The one place where flags, environment variables, the config file and defaults meet:
 * precedence is flags > environment > file > defaults, per option. Every actor's settings come
 * out of {@link resolveTable}; nothing else reads `process.env` for configuration.
 */
import { StartupError } from '../errors/errors.ts';
import { parseArgv, type FlagValue } from './argv.ts';
import { loadConfigFile, type ConfigFile } from './file.ts';
import {
  describeSource,
  fileKey,
  type OptionDef,
  type OptionSource,
  type OptionTable,
  type OptionValue,
} from './option.ts';
import { parseFileValue, parseText, type Parsed } from './values.ts';

/** Environment variable naming the config file when `--config` is not given. */
export const CONFIG_ENV = 'SWITCHYARD_CONFIG';

/** `--config FILE`: accepted by every subcommand, resolved before everything else. */
export const CONFIG_FILE_DEF: OptionDef = {
  key: 'configFile',
  flag: 'config',
  env: CONFIG_ENV,
  type: 'path',
  metavar: 'FILE',
  doc: 'JSON or YAML file with settings for any subcommand; flags and environment variables override it.',
};

/** Environment as the resolver reads it (tests pass their own). */
export type Environment = Readonly<Record<string, string | undefined>>;

/** What to resolve. */
export interface ResolveInput {
  /** Arguments after the subcommand. */
  readonly argv: readonly string[];
  /** @default process.env */
  readonly env?: Environment;
  /** Folder that relative paths in flags and the environment resolve against. @default process.cwd() */
  readonly cwd?: string;
}

/** The outcome: nested settings keyed like the table's `key` paths, and where each came from. */
export interface Resolution {
  /** `--help` was given: nothing else was resolved. */
  readonly help: boolean;
  readonly settings: Record<string, unknown>;
  /** Source of every option that has a value, by `key`. */
  readonly sources: ReadonlyMap<string, OptionSource>;
  /** The config file that was read, if any (absolute). */
  readonly configFile: string | undefined;
}

function setPath(target: Record<string, unknown>, key: string, value: OptionValue): void {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next === 'object' && next !== null) node = next as Record<string, unknown>;
    else node = node[part] = {};
  }
  node[parts[parts.length - 1] ?? key] = value;
}

function accept(parsed: Parsed, source: OptionSource): OptionValue {
  if (!parsed.ok) throw new StartupError('config', `${describeSource(source)}: ${parsed.problem}`);
  return parsed.value;
}

function envValue(env: Environment, def: OptionDef): string | undefined {
  const text = def.env === undefined ? undefined : env[def.env];
  return text === undefined || text === '' ? undefined : text; // `VAR=` means unset
}

/** A flag's value: the last occurrence wins, except that lists collect every occurrence. */
function fromFlags(def: OptionDef, flags: readonly FlagValue[], cwd: string): OptionValue | undefined {
  const given = flags.filter((f) => f.def === def);
  if (given.length === 0) return undefined;
  const source: OptionSource = { kind: 'flag', name: def.flag };
  if (def.type === 'list')
    return given.flatMap((f) => accept(parseText(def, f.text, cwd), source) as string[]);
  return accept(parseText(def, given[given.length - 1]?.text ?? '', cwd), source);
}

function valueOf(
  table: OptionTable,
  def: OptionDef,
  flags: readonly FlagValue[],
  env: Environment,
  file: ConfigFile | undefined,
  cwd: string,
): { value: OptionValue; source: OptionSource } | undefined {
  const flag = fromFlags(def, flags, cwd);
  if (flag !== undefined) return { value: flag, source: { kind: 'flag', name: def.flag } };
  const text = envValue(env, def);
  if (text !== undefined && def.env !== undefined) {
    const source: OptionSource = { kind: 'env', name: def.env };
    return { value: accept(parseText(def, text, cwd), source), source };
  }
  const key = fileKey(table, def);
  if (file?.values.has(key) === true) {
    const source: OptionSource = { kind: 'file', path: file.path, key };
    return { value: accept(parseFileValue(def, file.values.get(key), file.dir), source), source };
  }
  if (def.default !== undefined) return { value: def.default, source: { kind: 'default' } };
  return undefined;
}

/**
 * Resolves one subcommand's options. `allTables` are every subcommand's tables: the config file
 * is checked against all of them. Throws a {@link StartupError} (reason `config`) that names the
 * flag, environment variable or file key at fault.
 */
export function resolveTable(
  table: OptionTable,
  allTables: readonly OptionTable[],
  input: ResolveInput,
): Resolution {
  const env = input.env ?? process.env;
  const cwd = input.cwd ?? process.cwd();
  const argv = parseArgv(table.section, input.argv, [...table.defs, CONFIG_FILE_DEF]);
  if (argv.help) return { help: true, settings: {}, sources: new Map(), configFile: undefined };

  const configPath =
    (fromFlags(CONFIG_FILE_DEF, argv.flags, cwd) as string | undefined) ?? envValue(env, CONFIG_FILE_DEF);
  const file = configPath === undefined ? undefined : loadConfigFile(configPath, cwd, allTables);

  const settings: Record<string, unknown> = {};
  const sources = new Map<string, OptionSource>();
  for (const def of table.defs) {
    const found = valueOf(table, def, argv.flags, env, file, cwd);
    if (found === undefined) continue;
    setPath(settings, def.key, found.value);
    sources.set(def.key, found.source);
  }
  return { help: false, settings, sources, configFile: file?.path };
}

/**
 * `SWITCHYARD_*` variables that no table declares: most likely typos, worth a warning (not an
 * error: one environment is shared by every actor, and a newer release may know the name).
 */
export function unknownEnvironment(env: Environment, allTables: readonly OptionTable[]): string[] {
  const known = new Set([CONFIG_ENV, ...allTables.flatMap((t) => t.defs.map((d) => d.env))]);
  return Object.keys(env)
    .filter((name) => name.startsWith('SWITCHYARD_') && !known.has(name))
    .sort();
}
