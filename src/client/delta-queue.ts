/**
 * The hand-off between NATS callbacks (which push) and a consumer's `for await` (which pulls).
 * NATS cannot be slowed down per request, so deltas are buffered; a request's deltas are bounded
 * by its max_tokens, and a slow consumer holds back only its own request.
 */
import type { SwitchyardError } from '../errors/errors.ts';

/** One request's items, then a quiet end or an error, for exactly one consumer. */
export class DeltaQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private readonly onEarlyExit: () => void;
  private waiter: (() => void) | undefined;
  private ended = false;
  private error: SwitchyardError | undefined;
  private iterated = false;

  /** `onEarlyExit` runs when the consumer stops iterating before the end (break, return, throw). */
  constructor(onEarlyExit: () => void) {
    this.onEarlyExit = onEarlyExit;
  }

  /** True once `close` or `fail` was called. */
  get done(): boolean {
    return this.ended;
  }

  push(item: T): void {
    if (this.ended) return;
    this.items.push(item);
    this.wake();
  }

  /** Ends the iteration after the buffered items. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.wake();
  }

  /** Throws `err` from the iteration after the buffered items. */
  fail(err: SwitchyardError): void {
    if (this.ended) return;
    this.ended = true;
    this.error = err;
    this.wake();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.iterated) throw new Error('a switchyard stream can be iterated only once');
    this.iterated = true;
    let finished = false;
    try {
      for (;;) {
        if (this.items.length > 0) {
          yield this.items.shift() as T;
          continue;
        }
        if (this.ended) {
          finished = true;
          if (this.error !== undefined) throw this.error;
          return;
        }
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
    } finally {
      if (!finished) this.onEarlyExit();
    }
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}
