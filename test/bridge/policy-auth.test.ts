/**
 * API keys: configured from a file (JSON or YAML) or inline, kept only as hashes, compared with
 * every stored hash in constant time, and refused with messages that say what is wrong without
 * quoting the key.
 */
import assert from 'node:assert/strict';
import { timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, describe, it } from 'node:test';
import { KeyAuthenticator, createAuthenticator, hashKey } from '../../src/bridge/auth.ts';
import { checkKeyEntries, readKeysFile } from '../../src/bridge/keys-file.ts';
import { OPEN_AUTHENTICATOR } from '../../src/bridge/policy-defaults.ts';
import { StartupError, UnauthorizedError } from '../../src/errors/errors.ts';

const ALICE_KEY = 'sy-alice-0123456789abcdef0123456789';
const BOB_KEY = 'sy-bob-fedcba9876543210xyz987654321';
const CAROL_KEY = 'sy-carol-5555555555555555555555555';

function rejectsWith(fn: () => unknown, pattern: RegExp, forbidden?: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UnauthorizedError, String(err));
    assert.equal(err.code, 'unauthorized');
    assert.match(err.message, pattern);
    if (forbidden !== undefined) assert.ok(!err.message.includes(forbidden), 'the message quotes the key');
    return true;
  });
}

function configError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof StartupError, String(err));
    assert.equal(err.reason, 'config');
    assert.match(err.message, pattern);
    return true;
  });
}

describe('API keys', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-keys-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('hashKey is the hex SHA-256 of the key', () => {
    assert.equal(hashKey('test'), '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08');
  });

  it('without keys every caller is anonymous', () => {
    const auth = createAuthenticator({});
    assert.equal(auth, OPEN_AUTHENTICATOR);
    assert.equal(auth.enabled, false);
    assert.equal(auth.authenticate(undefined).keyId, 'anonymous');
  });

  it('authenticates plain and hashed keys and returns the key id and limits', () => {
    const auth = createAuthenticator({
      keys: [
        { id: 'alice', key: ALICE_KEY, rpm: 60, tpm: 1000, max_concurrency: 2 },
        { id: 'bob', key_sha256: hashKey(BOB_KEY).toUpperCase() },
      ],
    });
    assert.equal(auth.enabled, true);
    assert.deepEqual(
      { ...auth.authenticate(`Bearer ${ALICE_KEY}`) },
      { keyId: 'alice', rpm: 60, tpm: 1000, maxConcurrency: 2 },
    );
    assert.deepEqual({ ...auth.authenticate(`bearer   ${BOB_KEY}`) }, { keyId: 'bob' });
  });

  it('keeps only hashes: the plain key is nowhere in the authenticator', () => {
    const auth = createAuthenticator({ keys: [{ id: 'alice', key: ALICE_KEY }] });
    const everything = inspect(auth, { depth: null, showHidden: true, maxArrayLength: null });
    assert.ok(everything.includes('alice'), 'inspect shows the stored keys (sanity check)');
    const hashBytes = (hashKey(ALICE_KEY).slice(0, 16).match(/../g) ?? []).join(' ');
    assert.ok(everything.includes(hashBytes), 'inspect shows the hash (sanity check)');
    assert.ok(!everything.includes(ALICE_KEY), 'the plain key is kept');
    assert.ok(!JSON.stringify(auth).includes(ALICE_KEY));
    assert.ok(!everything.includes(Buffer.from(ALICE_KEY).toString('hex')));
  });

  it('compares with every stored hash, whether the key matches the first, the last or none', () => {
    const calls: number[] = [];
    let count = 0;
    const counting = (a: Buffer, b: Buffer): boolean => {
      count++;
      assert.equal(a.length, 32);
      assert.equal(b.length, 32);
      return timingSafeEqual(a, b);
    };
    const auth = new KeyAuthenticator(
      checkKeyEntries(
        [
          { id: 'alice', key: ALICE_KEY },
          { id: 'bob', key: BOB_KEY },
          { id: 'carol', key: CAROL_KEY },
        ],
        'test',
      ),
      counting,
    );
    for (const header of [`Bearer ${ALICE_KEY}`, `Bearer ${CAROL_KEY}`, 'Bearer sy-nobody-000000000000000']) {
      count = 0;
      try {
        auth.authenticate(header);
      } catch {
        // unknown key: still compared with all three
      }
      calls.push(count);
    }
    assert.deepEqual(calls, [3, 3, 3]);
    assert.equal(auth.authenticate(`Bearer ${CAROL_KEY}`).keyId, 'carol');
  });

  it('refuses missing, malformed and unknown keys with a message that says what is wrong', () => {
    const auth = createAuthenticator({ keys: [{ id: 'alice', key: ALICE_KEY }] });
    rejectsWith(() => auth.authenticate(undefined), /missing API key.*Authorization: Bearer/);
    rejectsWith(() => auth.authenticate('   '), /missing API key/);
    rejectsWith(
      () => auth.authenticate(`Basic ${ALICE_KEY}`),
      /unsupported authorization scheme 'Basic'/,
      ALICE_KEY,
    );
    rejectsWith(() => auth.authenticate(ALICE_KEY), /malformed Authorization header/, ALICE_KEY);
    rejectsWith(() => auth.authenticate(`${ALICE_KEY} x`), /unsupported authorization scheme:/, ALICE_KEY);
    rejectsWith(() => auth.authenticate('Bearer'), /malformed Authorization header/);
    rejectsWith(() => auth.authenticate(`Bearer ${ALICE_KEY} extra`), /malformed/, ALICE_KEY);
    rejectsWith(() => auth.authenticate(`Bearer ${'x'.repeat(300)}`), /longer than 256/);
    const wrong = 'sy-wrong-key-00000000000000';
    rejectsWith(() => auth.authenticate(`Bearer ${wrong}`), /invalid API key/, wrong);
    rejectsWith(() => auth.authenticate(`Bearer ${ALICE_KEY}x`), /invalid API key/, ALICE_KEY);
  });

  it('reads keys files in YAML and JSON', () => {
    const yamlPath = join(dir, 'keys.yaml');
    writeFileSync(
      yamlPath,
      `keys:\n  - id: alice\n    key_sha256: ${hashKey(ALICE_KEY)}\n    rpm: 5\n  - id: bob\n    key: ${BOB_KEY}\n`,
    );
    const jsonPath = join(dir, 'keys.json');
    writeFileSync(jsonPath, JSON.stringify([{ id: 'carol', key: CAROL_KEY, tpm: 100 }]));
    assert.deepEqual(readKeysFile(yamlPath), [
      { id: 'alice', keySha256: hashKey(ALICE_KEY), rpm: 5 },
      { id: 'bob', key: BOB_KEY },
    ]);
    const auth = createAuthenticator({ keysFile: jsonPath, keys: [{ id: 'alice', key: ALICE_KEY }] });
    assert.equal(auth.authenticate(`Bearer ${CAROL_KEY}`).tpm, 100);
    assert.equal(auth.authenticate(`Bearer ${ALICE_KEY}`).keyId, 'alice');
    assert.ok(auth instanceof KeyAuthenticator && auth.sharedLimits);
  });

  it('rejects a bad keys configuration with a message naming the entry and field', () => {
    const check = (value: unknown): unknown => checkKeyEntries(value, 'keys.yaml');
    configError(() => check([{ id: 'a', key: ALICE_KEY, rmp: 5 }]), /keys\[0\] has unknown field rmp/);
    configError(() => check([{ id: 'a' }]), /keys\[0\] \(id a\) needs exactly one of key_sha256 and key/);
    configError(
      () => check([{ id: 'a', key: ALICE_KEY, key_sha256: hashKey(ALICE_KEY) }]),
      /exactly one of key_sha256 and key/,
    );
    // A plain key shorter than 32 characters can be guessed: refused at start-up, saying so.
    configError(
      () => check([{ id: 'a', key: 'sy-only-31-characters-long-0123' }]),
      /keys\[0\] \(id a\)\.key is 31 characters long; plain keys must have at least 32/,
    );
    configError(() => check([{ id: 'a', key: 42 }]), /key must be a string of 32 to 256 characters/);
    assert.equal(
      (check([{ id: 'a', key_sha256: hashKey('short') }]) as unknown[]).length,
      1,
      'a hashed key is fine',
    );
    configError(() => check([{ id: 'a', key_sha256: 'abc' }]), /key_sha256 must be 64 hex digits/);
    configError(() => check([{ id: 'a.b', key: ALICE_KEY }]), /keys\[0\]\.id must match/);
    configError(
      () => check([{ id: 'a', key: ALICE_KEY, rpm: 0 }]),
      /keys\[0\] \(id a\)\.rpm must be an integer >= 1/,
    );
    configError(() => check([{ id: 'a', key: ALICE_KEY, max_concurrency: 1.5 }]), /max_concurrency/);
    configError(
      () =>
        check([
          { id: 'a', key: ALICE_KEY },
          { id: 'a', key: BOB_KEY },
        ]),
      /id a is used by more than one key/,
    );
    configError(() => check({ users: [] }), /expected a list of keys/);
    configError(() => createAuthenticator({ keys: [] }), /the list is empty/);
    configError(
      () =>
        createAuthenticator({
          keys: [
            { id: 'a', key: ALICE_KEY },
            { id: 'b', key_sha256: hashKey(ALICE_KEY) },
          ],
        }),
      /a and b have the same key/,
    );
    configError(() => readKeysFile(join(dir, 'missing.yaml')), /cannot be read/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'keys: [ { id: a, key: "unterminated ] \n');
    configError(() => readKeysFile(bad), /not valid JSON or YAML/);
  });
});
