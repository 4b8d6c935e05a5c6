/**
 * One option of one actor, declared once: where it lands in the actor's settings object, its
 * flag, environment variable and config-file key, its type, doc and default. The resolver, the
 * `--help` text and docs/configuration.md are all derived from these lists, so a flag cannot
 * exist without docs, and the docs cannot promise a default the code does not apply.
 */

/** Value types an option can have; each has one parser for text (flags, env) and one for files. */
export const OPTION_TYPES = ['string', 'int', 'bool', 'list', 'duration-ms', 'path'] as const;

/**
 * One of {@link OPTION_TYPES}. `duration-ms` takes `250`, `250ms`, `2s` or `1m` and yields
 * milliseconds; `path` resolves against the working directory (flags, env) or the config file's
 * folder (file), so a config file can name files beside it.
 */
export type OptionType = (typeof OPTION_TYPES)[number];

/** A parsed option value. */
export type OptionValue = string | number | boolean | string[];

/** Declaration of one option (see the module comment). */
export interface OptionDef {
  /** Dotted path in the actor's settings object, e.g. `engine.maxBatchSize`. */
  readonly key: string;
  /** Command-line flag without the leading dashes, e.g. `max-batch-size`. */
  readonly flag: string;
  /** Environment variable, or none for options that only make sense per invocation. */
  readonly env?: string;
  readonly type: OptionType;
  /** One sentence for `--help` and the docs: what it changes and why one would. */
  readonly doc: string;
  /** Applied when no source gives a value; shown in help and docs. */
  readonly default?: OptionValue;
  /** Shown instead of `default` when the default is computed at start-up (e.g. `cores`). */
  readonly defaultText?: string;
  /** Allowed values (each element, for lists). */
  readonly choices?: readonly string[];
  /** Inclusive bounds for `int` and `duration-ms`. */
  readonly min?: number;
  readonly max?: number;
  /** Further check of a parsed value: what is wrong with it, or undefined when it is fine. */
  readonly check?: (value: OptionValue) => string | undefined;
  /** Placeholder for the value in help, e.g. `DIR`. */
  readonly metavar?: string;
  /** Shared by every actor: the config file holds it at the top level, not in the actor's section. */
  readonly shared?: boolean;
  /** A credential: never echoed back in error messages. */
  readonly secret?: boolean;
}

/** The options of one subcommand. */
export interface OptionTable {
  /** Subcommand and config-file section, e.g. `replica`. */
  readonly section: string;
  /** One line for help and docs. */
  readonly summary: string;
  readonly defs: readonly OptionDef[];
}

/** Where a value came from, for error messages and for `up`'s contradiction checks. */
export type OptionSource =
  | { kind: 'flag'; name: string }
  | { kind: 'env'; name: string }
  | { kind: 'file'; path: string; key: string }
  | { kind: 'default' };

/** The key of an option inside a config file. */
export function fileKey(table: OptionTable, def: OptionDef): string {
  return def.shared === true ? def.key : `${table.section}.${def.key}`;
}

/** How a source reads in an error message: `--replicas`, `SWITCHYARD_UP_REPLICAS`, `up.replicas in f.yaml`. */
export function describeSource(source: OptionSource): string {
  switch (source.kind) {
    case 'flag':
      return `--${source.name}`;
    case 'env':
      return `environment variable ${source.name}`;
    case 'file':
      return `${source.key} in ${source.path}`;
    case 'default':
      return 'the default';
  }
}

/** The default as help and docs show it. */
export function defaultText(def: OptionDef): string | undefined {
  if (def.defaultText !== undefined) return def.defaultText;
  const d = def.default;
  if (d === undefined) return undefined;
  if (Array.isArray(d)) return d.join(',');
  return String(d);
}

/** Placeholder for the value: the metavar, the choices, or one derived from the type. */
export function metavar(def: OptionDef): string {
  if (def.type === 'bool') return '';
  if (def.metavar !== undefined) return def.metavar;
  if (def.choices !== undefined && def.type !== 'list') return def.choices.join('|');
  switch (def.type) {
    case 'int':
      return 'N';
    case 'duration-ms':
      return 'MS';
    case 'list':
      return 'A,B';
    case 'path':
      return 'FILE';
    case 'string':
      return 'TEXT';
  }
}
