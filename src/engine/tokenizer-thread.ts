/**
 * The main-thread handle of the tokenizer worker (tokenizer-worker.ts): `encode()` returns a
 * promise of the prompt's token ids. Its queue is bounded (the engine passes its own capacity,
 * which already caps live requests before they are tokenized, so the bound is a guard), and its
 * death fails every pending request with `engine_failed` and resolves `failed`.
 */
import { Worker } from 'node:worker_threads';
import {
  BusyError,
  EngineFailedError,
  InternalError,
  InvalidRequestError,
  StartupError,
  type SwitchyardError,
} from '../errors/errors.ts';
import type { FromTokenizer, TokenizeInput, ToTokenizer } from './tokenizer-protocol.ts';

interface Pending {
  resolve: (ids: number[]) => void;
  reject: (err: SwitchyardError) => void;
}

/** A tokenizer of one model in a worker thread of its own. */
export class TokenizerThread {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private dead: Error | undefined;
  private resolveFailed!: (err: Error) => void;
  /** Resolves (never rejects) if the worker dies on its own. */
  readonly failed = new Promise<Error>((resolve) => (this.resolveFailed = resolve));
  private readonly exited: Promise<void>;
  private stopping = false;

  private constructor(
    private readonly worker: Worker,
    /** Most requests that may wait for their tokens at once. */
    readonly capacity: number,
  ) {
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (msg: FromTokenizer) => this.onMessage(msg));
    worker.on('error', (err) => this.die(err));
    worker.on('exit', (code) => this.die(new Error(`tokenizer worker exited with code ${code}`)));
  }

  /** Starts the worker and resolves once its tokenizer is loaded. */
  static async start(dir: string, capacity: number): Promise<TokenizerThread> {
    const worker = new Worker(new URL('./tokenizer-worker-entry.mjs', import.meta.url), {
      workerData: { dir },
    });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', (msg: FromTokenizer) => {
        if (msg.type === 'ready') resolve();
        else if (msg.type === 'failed') reject(new StartupError('model_corrupt', msg.message));
      });
      worker.once('error', (err) =>
        reject(new StartupError('dependency', `tokenizer worker failed: ${err.message}`, { cause: err })),
      );
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return new TokenizerThread(worker, capacity);
  }

  /** Requests waiting for their tokens. */
  get queued(): number {
    return this.pending.size;
  }

  /**
   * Token ids of a prompt (chat messages rendered with the model's template first). Rejects with
   * `InvalidRequestError` when the input cannot be tokenized as asked, `BusyError` past the
   * queue bound, `EngineFailedError` when the worker died.
   */
  encode(input: TokenizeInput): Promise<number[]> {
    if (this.dead) {
      return Promise.reject(new EngineFailedError(`tokenizer worker died: ${this.dead.message}`));
    }
    if (this.pending.size >= this.capacity) {
      return Promise.reject(new BusyError(`tokenizer queue is full (${this.capacity} prompts waiting)`));
    }
    const id = this.nextId++;
    return new Promise<number[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: ToTokenizer = { type: 'encode', id, input };
      this.worker.postMessage(msg);
    });
  }

  /** Makes the worker die of an uncaught error (fault injection; the engine checks it is allowed). */
  crash(): void {
    const msg: ToTokenizer = { type: 'crash' };
    this.worker.postMessage(msg);
  }

  /** Stops the worker; pending requests fail. Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (!this.dead) await this.worker.terminate();
    await this.exited;
  }

  private onMessage(msg: FromTokenizer): void {
    if (msg.type !== 'encoded' && msg.type !== 'refused' && msg.type !== 'error') return;
    const waiter = this.pending.get(msg.id);
    if (!waiter) return;
    this.pending.delete(msg.id);
    if (msg.type === 'encoded') waiter.resolve(Array.from(msg.ids));
    else if (msg.type === 'refused') waiter.reject(new InvalidRequestError(msg.message));
    else waiter.reject(new InternalError(`tokenizing failed: ${msg.message}`));
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    const failure = new EngineFailedError(
      this.stopping ? 'engine stopped while tokenizing' : `tokenizer worker died: ${err.message}`,
      { cause: err },
    );
    for (const waiter of this.pending.values()) waiter.reject(failure);
    this.pending.clear();
    if (!this.stopping) this.resolveFailed(err);
  }
}
