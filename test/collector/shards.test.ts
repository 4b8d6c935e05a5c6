import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportDataset } from '../../src/collector/datasets.ts';
import { MANIFEST_FILE, writeShards, type ShardMeta } from '../../src/collector/shards.ts';
import { StartupError } from '../../src/errors/errors.ts';
import { BASE_MS, rec } from './records.ts';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

const RECORDS = [
  rec(5, {}, { thumbs: 'down', rating: 0, correction: 'fixed 5' }),
  rec(1),
  rec(3, { prompt: undefined, messages: [{ role: 'user', content: 'hi' }], output_text: 'hello' }),
  rec(2, { finish_reason: 'cancelled' }),
  rec(4),
  rec(6, { prompt: 'PROMPT 1' }),
  rec(7),
];

describe('writeShards', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sy-shards-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  function exportMeta(filters: ShardMeta['filters'] = {}): { lines: string[]; meta: ShardMeta } {
    const out = exportDataset(RECORDS, 'sft', filters);
    return { lines: out.lines, meta: { format: 'sft', filters, counts: out.counts, seqRange: out.seqRange } };
  }

  it('splits lines into shards of at most N lines and lists each with its size and sha256', async () => {
    const dir = join(root, 'split', 'nested');
    const { lines, meta } = exportMeta();
    assert.equal(lines.length, 5);
    const manifest = await writeShards(dir, lines, meta, { maxLinesPerShard: 2 });
    assert.deepEqual((await readdir(dir)).sort(), [
      MANIFEST_FILE,
      'sft-00000.jsonl',
      'sft-00001.jsonl',
      'sft-00002.jsonl',
    ]);
    assert.equal(
      await readFile(join(dir, 'sft-00000.jsonl'), 'utf8'),
      '{"prompt":"prompt 1","completion":"output 1"}\n' +
        '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n',
    );
    assert.equal(
      await readFile(join(dir, 'sft-00002.jsonl'), 'utf8'),
      '{"prompt":"prompt 7","completion":"output 7"}\n',
    );
    assert.deepEqual(
      manifest.shards.map((s) => [s.file, s.lines]),
      [
        ['sft-00000.jsonl', 2],
        ['sft-00001.jsonl', 2],
        ['sft-00002.jsonl', 1],
      ],
    );
    for (const shard of manifest.shards) {
      const bytes = await readFile(join(dir, shard.file));
      assert.equal(shard.bytes, bytes.length);
      assert.equal(shard.sha256, sha256(bytes));
    }
  });

  it('writes a manifest of format, filters, counts, source range and shards, and no time unless given', async () => {
    const dir = join(root, 'manifest');
    const filters = { since: new Date(BASE_MS), until: BASE_MS + 100_000, minRating: 0 };
    const { lines, meta } = exportMeta(filters);
    const manifest = await writeShards(dir, lines, meta);
    const bytes = await readFile(join(dir, 'sft-00000.jsonl'));
    assert.deepEqual(manifest, {
      created_by: 'switchyard',
      manifest_version: 1,
      format: 'sft',
      filters: { since: '2026-01-01T00:00:00.000Z', until: '2026-01-01T00:01:40.000Z', min_rating: 0 },
      counts: {
        records: 7,
        not_completed: 1,
        filtered_out: 5,
        no_text: 0,
        not_in_format: 0,
        duplicates: 0,
        exported: 1,
      },
      source: { stream: 'SY_COMPLETIONS', first_seq: 5, last_seq: 5 },
      shards: [{ file: 'sft-00000.jsonl', lines: 1, bytes: bytes.length, sha256: sha256(bytes) }],
    });
    assert.equal(bytes.toString('utf8'), '{"prompt":"prompt 5","completion":"fixed 5"}\n');
    assert.deepEqual(JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')), manifest);

    const timed = await writeShards(join(root, 'timed'), lines, { ...meta, createdAt: new Date(BASE_MS) });
    assert.equal(timed.created_at, '2026-01-01T00:00:00.000Z');
  });

  it('writes byte-identical directories for the same records and filters', async () => {
    const shuffled = [...RECORDS].reverse();
    const a = exportDataset(RECORDS, 'sft', {});
    const b = exportDataset(shuffled, 'sft', {});
    const metaOf = (o: typeof a): ShardMeta => ({
      format: 'sft',
      filters: {},
      counts: o.counts,
      seqRange: o.seqRange,
    });
    await writeShards(join(root, 'run-a'), a.lines, metaOf(a), { maxLinesPerShard: 3 });
    await writeShards(join(root, 'run-b'), b.lines, metaOf(b), { maxLinesPerShard: 3 });
    const files = (await readdir(join(root, 'run-a'))).sort();
    assert.deepEqual((await readdir(join(root, 'run-b'))).sort(), files);
    for (const f of files) {
      assert.ok(
        (await readFile(join(root, 'run-a', f))).equals(await readFile(join(root, 'run-b', f))),
        `${f} differs`,
      );
    }
    assert.equal(
      sha256(await readFile(join(root, 'run-a', MANIFEST_FILE))),
      sha256(await readFile(join(root, 'run-b', MANIFEST_FILE))),
    );
  });

  it('replaces a previous export, leaving none of its shards behind', async () => {
    const dir = join(root, 'replace');
    const { lines, meta } = exportMeta();
    await writeShards(dir, lines, meta, { maxLinesPerShard: 1 });
    assert.equal((await readdir(dir)).length, 6);
    const kto = exportDataset(RECORDS, 'kto', {});
    const manifest = await writeShards(dir, kto.lines, {
      ...meta,
      format: 'kto',
      counts: kto.counts,
      seqRange: kto.seqRange,
    });
    assert.deepEqual((await readdir(dir)).sort(), ['kto-00000.jsonl', MANIFEST_FILE]);
    assert.equal(manifest.shards[0]?.lines, 1);
  });

  it('writes an empty export as a manifest with no shard', async () => {
    const dir = join(root, 'empty');
    const none = exportDataset([rec(1)], 'preference');
    const manifest = await writeShards(dir, none.lines, {
      format: 'preference',
      filters: {},
      counts: none.counts,
      seqRange: none.seqRange,
    });
    assert.deepEqual(await readdir(dir), [MANIFEST_FILE]);
    assert.deepEqual(manifest.shards, []);
    assert.deepEqual(manifest.source, { stream: 'SY_COMPLETIONS', first_seq: null, last_seq: null });
  });

  it('refuses a directory with files no export wrote, and touches nothing in it', async () => {
    const dir = join(root, 'foreign');
    const { lines, meta } = exportMeta();
    await writeShards(dir, lines, meta);
    await writeFile(join(dir, 'notes.txt'), 'mine');
    await assert.rejects(
      writeShards(dir, lines, meta),
      (err: unknown) =>
        err instanceof StartupError &&
        err.reason === 'config' &&
        err.message.includes('notes.txt') &&
        err.message.includes('no dataset export wrote'),
    );
    assert.deepEqual((await readdir(dir)).sort(), [MANIFEST_FILE, 'notes.txt', 'sft-00000.jsonl']);

    const file = join(root, 'a-file');
    await writeFile(file, 'x');
    await assert.rejects(writeShards(file, lines, meta), /is not a directory/);
  });
});
