/**
 * The optional config file (`--config FILE`): JSON or YAML, one file for a whole deployment.
 * The shared `nats` section sits at the top level; each subcommand reads its own section
 * (`replica`, `router`, `bridge`, `up`), so `up --config FILE` hands the same file to every child.
 * The whole file is checked against every subcommand's options, so a typo in the `router`
 * section fails a replica's start too, instead of waiting for the day a router restarts.
 */
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { StartupError } from '../errors/errors.ts';
import { fileKey, type OptionTable } from './option.ts';
import { didYouMean } from './suggest.ts';

/** A config file's values by file key (`replica.engine.maxBatchSize`), still raw. */
export interface ConfigFile {
  /** Absolute path, as messages name it. */
  readonly path: string;
  /** Folder that relative paths inside the file resolve against. */
  readonly dir: string;
  readonly values: ReadonlyMap<string, unknown>;
}

function fileError(path: string, message: string, cause?: unknown): StartupError {
  return new StartupError('config', `config file ${path}: ${message}`, { cause });
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseText(path: string, text: string): unknown {
  const ext = extname(path).toLowerCase();
  try {
    if (ext === '.json') return JSON.parse(text) as unknown;
    if (ext === '.yaml' || ext === '.yml') return parseYaml(text, { prettyErrors: true }) as unknown;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw fileError(path, `is not valid ${ext === '.json' ? 'JSON' : 'YAML'}: ${reason}`, err);
  }
  throw fileError(path, `must end in .json, .yaml or .yml to say its format, got '${ext || '(none)'}'`);
}

/**
 * Reads and checks a config file against `tables`: every key must be an option of one of them.
 * Values are checked later, per option, by the resolver (which knows their types).
 */
export function loadConfigFile(file: string, cwd: string, tables: readonly OptionTable[]): ConfigFile {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : String(err);
    throw fileError(path, `cannot be read: ${reason}`, err);
  }
  const root = parseText(path, text) ?? {}; // an empty YAML file is null: no settings
  if (!isMapping(root))
    throw fileError(path, 'must be a mapping of sections (nats, replica, router, bridge, up)');

  const known = new Set(tables.flatMap((t) => t.defs.map((d) => fileKey(t, d))));
  const prefixes = new Set(
    [...known].flatMap((k) => k.split('.').map((_, i, parts) => parts.slice(0, i + 1).join('.'))),
  );
  const values = new Map<string, unknown>();

  const walk = (node: Record<string, unknown>, at: string): void => {
    for (const [name, value] of Object.entries(node)) {
      const key = at === '' ? name : `${at}.${name}`;
      if (value === null || value === undefined) continue; // `key:` with nothing, or JSON null: absent
      if (known.has(key)) {
        values.set(key, value);
      } else if (prefixes.has(key)) {
        if (!isMapping(value)) throw fileError(path, `${key} must be a mapping of options`);
        walk(value, key);
      } else {
        const siblings = [...prefixes].filter((p) => p.split('.').length === key.split('.').length);
        throw fileError(
          path,
          `unknown key '${key}'${didYouMean(key, siblings, (s) => `'${s}'`)}; docs/configuration.md lists every key`,
        );
      }
    }
  };
  walk(root, '');
  return { path, dir: dirname(path), values };
}
