/**
 * The per-request hand-off between the worker's step messages and a consumer's `for await`.
 * Chunks are buffered without bound only in the sense that a request's chunks are bounded by
 * its max_tokens; a slow consumer never blocks other requests.
 */
import type { SwitchyardError } from '../errors/errors.ts';
import type {
  EngineAdmission,
  EngineChunk,
  EngineEnd,
  EngineStream,
  GenerateResult,
  RequestTimings,
} from './types.ts';

/**
 * One request's stream of chunks, then its end (or an error). It exists from the moment the
 * engine accepts the request, before its prompt is tokenized: {@link settle} records the
 * admission once the tokens are known.
 */
export class RequestChannel implements EngineStream {
  readonly end: Promise<EngineEnd>;
  readonly settled: Promise<EngineAdmission>;
  readonly timings: RequestTimings = { queuedAt: Date.now() };
  promptTokens = 0;
  maxTokens = 0;
  private readonly chunks: EngineChunk[] = [];
  private waiter: (() => void) | undefined;
  private done = false;
  private error: SwitchyardError | undefined;
  private resolveEnd!: (end: EngineEnd) => void;
  private rejectEnd!: (err: SwitchyardError) => void;
  private resolveSettled!: (admission: EngineAdmission) => void;
  private rejectSettled!: (err: SwitchyardError) => void;

  constructor(
    readonly seed: number | undefined,
    private readonly onCancel: () => void,
  ) {
    this.end = new Promise<EngineEnd>((resolve, reject) => {
      this.resolveEnd = resolve;
      this.rejectEnd = reject;
    });
    this.settled = new Promise<EngineAdmission>((resolve, reject) => {
      this.resolveSettled = resolve;
      this.rejectSettled = reject;
    });
    // A consumer that only iterates must not see an unhandled rejection of `end` or `settled`.
    this.end.catch(() => undefined);
    this.settled.catch(() => undefined);
  }

  /** Records what the request was admitted with (first call wins; ignored once it ended). */
  settle(admission: EngineAdmission): void {
    if (this.done) return;
    this.promptTokens = admission.promptTokens;
    this.maxTokens = admission.maxTokens;
    this.resolveSettled(admission);
  }

  push(chunk: EngineChunk): void {
    if (this.done) return;
    this.chunks.push(chunk);
    this.wake();
  }

  close(end: EngineEnd): void {
    if (this.done) return;
    this.done = true;
    this.resolveEnd(end);
    this.wake();
  }

  fail(err: SwitchyardError): void {
    if (this.done) return;
    this.done = true;
    this.error = err;
    this.rejectEnd(err);
    this.rejectSettled(err); // no effect when already settled
    this.wake();
  }

  /** Asks the engine to cancel; the end (finish reason `cancelled`) follows from the worker. */
  abort(): void {
    if (!this.done) this.onCancel();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<EngineChunk> {
    try {
      for (;;) {
        const chunk = this.chunks.shift();
        if (chunk) {
          yield chunk;
          continue;
        }
        if (this.done) {
          if (this.error) throw this.error;
          return;
        }
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
    } finally {
      // A consumer that stops iterating early no longer wants the rest.
      if (!this.done) this.abort();
    }
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}

/** Runs a stream to its end and collects the whole generation. */
export async function collect(stream: EngineStream): Promise<GenerateResult> {
  const tokenIds: number[] = [];
  let text = '';
  for await (const chunk of stream) {
    tokenIds.push(...chunk.tokenIds);
    text += chunk.text;
  }
  const { text: tail, ...end } = await stream.end;
  return { ...end, text: text + (tail ?? ''), tokenIds, seed: stream.seed };
}
