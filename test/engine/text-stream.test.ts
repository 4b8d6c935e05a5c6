import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { TextStream } from '../../src/engine/text-stream.ts';

const utf8 = new TextEncoder();

/** Pushes `chunks` and returns every delta's text, plus the flush when the stream did not stop. */
function run(stop: readonly string[], chunks: readonly Uint8Array[]): { deltas: string[]; stopped: boolean } {
  const stream = new TextStream(stop);
  const deltas: string[] = [];
  for (const chunk of chunks) {
    const delta = stream.push(chunk);
    deltas.push(delta.text);
    if (delta.stopped) return { deltas, stopped: true };
  }
  deltas.push(stream.flush());
  return { deltas, stopped: false };
}

/** Splits bytes at the given cut points. */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [0, ...cuts, bytes.length];
  return points.slice(1).map((end, i) => bytes.slice(points[i], end));
}

/** Every single byte as its own chunk: the finest split. */
function bytewise(text: string | Uint8Array): Uint8Array[] {
  return Array.from(typeof text === 'string' ? utf8.encode(text) : text, (b) => Uint8Array.of(b));
}

/** A fixed pseudo-random split (LCG), so that failures reproduce. */
function randomSplit(bytes: Uint8Array, seed: number): Uint8Array[] {
  let s = seed >>> 0;
  const cuts: number[] = [];
  for (let i = 1; i < bytes.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    if (s % 3 === 0) cuts.push(i);
  }
  return split(bytes, cuts);
}

describe('TextStream', () => {
  it('never splits a multi-byte character across deltas', () => {
    const text = 'caf\u00e9 \u2603 \u{1F600}!';
    const { deltas } = run([], bytewise(text));
    assert.equal(deltas.join(''), text);
    for (const delta of deltas) {
      assert.ok(!delta.includes('\uFFFD'), `replacement character in ${JSON.stringify(delta)}`);
      assert.ok(!/[\uD800-\uDBFF]$/.test(delta), 'delta ends inside a surrogate pair');
    }
    // 'é' is two bytes: the first alone yields nothing, the second the whole character.
    const stream = new TextStream([]);
    assert.deepEqual(stream.push(Uint8Array.of(0xc3)), { text: '', stopped: false });
    assert.deepEqual(stream.push(Uint8Array.of(0xa9, 0x41)), { text: '\u00e9A', stopped: false });
  });

  it('swallows a stop sequence that spans tokens and emits exactly the text before it', () => {
    const chunks = ['Hello wor', 'ld. ST', 'OP', ' never seen'].map((s) => utf8.encode(s));
    const { deltas, stopped } = run(['STOP'], chunks);
    assert.equal(stopped, true);
    assert.equal(deltas.join(''), 'Hello world. ');
    assert.equal(deltas.length, 3, 'stopped on the token that completed the stop sequence');
    assert.ok(!deltas.join('').includes('ST'));
  });

  it('holds a partial stop prefix back and releases it when the text diverges', () => {
    const stream = new TextStream(['</answer>']);
    assert.deepEqual(stream.push(utf8.encode('42 </ans')), { text: '42 ', stopped: false });
    assert.deepEqual(stream.push(utf8.encode('wer')), { text: '', stopped: false });
    assert.deepEqual(stream.push(utf8.encode('ing')), { text: '</answering', stopped: false });
    assert.equal(stream.stopped, false);
  });

  it('keeps holding when a diverging prefix still contains another possible start', () => {
    const stream = new TextStream(['abab']);
    assert.deepEqual(stream.push(utf8.encode('xaba')), { text: 'x', stopped: false });
    assert.deepEqual(stream.push(utf8.encode('a')), { text: 'aba', stopped: false });
    assert.deepEqual(stream.push(utf8.encode('bab')), { text: '', stopped: true });
    assert.equal(stream.stopSequence, 'abab');
  });

  it('flush releases held text, and incomplete UTF-8 at the end as U+FFFD', () => {
    const stream = new TextStream(['STOP']);
    assert.equal(stream.push(utf8.encode('end ST')).text, 'end ');
    assert.equal(stream.flush(), 'ST');
    assert.throws(() => stream.push(utf8.encode('x')));

    const cut = new TextStream([]);
    assert.equal(cut.push(Uint8Array.of(0x61, 0xe2, 0x98)).text, 'a');
    assert.equal(cut.flush(), '\uFFFD');
  });

  it('rejects pushes after a stop, and flush after a stop returns nothing', () => {
    const stream = new TextStream(['\n\n']);
    const delta = stream.push(utf8.encode('one\n\ntwo'));
    assert.deepEqual(delta, { text: 'one', stopped: true });
    assert.equal(stream.stopped, true);
    assert.throws(() => stream.push(utf8.encode('more')), /after the stream stopped/);
    assert.equal(stream.flush(), '');
  });

  it('lets the stop sequence that completes first win', () => {
    // "bc" completes before "abcd" does, whatever the split.
    for (const chunks of [[utf8.encode('xabcd')], bytewise('xabcd')]) {
      const { deltas, stopped } = run(['abcd', 'bc'], chunks);
      assert.equal(stopped, true);
      assert.equal(deltas.join(''), 'xa');
    }
    // Two stop sequences that end together: the longer one started first.
    assert.deepEqual(run(['bc', 'abc'], [utf8.encode('xabc')]).deltas.join(''), 'x');
  });

  it('matches stop sequences with multi-byte characters split across tokens', () => {
    const text = 'na\u00efve \u2603\u{1F600} tail';
    const { deltas, stopped } = run(['\u2603\u{1F600}'], bytewise(text));
    assert.equal(stopped, true);
    assert.equal(deltas.join(''), 'na\u00efve ');
  });

  it('gives identical output for every split of the same bytes', () => {
    const texts = [
      'plain ascii with STOP inside',
      'caf\u00e9 \u2603 \u{1F600} <|end|> after',
      'aaaaab and aab',
      'no stop here, just \u00e9\u00e9\u00e9 and \u{1F600}\u{1F601}',
      'abab ababab',
    ];
    const stopSets = [
      [],
      ['STOP'],
      ['<|end|>', '\u2603 \u{1F600}'],
      ['aab'],
      ['abab', 'bab'],
      ['\u00e9\u00e9x'],
    ];
    for (const text of texts) {
      const bytes = Uint8Array.of(...utf8.encode(text), 0xf0, 0x9f); // ends mid-character
      for (const stop of stopSets) {
        const whole = run(stop, [bytes]);
        const expected = whole.deltas.join('');
        const splits = [
          bytewise(bytes),
          ...Array.from({ length: 20 }, (_, seed) => randomSplit(bytes, seed)),
        ];
        for (const chunks of splits) {
          const result = run(stop, chunks);
          assert.equal(
            result.deltas.join(''),
            expected,
            `${JSON.stringify(text)} stop ${JSON.stringify(stop)}`,
          );
          if (result.stopped || whole.stopped) assert.equal(result.stopped, whole.stopped);
        }
      }
    }
  });

  it('a resumed stream emits exactly the remainder of the uninterrupted one', () => {
    const text = 'The snowman \u2603 said: "STO\u{1F600}P" then STOP and more';
    const tokens = randomSplit(utf8.encode(text), 7);
    const stop = ['STOP', '"STO\u{1F600}P!'];
    const original = new TextStream(stop);
    const emitted: string[] = [];
    for (const t of tokens) {
      emitted.push(original.push(t).text);
      if (original.stopped) break;
    }
    assert.ok(original.stopped);
    assert.ok(emitted.length < tokens.length - 1, 'the stop sequence is not at the very end');
    assert.equal(emitted.join(''), 'The snowman \u2603 said: "STO\u{1F600}P" then ');
    for (let k = 0; k <= emitted.length; k++) {
      const resumed = new TextStream(stop);
      for (const t of tokens.slice(0, k)) resumed.push(t); // replayed, text discarded
      const rest = tokens.slice(k, emitted.length).map((t) => resumed.push(t).text);
      assert.deepEqual(rest, emitted.slice(k), `resumed at token ${k}`);
      assert.ok(resumed.stopped);
    }
  });

  it('a resumed stream that did not stop flushes the same held text', () => {
    const text = 'ends with a partial </sto';
    const tokens = randomSplit(utf8.encode(text), 3);
    const original = new TextStream(['</stop>']);
    const emitted = tokens.map((t) => original.push(t).text);
    const held = original.flush();
    assert.equal(held, '</sto');
    assert.equal(emitted.join('') + held, text);
    const resumed = new TextStream(['</stop>']);
    for (const t of tokens) resumed.push(t);
    assert.equal(resumed.flush(), held);
  });

  it('ignores empty stop sequences', () => {
    assert.deepEqual(run([''], [utf8.encode('abc')]), { deltas: ['abc', ''], stopped: false });
  });
});
