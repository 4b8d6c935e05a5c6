/**
 * The argument splitting of the commands that take positionals (`models`, `rollout`): a flag
 * that takes a value takes the next argument, so `--reason "a b" stable` keeps `stable`
 * positional; the flags then go to the option table's resolver.
 */
import type { OptionTable } from '../config/option.ts';

export function splitArgs(
  argv: readonly string[],
  table: OptionTable,
): { positionals: string[]; flags: string[] } {
  const valueless = new Set(table.defs.filter((d) => d.type === 'bool').map((d) => d.flag));
  valueless.add('help');
  const positionals: string[] = [];
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '-h') flags.push(arg);
    else if (!arg.startsWith('--')) positionals.push(arg);
    else {
      flags.push(arg);
      const name = arg.slice(2);
      if (!name.includes('=') && !valueless.has(name) && i + 1 < argv.length) flags.push(argv[++i] ?? '');
    }
  }
  return { positionals, flags };
}
