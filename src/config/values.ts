/**
 * Turns raw option values into typed ones: text from flags and the environment, or parsed JSON /
 * YAML from a config file. Each parser says what is wrong in words a user can act on; the caller
 * adds where the value came from.
 */
import { isAbsolute, resolve } from 'node:path';

/** A URL (`registry://…`) where a path may go: kept as it is, never resolved against a folder. */
const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//;

/** A path option's value: absolute, or resolved against `base`; URLs pass unchanged. */
function resolvePath(base: string, text: string): string {
  return URL_SCHEME.test(text) || isAbsolute(text) ? text : resolve(base, text);
}
import type { OptionDef, OptionValue } from './option.ts';

/** A parsed value, or what is wrong with the raw one. */
export type Parsed = { ok: true; value: OptionValue } | { ok: false; problem: string };

const TRUE_WORDS = ['1', 'true', 'yes', 'on'];
const FALSE_WORDS = ['0', 'false', 'no', 'off'];
const DURATION = /^(\d+)\s*(ms|s|m)?$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000 };

function ok(value: OptionValue): Parsed {
  return { ok: true, value };
}

function bad(problem: string): Parsed {
  return { ok: false, problem };
}

/** The raw value as an error message may quote it (credentials are never echoed). */
function shown(def: OptionDef, raw: unknown): string {
  if (def.secret === true) return '(hidden)';
  if (typeof raw === 'string') return `'${raw}'`;
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  if (raw === null) return 'null';
  return Array.isArray(raw) ? 'a list' : typeof raw === 'object' ? 'a mapping' : typeof raw;
}

function range(def: OptionDef): string {
  if (def.min !== undefined && def.max !== undefined) return ` between ${def.min} and ${def.max}`;
  if (def.min !== undefined) return ` >= ${def.min}`;
  if (def.max !== undefined) return ` <= ${def.max}`;
  return '';
}

function inRange(def: OptionDef, n: number): boolean {
  return (def.min === undefined || n >= def.min) && (def.max === undefined || n <= def.max);
}

function checked(def: OptionDef, value: OptionValue): Parsed {
  if (def.choices !== undefined) {
    const items = Array.isArray(value) ? value : [value];
    const wrong = items.find((v) => typeof v !== 'string' || !def.choices?.includes(v));
    if (wrong !== undefined) {
      return bad(`expected one of ${def.choices.join(', ')}, got ${shown(def, wrong)}`);
    }
  }
  const problem = def.check?.(value);
  return problem === undefined ? ok(value) : bad(problem);
}

function parseInt10(def: OptionDef, text: string, raw: unknown): Parsed {
  const n = /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n) || !inRange(def, n)) {
    return bad(`expected an integer${range(def)}, got ${shown(def, raw)}`);
  }
  return checked(def, n);
}

function parseDuration(def: OptionDef, text: string, raw: unknown): Parsed {
  const m = DURATION.exec(text.trim());
  const n = m?.[1] === undefined ? NaN : Number(m[1]) * (UNIT_MS[m[2] ?? 'ms'] ?? NaN);
  if (!Number.isSafeInteger(n) || !inRange(def, n)) {
    return bad(
      `expected a duration in milliseconds${range(def)} (e.g. 250, 250ms, 2s, 1m), got ${shown(def, raw)}`,
    );
  }
  return checked(def, n);
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * Parses a value given as text (a flag or an environment variable). Paths resolve against
 * `baseDir` (the working directory).
 */
export function parseText(def: OptionDef, text: string, baseDir: string): Parsed {
  switch (def.type) {
    case 'string':
      return checked(def, text);
    case 'path':
      return text === ''
        ? bad('expected a path, got an empty value')
        : checked(def, resolvePath(baseDir, text));
    case 'int':
      return parseInt10(def, text, text);
    case 'duration-ms':
      return parseDuration(def, text, text);
    case 'bool': {
      const word = text.trim().toLowerCase();
      if (TRUE_WORDS.includes(word)) return checked(def, true);
      if (FALSE_WORDS.includes(word)) return checked(def, false);
      return bad(`expected true or false (or 1/0, yes/no, on/off), got ${shown(def, text)}`);
    }
    case 'list':
      return checked(def, splitList(text));
  }
}

/**
 * Parses a value from a config file, where JSON and YAML already give numbers, booleans and
 * lists. Types are strict (a quoted "4" is not an integer), except that durations may carry a
 * unit and lists may be one comma-separated string. Relative paths resolve against `fileDir`.
 */
export function parseFileValue(def: OptionDef, raw: unknown, fileDir: string): Parsed {
  switch (def.type) {
    case 'string':
      if (typeof raw === 'string') return checked(def, raw);
      // YAML reads `id: 7` as a number; an id or a device name is still meant as text.
      if (typeof raw === 'number' && Number.isFinite(raw)) return checked(def, String(raw));
      return bad(`expected a string, got ${shown(def, raw)}`);
    case 'path':
      return typeof raw === 'string' && raw !== ''
        ? checked(def, resolvePath(fileDir, raw))
        : bad(`expected a path (a string), got ${shown(def, raw)}`);
    case 'int':
      return typeof raw === 'number'
        ? parseInt10(def, String(raw), raw)
        : bad(`expected an integer${range(def)}, got ${shown(def, raw)}`);
    case 'duration-ms':
      if (typeof raw === 'number' || typeof raw === 'string') return parseDuration(def, String(raw), raw);
      return bad(`expected a duration in milliseconds (e.g. 250 or '2s'), got ${shown(def, raw)}`);
    case 'bool':
      return typeof raw === 'boolean'
        ? checked(def, raw)
        : bad(`expected true or false, got ${shown(def, raw)}`);
    case 'list':
      if (typeof raw === 'string') return checked(def, splitList(raw));
      if (Array.isArray(raw) && raw.every((v) => typeof v === 'string' || typeof v === 'number')) {
        return checked(def, raw.map(String));
      }
      return bad(`expected a list of strings, got ${shown(def, raw)}`);
  }
}
