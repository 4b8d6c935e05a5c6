/**
 * Incremental detokenisation with stop sequences.
 *
 * Each decode step yields a token's bytes (token-bytes.ts); the client wants text deltas. Two
 * things make that more than a lookup: a UTF-8 character may be split across tokens, and a stop
 * sequence may be split across tokens, so text that might turn out to be the start of a stop
 * sequence must not be sent until it is known not to be one (a stop sequence never reaches the
 * client, even in part).
 */

/** The decoder's streaming mode, hoisted so that a push allocates no options object. */
const STREAM = { stream: true } as const;

type State = 'open' | 'stopped' | 'flushed';

/** What one {@link TextStream.push} releases. */
export interface TextDelta {
  /** Text now safe to send: whole characters, none that a stop sequence may still claim. */
  text: string;
  /** A stop sequence completed: `text` ends just before it and the generation is over. */
  stopped: boolean;
}

/**
 * One per request: turns each step's token bytes into a text delta that never splits a UTF-8
 * character and never contains text that a pending stop sequence may still swallow.
 *
 * Stop sequences are matched on generated text only (never the prompt) and may span tokens. When
 * several could match, the one that completes first in the text wins (ties: the one that starts
 * first), which is what a character-by-character generator would do and the only rule under which
 * the output cannot depend on how the bytes were split into tokens.
 *
 * Deterministic: the concatenated output is a function of the byte sequence alone, whatever its
 * split into pushes, and so is the state (held-back text and incomplete UTF-8). A request resumed
 * on another replica rebuilds its stream by pushing the bytes of the tokens already generated and
 * discarding the returned text (the client already has it); what it then holds back is exactly
 * what the original held back, and it emits exactly the remainder the original would have.
 *
 * Cost per push is bounded by the token's text plus the longest stop sequence: the UTF-8 decoding
 * is streamed and only a tail shorter than the longest stop sequence is kept.
 */
export class TextStream {
  readonly #stops: readonly string[];
  readonly #maxStopLength: number;
  readonly #decoder = new TextDecoder('utf-8');
  /** Decoded text not yet released: a (possibly empty) proper prefix of some stop sequence. */
  #held = '';
  #state: State = 'open';
  #stopSequence: string | undefined;

  /** `stop`: the request's stop sequences (empty strings are ignored: they would match at once). */
  constructor(stop: readonly string[]) {
    this.#stops = stop.filter((s) => s.length > 0);
    this.#maxStopLength = this.#stops.reduce((max, s) => Math.max(max, s.length), 0);
  }

  /** Whether a stop sequence has completed; once true the generation is over. */
  get stopped(): boolean {
    return this.#state === 'stopped';
  }

  /** The stop sequence that ended the generation, if one did. */
  get stopSequence(): string | undefined {
    return this.#stopSequence;
  }

  /**
   * Feeds one token's bytes. The bytes are consumed before this returns, so a caller may reuse
   * the buffer. Pushing after the stream stopped or was flushed is a programming error.
   */
  push(bytes: Uint8Array): TextDelta {
    if (this.#state !== 'open') throw new Error(`TextStream.push after the stream ${this.#state}`);
    const text = this.#decoder.decode(bytes, STREAM);
    if (this.#maxStopLength === 0) return { text, stopped: false };
    if (text.length === 0) return { text: '', stopped: false };
    return this.#release(this.#held + text);
  }

  /**
   * Ends a generation that did not stop (length limit, EOS): returns everything held back, with an
   * incomplete UTF-8 sequence at the very end turned into U+FFFD as TextDecoder does. Should that
   * U+FFFD complete a stop sequence, the text ends before it and {@link stopped} becomes true.
   * After a stop it returns '' (nothing was held for a stopped stream).
   */
  flush(): string {
    if (this.#state === 'stopped') return '';
    if (this.#state === 'flushed') throw new Error('TextStream.flush called twice');
    const combined = this.#held + this.#decoder.decode();
    this.#held = '';
    const match = this.#firstMatch(combined);
    if (match >= 0) {
      this.#state = 'stopped';
      return combined.slice(0, match);
    }
    this.#state = 'flushed';
    return combined;
  }

  /** Releases what of `combined` (held + new text) can no longer be part of a stop sequence. */
  #release(combined: string): TextDelta {
    const match = this.#firstMatch(combined);
    if (match >= 0) {
      this.#held = '';
      this.#state = 'stopped';
      return { text: combined.slice(0, match), stopped: true };
    }
    const hold = this.#holdFrom(combined);
    this.#held = combined.slice(hold);
    return { text: combined.slice(0, hold), stopped: false };
  }

  /**
   * Start of the stop sequence that completes first in `combined`, or -1; a match ends the stream,
   * so the matching sequence is recorded for {@link stopSequence} here. `combined` starts at
   * the held text, and every possible match starts there: text before it was released because no
   * stop sequence could start in it.
   */
  #firstMatch(combined: string): number {
    let bestStart = -1;
    let bestEnd = Infinity;
    for (const stop of this.#stops) {
      const start = combined.indexOf(stop);
      if (start < 0) continue;
      const end = start + stop.length;
      if (end < bestEnd || (end === bestEnd && start < bestStart)) {
        bestStart = start;
        bestEnd = end;
        this.#stopSequence = stop;
      }
    }
    return bestStart;
  }

  /** The earliest index from which the rest of `combined` is a proper prefix of a stop sequence. */
  #holdFrom(combined: string): number {
    const length = combined.length;
    for (let from = Math.max(0, length - this.#maxStopLength + 1); from < length; from++) {
      for (const stop of this.#stops) {
        if (stop.length > length - from && startsWithSlice(stop, combined, from)) return from;
      }
    }
    return length;
  }
}

/** Whether `prefix` starts with text[from..], compared in place (no substring). */
function startsWithSlice(prefix: string, text: string, from: number): boolean {
  for (let i = from, j = 0; i < text.length; i++, j++) {
    if (text.charCodeAt(i) !== prefix.charCodeAt(j)) return false;
  }
  return true;
}
