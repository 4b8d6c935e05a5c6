/**
 * The way programs use switchyard: generate requests over NATS to whichever router answers the
 * front door, streamed back token by token, with the router's failure hidden from the caller
 * (see `stream.ts`). One client serves any number of concurrent requests over one connection.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../cluster/connection.ts';
import { replyRequester } from '../cluster/reply-mux.ts';
import type { FeedbackInput } from '../capture/feedback-input.ts';
import type { FeedbackEvent } from '../cluster/messages/capture.ts';
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import { ID_PATTERN } from '../cluster/subjects.ts';
import { UnavailableError } from '../errors/errors.ts';
import { readPattern } from '../validation/fields.ts';
import { sendFeedback, type FeedbackOptions } from './feedback.ts';
import { compileClientOptions, type ClientOptions, type CompiledClientOptions } from './options.ts';
import { checkGenerateRequest, checkRequestId, deadlineFrom } from './request.ts';
import { RouterWatch } from './router-watch.ts';
import { ClientStream, type StreamResult } from './stream.ts';

/** Longest wait in `close()` for the cancels of in-flight requests to reach the server. */
const CLOSE_FLUSH_TIMEOUT_MS = 1_000;

/** Per-request options. */
export interface StreamOptions {
  /** Aborting cancels the request: the router is told, the stream ends with `CancelledError`. */
  signal?: AbortSignal;
  /** Time from now to the request's deadline. @default the client's defaultTimeoutMs */
  timeoutMs?: number;
  /** Idempotency key, e.g. to tie the request to the caller's own records. @default a random UUID */
  requestId?: string;
  /** W3C trace context of the caller's span, so one trace covers the whole request path. */
  traceparent?: string;
  /** W3C trace vendor state, sent with `traceparent`. */
  tracestate?: string;
  /**
   * The API key id the request is recorded under (`Sy-Key-Id`). Bridges set it for requests
   * made with a key; routers believe it only from a bridge's inbox. @default none
   */
  keyId?: string;
}

/** A finished generation: everything the stream carried, gathered. */
export interface GenerateResult extends StreamResult {
  text: string;
  tokenIds: number[];
  requestId: string;
}

/** A connection to a switchyard cluster. Create with {@link SwitchyardClient.connect}. */
export class SwitchyardClient {
  /** The NATS connection requests travel on. */
  readonly nc: NatsConnection;
  private readonly options: CompiledClientOptions;
  private readonly ownsConnection: boolean;
  private readonly watch: RouterWatch;
  private readonly inFlight = new Set<ClientStream>();
  private closing: Promise<void> | undefined;

  private constructor(nc: NatsConnection, options: CompiledClientOptions, ownsConnection: boolean) {
    this.nc = nc;
    this.options = options;
    this.ownsConnection = ownsConnection;
    this.watch = new RouterWatch(nc, options.routerSilenceMs);
  }

  /**
   * Connects (or adopts `opts.nc`). Rejects with a `StartupError` for contradictory options,
   * and with the errors of `connectNats` (`UnauthorizedError`, `UnavailableError`) when NATS
   * cannot be reached.
   */
  static async connect(opts: ClientOptions = {}): Promise<SwitchyardClient> {
    const options = compileClientOptions(opts);
    if (opts.nc !== undefined) return new SwitchyardClient(opts.nc, options, false);
    const nc = await connectNats({ ...opts.nats, inboxPrefix: options.inboxPrefix });
    return new SwitchyardClient(nc, options, true);
  }

  /**
   * Sends a generate request and returns its stream at once. Throws `InvalidRequestError`
   * synchronously for input the cluster would refuse, before anything is sent.
   */
  stream(req: GenerateRequest, opts: StreamOptions = {}): ClientStream {
    if (this.closing !== undefined) throw new UnavailableError('this SwitchyardClient is closed');
    const request = checkGenerateRequest(req);
    const requestId = checkRequestId(opts.requestId);
    const deadline = deadlineFrom(opts.timeoutMs ?? this.options.defaultTimeoutMs);
    if (opts.keyId !== undefined) readPattern('keyId', opts.keyId, ID_PATTERN, '[A-Za-z0-9_-]{1,64}');
    const stream = new ClientStream(
      { nc: this.nc, watch: this.watch, options: this.options },
      {
        request,
        requestId,
        deadline,
        traceparent: opts.traceparent,
        tracestate: opts.tracestate,
        keyId: opts.keyId,
        signal: opts.signal,
      },
    );
    this.inFlight.add(stream);
    const forget = (): void => void this.inFlight.delete(stream);
    stream.result.then(forget, forget);
    return stream;
  }

  /** Sends a request and waits for all of it; rejects with the stream's `SwitchyardError`. */
  async generate(req: GenerateRequest, opts: StreamOptions = {}): Promise<GenerateResult> {
    const stream = this.stream(req, opts);
    const tokenIds: number[] = [];
    let text = '';
    for await (const delta of stream) {
      tokenIds.push(...delta.tokenIds);
      text += delta.text;
    }
    const result = await stream.result;
    return { ...result, text, tokenIds, requestId: stream.requestId };
  }

  /**
   * Stores feedback on the completion of `requestId` (choice `feedback.index`, default 0): a
   * rating in [0, 1] or thumbs, maybe a correction, tags and a comment. Resolves with the stored
   * item once JetStream has it; rejects with `InvalidRequestError` naming a bad field, or with
   * `UnavailableError` when it could not be stored (it is never kept for later). Feedback may
   * come before its completion is recorded; a second one on the same choice replaces the first.
   */
  async feedback(
    requestId: string,
    feedback: FeedbackInput,
    opts: FeedbackOptions = {},
  ): Promise<FeedbackEvent> {
    if (this.closing !== undefined) throw new UnavailableError('this SwitchyardClient is closed');
    // Our requests' requester is our reply mux (a router keys them by it): the feedback says so.
    return sendFeedback(
      this.nc,
      requestId,
      feedback,
      opts,
      replyRequester(this.nc, this.options.inboxPrefix),
    );
  }

  /**
   * Cancels every request in flight (their routers are told), stops watching routers, and
   * closes the connection if the client opened it. Safe to call more than once.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const cancelled = this.inFlight.size;
    for (const stream of [...this.inFlight]) stream.cancel('the client was closed');
    this.watch.close();
    if (!this.ownsConnection || this.nc.isClosed()) return;
    if (cancelled > 0) {
      // nats.js closes without writing what is still buffered: get the cancels out first, but
      // never wait long on a connection that is down.
      let timer: NodeJS.Timeout | undefined;
      const giveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_FLUSH_TIMEOUT_MS)));
      await Promise.race([this.nc.flush().catch(() => undefined), giveUp]);
      clearTimeout(timer);
    }
    await this.nc.close();
  }
}
