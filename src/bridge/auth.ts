/**
 * API keys. The bridge keeps only SHA-256 hashes of the keys, so a heap dump, a log line or a
 * leaked config of a running bridge gives away no usable key. A presented key is hashed and
 * compared with every stored hash in constant time, without stopping at a match: the time an
 * answer takes says nothing about which key (or which hash prefix) matched.
 *
 * Keys are long random strings, so an unsalted fast hash is enough: there is no dictionary to
 * attack, unlike with passwords. Make one with the `node -e` line in `keys-file.ts`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { StartupError, UnauthorizedError } from '../errors/errors.ts';
import type { Authenticator, Caller } from './policy.ts';
import { OPEN_AUTHENTICATOR } from './policy-defaults.ts';
import {
  MAX_KEY_LENGTH,
  MIN_KEY_LENGTH,
  checkKeyEntries,
  readKeysFile,
  type ApiKeyEntry,
  type CheckedKeyEntry,
} from './keys-file.ts';

/** `Bearer <token>`: scheme case-insensitive (RFC 9110 §11.1), one token of visible ASCII. */
const BEARER = /^bearer +([\x21-\x7e]+) *$/i;
/** `<scheme> <credentials>`, to tell "wrong scheme" from "garbled header" in the message. */
const SCHEME = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +\S/;

/** Hex SHA-256 of a key: what a keys file stores as `key_sha256`. */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** A key as the bridge keeps it: its id, limits and hash, never the key. */
interface StoredKey {
  readonly caller: Caller;
  readonly hash: Buffer;
}

/** Byte comparison of two equal-length digests; replaceable so tests can watch the path. */
export type DigestCompare = (a: Buffer, b: Buffer) => boolean;

/** Checks `Authorization: Bearer <key>` against the configured keys' hashes. */
export class KeyAuthenticator implements Authenticator {
  readonly enabled = true;
  /** True when some key has rpm or tpm: the bridge then needs the shared KV bucket. */
  readonly sharedLimits: boolean;
  // A plain (not #) private field, so a test can inspect everything the object holds.
  private readonly keys: readonly StoredKey[];
  readonly #compare: DigestCompare;

  /** Plain keys in `entries` are hashed here; only the hashes are kept. */
  constructor(entries: readonly CheckedKeyEntry[], compare: DigestCompare = timingSafeEqual) {
    if (entries.length === 0) {
      throw new StartupError('config', 'API keys: the list is empty; give at least one key or none at all');
    }
    const keys = entries.map((e): StoredKey => {
      const hash = e.keySha256 !== undefined ? Buffer.from(e.keySha256, 'hex') : digest(e.key ?? '');
      const caller: Caller = { keyId: e.id };
      if (e.rpm !== undefined) caller.rpm = e.rpm;
      if (e.tpm !== undefined) caller.tpm = e.tpm;
      if (e.maxConcurrency !== undefined) caller.maxConcurrency = e.maxConcurrency;
      return { caller: Object.freeze(caller), hash };
    });
    const byHash = new Map<string, string>();
    for (const k of keys) {
      const other = byHash.get(k.hash.toString('hex'));
      if (other !== undefined) {
        throw new StartupError('config', `API keys: ${other} and ${k.caller.keyId} have the same key`);
      }
      byHash.set(k.hash.toString('hex'), k.caller.keyId);
    }
    this.keys = keys;
    this.#compare = compare;
    this.sharedLimits = keys.some((k) => k.caller.rpm !== undefined || k.caller.tpm !== undefined);
  }

  /** Ids of the configured keys (for logs at startup). */
  get keyIds(): string[] {
    return this.keys.map((k) => k.caller.keyId);
  }

  /**
   * The caller whose key is presented, or `UnauthorizedError` saying what is wrong with the
   * header. Messages never quote the presented value: it may be a real key sent to the wrong
   * place, and error messages reach logs.
   */
  authenticate(authorization: string | undefined): Caller {
    const header = authorization?.trim() ?? '';
    if (header === '') {
      throw new UnauthorizedError('missing API key: send it in the header "Authorization: Bearer <key>"');
    }
    const match = BEARER.exec(header);
    if (match === null) {
      const scheme = SCHEME.exec(header)?.[1];
      if (scheme === undefined || scheme.toLowerCase() === 'bearer') {
        throw new UnauthorizedError(
          'malformed Authorization header: expected "Bearer <key>" with a key of visible characters and no spaces',
        );
      }
      // A scheme as long as a key may be a key sent without "Bearer": do not quote it.
      const named = scheme.length < MIN_KEY_LENGTH ? ` '${scheme}'` : '';
      throw new UnauthorizedError(
        `unsupported authorization scheme${named}: send "Authorization: Bearer <key>"`,
      );
    }
    const presented = match[1] ?? '';
    if (presented.length > MAX_KEY_LENGTH) {
      throw new UnauthorizedError(`invalid API key: longer than ${MAX_KEY_LENGTH} characters`);
    }
    const hash = digest(presented);
    let found: Caller | undefined;
    // Compare with every key, also after a match: the loop's time must not depend on which one.
    for (const key of this.keys) {
      const same = this.#compare(hash, key.hash);
      if (same && found === undefined) found = key.caller;
    }
    if (found === undefined) {
      throw new UnauthorizedError('invalid API key: it matches none of the keys configured on this bridge');
    }
    return found;
  }
}

/** Where the bridge's keys come from. Giving neither runs without keys. */
export interface AuthOptions {
  /** JSON or YAML file of keys (see `keys-file.ts` for the format). @default none */
  keysFile?: string;
  /** Keys given inline (e.g. from the bridge's config file); added to the file's. @default none */
  keys?: readonly ApiKeyEntry[];
}

/**
 * The bridge's authenticator: keys from the file and inline, or the open one (every caller
 * anonymous) when neither is given. Reads the file synchronously: startup only.
 */
export function createAuthenticator(opts: AuthOptions = {}): Authenticator {
  const fromFile = opts.keysFile !== undefined && opts.keysFile !== '';
  if (!fromFile && opts.keys === undefined) return OPEN_AUTHENTICATOR;
  const entries: CheckedKeyEntry[] = [];
  if (fromFile) entries.push(...readKeysFile(opts.keysFile ?? ''));
  if (opts.keys !== undefined) entries.push(...checkKeyEntries(opts.keys, 'inline keys'));
  const ids = new Set<string>();
  for (const e of entries) {
    if (ids.has(e.id)) {
      throw new StartupError('config', `API keys: id ${e.id} is in both the keys file and the inline keys`);
    }
    ids.add(e.id);
  }
  return new KeyAuthenticator(entries);
}
