import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeFilters, readDatasetFilters } from '../../src/collector/dataset-filters.ts';
import { exportDataset, promptKey, type DatasetCounts } from '../../src/collector/datasets.ts';
import type { CollectedRecord } from '../../src/collector/record.ts';
import { InvalidRequestError } from '../../src/errors/errors.ts';
import { BASE_MS, rec } from './records.ts';

const CHAT = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi there' },
];

function sum(c: DatasetCounts): number {
  return c.not_completed + c.filtered_out + c.no_text + c.not_in_format + c.duplicates + c.exported;
}

describe('exportDataset: SFT', () => {
  it('writes plain requests as prompt/completion pairs and chats as messages plus the reply', () => {
    const out = exportDataset(
      [rec(1), rec(2, { prompt: undefined, messages: CHAT, output_text: 'Hello.' })],
      'sft',
    );
    assert.deepEqual(out.lines, [
      '{"prompt":"prompt 1","completion":"output 1"}',
      '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi there"},{"role":"assistant","content":"Hello."}]}',
    ]);
    assert.deepEqual(out.seqRange, { first: 1, last: 2 });
  });

  it('prefers a correction over the output', () => {
    const out = exportDataset(
      [
        rec(1, {}, { thumbs: 'down', rating: 0, correction: 'fixed 1' }),
        rec(2, { prompt: undefined, messages: CHAT }, { thumbs: 'down', rating: 0, correction: 'Hello!' }),
      ],
      'sft',
    );
    assert.deepEqual(out.lines, [
      '{"prompt":"prompt 1","completion":"fixed 1"}',
      '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi there"},{"role":"assistant","content":"Hello!"}]}',
    ]);
  });

  it('writes only role and content of each message, in that order', () => {
    const messages = [{ content: 'hi', role: 'user', name: 'ann' }] as unknown as typeof CHAT;
    const out = exportDataset([rec(1, { prompt: undefined, messages, output_text: 'yo' })], 'sft');
    assert.deepEqual(out.lines, [
      '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}',
    ]);
  });

  it('holds completed requests with their text only, and counts why each other record is out', () => {
    const records = [
      rec(1),
      rec(2, { finish_reason: 'length' }),
      rec(3, { finish_reason: 'cancelled' }),
      rec(4, { finish_reason: undefined, error: { code: 'busy', message: 'full' } }),
      rec(5, { final: false, finish_reason: undefined, error: { code: 'unavailable', message: 'drain' } }),
      rec(6, null, { thumbs: 'up' }),
      rec(7, { text_captured: false, output_text: undefined, prompt: undefined }),
      rec(8, { text_captured: false }),
      rec(9, { text_complete: false }),
      rec(10, { prompt: undefined }),
    ];
    const out = exportDataset(records, 'sft');
    assert.deepEqual(out.lines, [
      '{"prompt":"prompt 1","completion":"output 1"}',
      '{"prompt":"prompt 2","completion":"output 2"}',
    ]);
    assert.deepEqual(out.counts, {
      records: 10,
      not_completed: 4,
      filtered_out: 0,
      no_text: 4,
      not_in_format: 0,
      duplicates: 0,
      exported: 2,
    });
    assert.equal(sum(out.counts), out.counts.records);
  });
});

describe('exportDataset: preference', () => {
  it('pairs corrections only: chosen the correction, rejected the output; chats as messages', () => {
    const records = [
      rec(1),
      rec(2, {}, { thumbs: 'down', rating: 0, correction: 'fixed 2' }),
      rec(
        3,
        { prompt: undefined, messages: CHAT, output_text: 'Hello.' },
        { rating: 0.2, correction: 'Hi!' },
      ),
      // A correction equal to the output is no preference.
      rec(4, {}, { correction: 'output 4' }),
      rec(5, {}, { thumbs: 'up' }),
    ];
    const out = exportDataset(records, 'preference');
    assert.deepEqual(out.lines, [
      '{"prompt":"prompt 2","chosen":"fixed 2","rejected":"output 2"}',
      '{"prompt":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi there"}],' +
        '"chosen":[{"role":"assistant","content":"Hi!"}],"rejected":[{"role":"assistant","content":"Hello."}]}',
    ]);
    assert.equal(out.counts.not_in_format, 3);
    assert.deepEqual(out.seqRange, { first: 2, last: 3 });
    assert.equal(sum(out.counts), out.counts.records);
  });
});

describe('exportDataset: KTO', () => {
  it('labels the output by thumbs, or a rating-only feedback by rating ≥ 0.5', () => {
    const records = [
      rec(1, {}, { thumbs: 'up', rating: 1 }),
      rec(2, {}, { thumbs: 'down', rating: 0, correction: 'fixed 2' }),
      rec(3, {}, { thumbs: undefined, rating: 0.5 }),
      rec(4, {}, { thumbs: undefined, rating: 0.4 }),
      rec(5),
      rec(6, { prompt: undefined, messages: CHAT, output_text: 'Hello.' }, { thumbs: 'up' }),
    ];
    const out = exportDataset(records, 'kto');
    assert.deepEqual(out.lines, [
      '{"prompt":"prompt 1","completion":"output 1","label":true}',
      // The rated output, not the correction.
      '{"prompt":"prompt 2","completion":"output 2","label":false}',
      '{"prompt":"prompt 3","completion":"output 3","label":true}',
      '{"prompt":"prompt 4","completion":"output 4","label":false}',
      '{"prompt":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi there"}],' +
        '"completion":[{"role":"assistant","content":"Hello."}],"label":true}',
    ]);
    assert.equal(out.counts.not_in_format, 1);
  });
});

describe('exportDataset: deduplication by normalised prompt', () => {
  it('normalises case, whitespace and Unicode composition; chats by role:content', () => {
    assert.equal(promptKey({ prompt: '  Hello\n\tWorld ' }), promptKey({ prompt: 'hello world' }));
    assert.equal(promptKey({ prompt: 'caf\u00e9' }), promptKey({ prompt: 'cafe\u0301' }));
    assert.notEqual(promptKey({ prompt: 'hello world' }), promptKey({ prompt: 'hello  worlds' }));
    assert.equal(
      promptKey({ messages: [{ role: 'User', content: ' Hi   there' }] }),
      promptKey({ messages: [{ role: 'user', content: 'hi there' }] }),
    );
    assert.notEqual(
      promptKey({ messages: [{ role: 'user', content: 'hi there' }] }),
      promptKey({ messages: [{ role: 'system', content: 'hi there' }] }),
    );
    assert.notEqual(
      promptKey({ messages: [{ role: 'user', content: 'hi' }] }),
      promptKey({ prompt: 'user:hi' }),
    );
  });

  it('keeps the record with feedback, then the higher rating, then the earliest', () => {
    const same = (seq: number, prompt: string, fb?: Parameters<typeof rec>[2]): CollectedRecord =>
      rec(seq, { prompt }, fb);
    const records = [
      same(1, 'Tell me a joke'),
      same(2, 'tell me  a JOKE ', { thumbs: undefined, rating: 0.3 }),
      same(3, 'tell me a joke', { thumbs: undefined, rating: 0.9 }),
      same(4, 'Tell me a joke', { thumbs: undefined, rating: 0.9 }),
      same(5, 'Plain one'),
      same(6, 'plain ONE'),
    ];
    const out = exportDataset(records, 'sft');
    assert.deepEqual(out.lines, [
      '{"prompt":"tell me a joke","completion":"output 3"}',
      '{"prompt":"Plain one","completion":"output 5"}',
    ]);
    assert.equal(out.counts.duplicates, 4);
    assert.deepEqual(out.seqRange, { first: 3, last: 5 });
    assert.equal(sum(out.counts), out.counts.records);
  });

  it('deduplicates after the format chose its records: a corrected duplicate is kept for preference', () => {
    const records = [
      rec(1, { prompt: 'q' }, { thumbs: 'up' }),
      rec(2, { prompt: 'Q' }, { rating: 0, correction: 'a' }),
    ];
    const out = exportDataset(records, 'preference');
    assert.deepEqual(out.lines, ['{"prompt":"Q","chosen":"a","rejected":"output 2"}']);
    assert.equal(out.counts.duplicates, 0);
  });
});

describe('exportDataset: order', () => {
  it('writes lines in completion-sequence order, then request id, whatever order the records come in', () => {
    const records = [rec(3), rec(1), rec(2), rec(2, { request_id: 'a-first', prompt: 'other' })];
    const out = exportDataset(records, 'sft');
    assert.deepEqual(out.lines, [
      '{"prompt":"prompt 1","completion":"output 1"}',
      '{"prompt":"other","completion":"output 2"}',
      '{"prompt":"prompt 2","completion":"output 2"}',
      '{"prompt":"prompt 3","completion":"output 3"}',
    ]);
    assert.deepEqual(exportDataset([...records].reverse(), 'sft'), out);
  });

  it('has no sequence range when nothing is exported', () => {
    const out = exportDataset([rec(1)], 'preference');
    assert.deepEqual(out.lines, []);
    assert.equal(out.seqRange, null);
  });
});

describe('exportDataset: filters', () => {
  const records = [
    rec(1, { model: 'a', model_version: 'v1', finish_reason: 'stop' }),
    rec(2, { model: 'a', model_version: 'v2', finish_reason: 'length' }, { thumbs: 'up', rating: 1 }),
    rec(
      3,
      { model: 'b', model_version: undefined, finish_reason: 'stop' },
      { thumbs: undefined, rating: 0.6 },
    ),
    rec(4, { model: 'b', model_version: 'v1', finish_reason: 'length' }, { thumbs: 'down', rating: 0 }),
    rec(5, { model: 'a', model_version: 'v1', finish_reason: 'stop', ended_at: 'not a date' }),
  ];
  const seqs = (filters: Parameters<typeof exportDataset>[2]): number[] =>
    exportDataset(records, 'sft', filters).lines.map((l) => Number(/output (\d+)/.exec(l)?.[1]));

  it('without filters exports every completed request of every model', () => {
    assert.deepEqual(seqs({}), [1, 2, 3, 4, 5]);
  });

  it('selects by model and version (`unknown` for none)', () => {
    assert.deepEqual(seqs({ model: 'a' }), [1, 2, 5]);
    assert.deepEqual(seqs({ version: 'v1' }), [1, 4, 5]);
    assert.deepEqual(seqs({ version: 'unknown' }), [3]);
    assert.deepEqual(seqs({ model: 'a', version: 'v2' }), [2]);
  });

  it('selects by end time, since inclusive and until exclusive, as a Date or epoch ms', () => {
    assert.deepEqual(seqs({ since: BASE_MS + 2000 }), [2, 3, 4]);
    assert.deepEqual(seqs({ until: new Date(BASE_MS + 3000) }), [1, 2]);
    assert.deepEqual(seqs({ since: new Date(BASE_MS + 2000), until: BASE_MS + 4000 }), [2, 3]);
  });

  it('selects by rating, finish reason and feedback', () => {
    assert.deepEqual(seqs({ minRating: 0.6 }), [2, 3]);
    assert.deepEqual(seqs({ minRating: 0 }), [2, 3, 4]);
    assert.deepEqual(seqs({ finishReason: 'length' }), [2, 4]);
    assert.deepEqual(seqs({ finishReason: 'stop' }), [1, 3, 5]);
    assert.deepEqual(seqs({ hasFeedback: true }), [2, 3, 4]);
    assert.deepEqual(seqs({ hasFeedback: false }), [1, 5]);
  });

  it('counts what the filters left out', () => {
    const out = exportDataset(records, 'sft', { model: 'b' });
    assert.equal(out.counts.filtered_out, 3);
    assert.equal(out.counts.exported, 2);
  });

  it('refuses bad filters with an error that names the filter', () => {
    const bad: Array<[Parameters<typeof exportDataset>[2], RegExp]> = [
      [{ since: BASE_MS + 10, until: BASE_MS }, /since .* must be before until/],
      [{ since: new Date('nonsense') }, /since must be a valid date/],
      [{ until: Number.NaN }, /until must be a valid date/],
      [{ minRating: 1.5 }, /minRating must be a number in \[0, 1\]/],
      [{ finishReason: 'cancelled' as 'stop' }, /finishReason must be one of stop, length/],
    ];
    for (const [filters, message] of bad) {
      assert.throws(
        () => exportDataset(records, 'sft', filters),
        (err: unknown) => err instanceof InvalidRequestError && message.test(err.message),
        JSON.stringify(filters),
      );
    }
  });
});

describe('dataset filters over the wire', () => {
  it('reads back what describeFilters wrote, through JSON, selecting the same records', () => {
    const filters = {
      model: 'a',
      version: 'v1',
      since: new Date(BASE_MS),
      until: BASE_MS + 5000,
      minRating: 0.25,
      finishReason: 'length' as const,
      hasFeedback: true,
    };
    const wire = JSON.parse(JSON.stringify(describeFilters(filters))) as Record<string, unknown>;
    assert.deepEqual(wire, {
      model: 'a',
      version: 'v1',
      since: '2026-01-01T00:00:00.000Z',
      until: '2026-01-01T00:00:05.000Z',
      min_rating: 0.25,
      finish_reason: 'length',
      has_feedback: true,
    });
    const read = readDatasetFilters(wire);
    assert.deepEqual(describeFilters(read), wire);
    const records = [
      rec(1, { model: 'a', finish_reason: 'length' }, { rating: 0.5 }),
      rec(2, { model: 'a' }),
    ];
    assert.deepEqual(exportDataset(records, 'sft', read).lines, [
      '{"prompt":"prompt 1","completion":"output 1"}',
    ]);
    assert.deepEqual(exportDataset(records, 'sft', read), exportDataset(records, 'sft', filters));
    assert.deepEqual(readDatasetFilters({}), {});
    assert.deepEqual(readDatasetFilters({ since: BASE_MS, model: null }), { since: BASE_MS });
  });

  it('refuses unknown keys and bad values, naming them', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ min_ratin: 0.5 }, /unknown dataset filter min_ratin/],
      [{ since: 'yesterday' }, /since must be an ISO 8601 time or epoch milliseconds/],
      [{ min_rating: '0.5' }, /min_rating must be a number/],
      [{ finish_reason: 'cancelled' }, /finish_reason must be one of/],
      [{ has_feedback: 'yes' }, /has_feedback must be a boolean/],
      [{ model: '' }, /model must be a string of 1 to 64 characters/],
      [{ since: '2026-01-02T00:00:00Z', until: '2026-01-01T00:00:00Z' }, /since .* must be before until/],
    ];
    for (const [wire, message] of bad) {
      assert.throws(
        () => readDatasetFilters(wire),
        (err: unknown) => err instanceof InvalidRequestError && message.test(err.message),
        JSON.stringify(wire),
      );
    }
  });
});
