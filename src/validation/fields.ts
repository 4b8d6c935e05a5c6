/**
 * Field readers shared by the message decoders. Each one checks type and range together and
 * throws {@link InvalidRequestError} with a message of one shape — `<field> must be <what>, got
 * <value>` — so a client in any language learns exactly which field to fix (DESIGN.md invariant 6).
 */
import { InvalidRequestError } from '../errors/errors.ts';

/** A decoded JSON object whose fields are not checked yet. */
export type WireObject = Readonly<Record<string, unknown>>;

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** Shortest useful rendering of a bad value for an error message (never the whole prompt). */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'undefined':
      return 'nothing';
    default:
      return `a ${typeof value}`;
  }
}

/** Throws the one error shape every decoder uses. */
export function invalidField(field: string, expected: string, value: unknown): never {
  throw new InvalidRequestError(`${field} must be ${expected}, got ${describeValue(value)}`);
}

/** Parses a message body that must be one JSON object; `what` names the message in errors. */
export function parseObject(data: Uint8Array | string, what: string): WireObject {
  let text: string;
  let parsed: unknown;
  try {
    text = typeof data === 'string' ? data : decoder.decode(data);
  } catch (err) {
    throw new InvalidRequestError(`${what} body is not valid UTF-8`, { cause: err });
  }
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new InvalidRequestError(`${what} body is not valid JSON: ${detail}`, { cause: err });
  }
  return readObject(what, parsed);
}

/** A JSON object (not null, not an array). */
export function readObject(field: string, value: unknown): WireObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    invalidField(field, 'a JSON object', value);
  }
  return value as WireObject;
}

/** Serialises a wire object, leaving out fields whose value is undefined (JSON.stringify does). */
export function encodeObject(value: Readonly<Record<string, unknown>>): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** The value of an optional field: JSON null counts as absent, as most JSON encoders emit it. */
export function optionalField(obj: WireObject, key: string): unknown {
  const value = obj[key];
  return value === null ? undefined : value;
}

/** Bounds of a string field. */
export interface StringRule {
  minLength?: number;
  maxLength: number;
}

/** A string whose length (in UTF-16 units) lies within the rule. */
export function readString(field: string, value: unknown, rule: StringRule): string {
  const min = rule.minLength ?? 0;
  if (typeof value !== 'string') invalidField(field, 'a string', value);
  if (value.length < min || value.length > rule.maxLength) {
    const expected =
      min > 0
        ? `a string of ${min} to ${rule.maxLength} characters`
        : `a string of at most ${rule.maxLength} characters`;
    throw new InvalidRequestError(`${field} must be ${expected}, got ${value.length} characters`);
  }
  return value;
}

/** A string matching `pattern` (described by `shape` in the error). */
export function readPattern(field: string, value: unknown, pattern: RegExp, shape: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) {
    invalidField(field, `a string matching ${shape}`, value);
  }
  return value;
}

/** Bounds of a numeric field; `max` may be Infinity, `exclusiveMin` makes `min` exclusive. */
export interface NumberRule {
  min: number;
  max: number;
  exclusiveMin?: boolean;
}

function rangeText(rule: NumberRule): string {
  const low = rule.exclusiveMin ? `> ${rule.min}` : `>= ${rule.min}`;
  if (rule.max === Infinity) return low;
  if (rule.exclusiveMin) return `in (${rule.min}, ${rule.max}]`;
  return `between ${rule.min} and ${rule.max}`;
}

function inRange(value: number, rule: NumberRule): boolean {
  const aboveMin = rule.exclusiveMin ? value > rule.min : value >= rule.min;
  return aboveMin && value <= rule.max;
}

/** A finite number within the rule (NaN and ±Infinity are rejected; JSON cannot carry them anyway). */
export function readNumber(field: string, value: unknown, rule: NumberRule): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !inRange(value, rule)) {
    invalidField(field, `a number ${rangeText(rule)}`, value);
  }
  return value;
}

/** A safe integer within the rule. */
export function readInt(field: string, value: unknown, rule: NumberRule): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || !inRange(value, rule)) {
    invalidField(field, `an integer ${rangeText(rule)}`, value);
  }
  return value;
}

/** An array of at most `maxLength` integers, each within `each`; names the first bad element. */
export function readIntArray(
  field: string,
  value: unknown,
  each: NumberRule,
  length: { min: number; max: number },
): number[] {
  if (!Array.isArray(value)) invalidField(field, 'an array of integers', value);
  if (value.length < length.min || value.length > length.max) {
    const expected = length.min > 0 ? `${length.min} to ${length.max}` : `at most ${length.max}`;
    throw new InvalidRequestError(`${field} must have ${expected} entries, got ${value.length}`);
  }
  value.forEach((item: unknown, i) => readInt(`${field}[${i}]`, item, each));
  return value as number[];
}

/** One of a fixed set of strings. */
export function readEnum<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    invalidField(field, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`, value);
  }
  return value as T;
}

/** Reads an optional field with `read`, or undefined when the field is absent or null. */
export function readOptional<T>(
  obj: WireObject,
  key: string,
  read: (field: string, value: unknown) => T,
): T | undefined {
  const value = optionalField(obj, key);
  return value === undefined ? undefined : read(key, value);
}
