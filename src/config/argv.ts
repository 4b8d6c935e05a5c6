/**
 * Command-line flags: `--name value`, `--name=value`, and bare `--name` for booleans. Strict on
 * purpose: an unknown flag or a stray argument is an error (with a suggestion), because a
 * silently ignored `--max-batch-siz 8` is a misconfigured replica nobody notices.
 */
import { StartupError } from '../errors/errors.ts';
import type { OptionDef } from './option.ts';
import { didYouMean } from './suggest.ts';

/** One flag as given, before its value is parsed. */
export interface FlagValue {
  readonly def: OptionDef;
  /** The text after the flag; `true` for a bare boolean flag. */
  readonly text: string;
}

/** What argv holds: flags in order (a later one overrides an earlier one), and whether help was asked. */
export interface ParsedArgv {
  readonly flags: readonly FlagValue[];
  readonly help: boolean;
}

function usageError(command: string, message: string): StartupError {
  return new StartupError('config', `${message}; see \`switchyard ${command} --help\``);
}

/**
 * Splits argv into flags known to `defs`. `command` names the subcommand in messages. Throws a
 * {@link StartupError} (reason `config`) naming the offending argument.
 */
export function parseArgv(command: string, argv: readonly string[], defs: readonly OptionDef[]): ParsedArgv {
  // Help wins over everything else on the line: `--help` next to a typo still shows the help.
  if (argv.includes('--help') || argv.includes('-h')) return { flags: [], help: true };
  const byFlag = new Map(defs.map((d) => [d.flag, d]));
  const flags: FlagValue[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--') || arg === '--') {
      throw usageError(command, `unexpected argument '${arg}' (options are given as --name value)`);
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const def = byFlag.get(name);
    if (def === undefined) {
      const hint = didYouMean(name, byFlag.keys(), (s) => `--${s}`);
      throw usageError(command, `unknown option --${name} for \`switchyard ${command}\`${hint}`);
    }
    if (eq !== -1) {
      flags.push({ def, text: arg.slice(eq + 1) });
    } else if (def.type === 'bool') {
      flags.push({ def, text: 'true' });
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        throw usageError(command, `--${name} needs a value`);
      }
      flags.push({ def, text: next });
      i++;
    }
  }
  return { flags, help: false };
}
