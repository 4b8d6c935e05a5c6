/**
 * The API keys configuration: a keys file (JSON or YAML) or entries given inline, checked once
 * at startup. A mistake in it (a typo in a field name, a limit of 0, a key id that cannot be a
 * NATS KV key token) stops the bridge with a message naming the entry and field, instead of
 * silently running with a limit nobody meant.
 *
 * Entries are snake_case like the rest of the files an operator writes:
 *
 * ```yaml
 * keys:
 *   - id: alice
 *     key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
 *     rpm: 60
 *     tpm: 20000
 *     max_concurrency: 4
 *   - id: ci
 *     key: sy-plain-key-hashed-at-load   # convenient for tests; prefer key_sha256
 * ```
 *
 * A top-level array of entries is accepted too. Make a key and its hash with
 * `node -e "const k='sy-'+require('crypto').randomBytes(24).toString('base64url');console.log(k, require('crypto').createHash('sha256').update(k).digest('hex'))"`.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ID_PATTERN } from '../cluster/subjects.ts';
import { StartupError } from '../errors/errors.ts';

/**
 * Shortest plain key accepted: 32 characters of a random key are beyond guessing by trying
 * (the `node -e` line above makes 35). A hashed key (`key_sha256`) cannot be measured: make it
 * from a key at least as long.
 */
export const MIN_KEY_LENGTH = 32;
/** Longest plain key accepted (and presented): bounds the work per request. */
export const MAX_KEY_LENGTH = 256;
/** A SHA-256 digest in hex. */
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
/** Visible ASCII without spaces: a key must survive an HTTP header unchanged. */
const KEY_CHARS = /^[\x21-\x7e]+$/;
const ENTRY_FIELDS = ['id', 'key_sha256', 'key', 'rpm', 'tpm', 'max_concurrency'] as const;

/** One key as an operator writes it (in a keys file or inline). */
export interface ApiKeyEntry {
  /** Names the key in logs, metrics and the shared limit counters; never secret. `[A-Za-z0-9_-]{1,64}`. */
  id: string;
  /** Hex SHA-256 of the key; give this or `key`. */
  key_sha256?: string;
  /** The key itself, hashed at load and then dropped; give this or `key_sha256`. */
  key?: string;
  /** Requests per minute over all bridges. @default unlimited */
  rpm?: number;
  /** Tokens (prompt + completion) per minute over all bridges. @default unlimited */
  tpm?: number;
  /** Requests at once on each bridge. @default unlimited */
  max_concurrency?: number;
}

/** A checked entry: exactly one of `keySha256` (lower-case hex) and `key`. */
export interface CheckedKeyEntry {
  id: string;
  keySha256?: string;
  key?: string;
  rpm?: number;
  tpm?: number;
  maxConcurrency?: number;
}

function configError(source: string, message: string): StartupError {
  return new StartupError('config', `API keys (${source}): ${message}`);
}

function positiveInt(source: string, where: string, value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw configError(source, `${where} must be an integer >= 1, got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkEntry(source: string, index: number, raw: unknown): CheckedKeyEntry {
  const at = `keys[${index}]`;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw configError(source, `${at} must be an object with id and key_sha256 (or key)`);
  }
  const e = raw as Record<string, unknown>;
  const unknown = Object.keys(e).filter((f) => !(ENTRY_FIELDS as readonly string[]).includes(f));
  if (unknown.length > 0) {
    throw configError(
      source,
      `${at} has unknown field ${unknown.join(', ')}; known: ${ENTRY_FIELDS.join(', ')}`,
    );
  }
  if (typeof e.id !== 'string' || !ID_PATTERN.test(e.id)) {
    throw configError(source, `${at}.id must match [A-Za-z0-9_-]{1,64}, got ${JSON.stringify(e.id)}`);
  }
  const where = `${at} (id ${e.id})`;
  const hasHash = e.key_sha256 !== undefined && e.key_sha256 !== null;
  const hasKey = e.key !== undefined && e.key !== null;
  if (hasHash === hasKey) {
    throw configError(source, `${where} needs exactly one of key_sha256 and key`);
  }
  const out: CheckedKeyEntry = { id: e.id };
  if (hasHash) {
    if (typeof e.key_sha256 !== 'string' || !SHA256_HEX.test(e.key_sha256)) {
      throw configError(source, `${where}.key_sha256 must be 64 hex digits (the SHA-256 of the key)`);
    }
    out.keySha256 = e.key_sha256.toLowerCase();
  } else {
    // Never quote a plain key in a message: it would end up in logs.
    if (typeof e.key !== 'string' || e.key.length > MAX_KEY_LENGTH) {
      throw configError(
        source,
        `${where}.key must be a string of ${MIN_KEY_LENGTH} to ${MAX_KEY_LENGTH} characters`,
      );
    }
    if (e.key.length < MIN_KEY_LENGTH) {
      throw configError(
        source,
        `${where}.key is ${e.key.length} characters long; plain keys must have at least ${MIN_KEY_LENGTH} ` +
          '(a short key can be guessed): make a long random one, or give key_sha256',
      );
    }
    if (!KEY_CHARS.test(e.key)) {
      throw configError(source, `${where}.key must be visible ASCII characters without spaces`);
    }
    out.key = e.key;
  }
  const rpm = positiveInt(source, `${where}.rpm`, e.rpm);
  const tpm = positiveInt(source, `${where}.tpm`, e.tpm);
  const maxConcurrency = positiveInt(source, `${where}.max_concurrency`, e.max_concurrency);
  if (rpm !== undefined) out.rpm = rpm;
  if (tpm !== undefined) out.tpm = tpm;
  if (maxConcurrency !== undefined) out.maxConcurrency = maxConcurrency;
  return out;
}

/**
 * Checks keys from a parsed file or inline option: an array of entries, or `{ keys: [...] }`.
 * Ids must be unique (they key the shared counters). Throws `StartupError('config')`.
 */
export function checkKeyEntries(value: unknown, source: string): CheckedKeyEntry[] {
  const list =
    value !== null && typeof value === 'object' && !Array.isArray(value) && 'keys' in value
      ? value.keys
      : value;
  if (!Array.isArray(list)) {
    throw configError(source, 'expected a list of keys, or an object with a "keys" list');
  }
  const entries = list.map((raw, i) => checkEntry(source, i, raw));
  const seen = new Set<string>();
  for (const entry of entries) {
    if (seen.has(entry.id)) throw configError(source, `id ${entry.id} is used by more than one key`);
    seen.add(entry.id);
  }
  return entries;
}

/** Reads and checks a keys file. YAML is a superset of JSON, so one parser reads both. */
export function readKeysFile(path: string): CheckedKeyEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new StartupError('config', `API keys file ${path} cannot be read: ${reason}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new StartupError('config', `API keys file ${path} is not valid JSON or YAML: ${reason}`, {
      cause: err,
    });
  }
  return checkKeyEntries(parsed, path);
}
