/**
 * The version manifest's one decoder and the digest rule: the digest is sha256sum's output
 * (`<sha256>  <path>` lines sorted by path) hashed, and the decoder refuses a manifest whose
 * digest, paths, sizes, lineage or times are wrong, naming the field.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { InvalidRequestError } from '../../src/errors/errors.ts';
import { decodeAliasValue } from '../../src/registry/alias-record.ts';
import {
  decodeVersionManifest,
  encodeVersionManifest,
  isSafeRelativePath,
  versionDigest,
  type VersionManifest,
} from '../../src/registry/version-manifest.ts';

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

const files = [
  { path: 'tokenizer.json', size: 3, sha256: sha('tok') },
  { path: 'onnx/model.onnx', size: 5, sha256: sha('model') },
];

function manifest(): VersionManifest {
  return {
    id: 'm',
    version: '1.0',
    digest: versionDigest(files),
    files: [...files].sort((a, b) => a.path.localeCompare(b.path)),
    lineage: { parent: '0.9', dataset: sha('dataset'), trainer: 'train.py' },
    createdAt: '2026-12-02T04:00:00.000Z',
    pushedBy: 'ann@lab',
  };
}

/** The wire object of a manifest with `patch` applied. */
function wire(patch: Record<string, unknown>): string {
  const o = JSON.parse(new TextDecoder().decode(encodeVersionManifest(manifest()))) as Record<
    string,
    unknown
  >;
  return JSON.stringify({ ...o, ...patch });
}

function refused(text: string, why: RegExp): void {
  assert.throws(
    () => decodeVersionManifest(text, 'SY_MODEL_VERSIONS m.1.0'),
    (err: unknown) =>
      err instanceof InvalidRequestError &&
      /^SY_MODEL_VERSIONS m\.1\.0: invalid version manifest: /.test(err.message) &&
      why.test(err.message),
    why.source,
  );
}

describe('version manifests', () => {
  it('digest = sha256 of the sha256sum lines sorted by path, whatever order the files come in', () => {
    const lines = `${sha('model')}  onnx/model.onnx\n${sha('tok')}  tokenizer.json\n`;
    assert.equal(versionDigest(files), sha(lines));
    assert.equal(versionDigest([...files].reverse()), sha(lines));
  });

  it('round-trips through the one decoder, snake_case on the wire', () => {
    const m = manifest();
    const text = new TextDecoder().decode(encodeVersionManifest(m));
    assert.match(text, /"created_at":"2026-12-02T04:00:00.000Z"/);
    assert.match(text, /"pushed_by":"ann@lab"/);
    assert.deepEqual(decodeVersionManifest(text, 'x'), m);
  });

  it('refuses a digest that is not its files', () => {
    refused(wire({ digest: sha('other') }), /digest [0-9a-f]{64} is not the digest of its files/);
  });

  it('refuses unsafe or duplicate paths, bad sizes and sha256s, empty file lists', () => {
    const one = (f: Record<string, unknown>): string => wire({ files: [f] });
    refused(
      one({ path: '../etc/passwd', size: 1, sha256: sha('x') }),
      /files\[0\]\.path must be a relative path/,
    );
    refused(one({ path: '/abs', size: 1, sha256: sha('x') }), /files\[0\]\.path/);
    refused(one({ path: 'a\\b', size: 1, sha256: sha('x') }), /files\[0\]\.path/);
    refused(one({ path: '.switchyard-version.json', size: 1, sha256: sha('x') }), /files\[0\]\.path/);
    refused(one({ path: 'a', size: -1, sha256: sha('x') }), /files\[0\]\.size must be an integer >= 0/);
    refused(
      one({ path: 'a', size: 1, sha256: 'ABC' }),
      /files\[0\]\.sha256 must be a string matching 64 lowercase hex digits/,
    );
    refused(
      wire({
        files: [
          { path: 'a', size: 1, sha256: sha('x') },
          { path: 'a', size: 1, sha256: sha('x') },
        ],
      }),
      /files\[1\]\.path must be a path no other file has/,
    );
    refused(wire({ files: [] }), /files must hold 1 to \d+ entries, got 0/);
    assert.equal(isSafeRelativePath('onnx/model.onnx'), true);
    for (const p of ['', 'a//b', './a', 'a/./b', 'a/..', 'C:\\x'])
      assert.equal(isSafeRelativePath(p), false, p);
  });

  it('refuses bad ids, versions, lineage and times, naming the field', () => {
    refused(wire({ id: 'a.b' }), /id must be a string matching/);
    refused(wire({ version: 'a..b' }), /version must not start or end with '\.' nor contain '\.\.'/);
    refused(
      wire({ lineage: { dataset: 'nope' } }),
      /lineage\.dataset must be a string matching 64 lowercase hex digits/,
    );
    refused(wire({ lineage: { parent: 'a b' } }), /lineage\.parent must be a string matching/);
    refused(wire({ created_at: 'yesterday' }), /created_at must be an ISO 8601 time/);
    refused(wire({ pushed_by: '' }), /pushed_by must be a string of 1 to 256 characters/);
    refused('[]', /version manifest must be a JSON object/);
  });

  it('decodes alias values and refuses bad ones', () => {
    const ok = decodeAliasValue('{"version":"2","by":"ann@lab","at":"2026-12-02T04:00:00Z"}', 'k');
    assert.deepEqual(ok, { version: '2', by: 'ann@lab', at: '2026-12-02T04:00:00Z', reason: '' });
    assert.throws(
      () =>
        decodeAliasValue('{"version":"2","by":"","at":"2026-12-02T04:00:00Z"}', 'SY_MODEL_ALIASES m.stable'),
      /m\.stable: invalid alias value: by must be/,
    );
  });
});
