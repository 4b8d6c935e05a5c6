/** `--help` text, generated from the option tables so it cannot drift from what the resolver accepts. */
import { defaultText, metavar, type OptionDef, type OptionTable } from './option.ts';
import { CONFIG_FILE_DEF } from './resolve.ts';

/** Width the doc lines are wrapped to. */
const WRAP_AT = 100;
const INDENT = '      ';

function wrap(text: string, indent: string): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && indent.length + line.length + 1 + word.length > WRAP_AT) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}

function describeDef(def: OptionDef): string[] {
  const value = metavar(def);
  const head = `  --${def.flag}${value === '' ? '' : ` ${value}`}`;
  const facts = [
    def.choices === undefined
      ? undefined
      : `${def.type === 'list' ? 'each ' : ''}one of ${def.choices.join(', ')}`,
    defaultText(def) === undefined ? undefined : `default: ${defaultText(def)}`,
    def.env === undefined ? undefined : `env: ${def.env}`,
  ].filter((f) => f !== undefined);
  return [head, ...wrap(def.doc, INDENT), ...(facts.length > 0 ? wrap(facts.join('; '), INDENT) : [])];
}

/** Help of one subcommand: its options, then the NATS connection options, then the common ones. */
export function subcommandHelp(table: OptionTable): string {
  const own = table.defs.filter((d) => d.shared !== true);
  const nats = table.defs.filter((d) => d.shared === true);
  const out = [
    `Usage: switchyard ${table.section} [options]`,
    '',
    table.summary,
    '',
    'Options:',
    ...own.flatMap(describeDef),
  ];
  if (nats.length > 0) out.push('', 'NATS connection:', ...nats.flatMap(describeDef));
  out.push(
    '',
    'Common:',
    ...describeDef(CONFIG_FILE_DEF),
    '  -h, --help',
    `${INDENT}Show this help.`,
    '',
    'Precedence: flags > environment > config file > defaults. Durations take 250, 250ms, 2s or 1m.',
    'Every option, with its config-file key: docs/configuration.md',
  );
  return `${out.join('\n')}\n`;
}

/** A subcommand as the top-level help lists it. */
export interface CommandSummary {
  readonly name: string;
  readonly summary: string;
}

/** `switchyard --help`. */
export function topLevelHelp(commands: readonly CommandSummary[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return [
    'switchyard: an actor-based LLM serving cluster over NATS',
    '',
    'Usage: switchyard <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Run `switchyard <command> --help` for its options. Settings come from flags, SWITCHYARD_*',
    'environment variables and a --config file (JSON or YAML), in that order; docs/configuration.md',
    'lists them all.',
    '',
  ].join('\n');
}
