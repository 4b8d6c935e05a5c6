/**
 * One request of a load client through a bridge's OpenAI API, as a careful user's client sends
 * it: its own `x-request-id` (the operation id), and on a connection error, a stream cut without
 * `[DONE]`, or an answer whose error code is retryable (busy 429, unavailable 503, internal 500;
 * src/errors/errors.ts), a retry with the same id after a backoff (Retry-After when the bridge
 * sends one). The HTTP API has no resume: a retry restarts the generation, so every attempt's
 * chunks are recorded under its attempt number and the checker compares each by text (the
 * bridge's answers carry text, not token ids).
 */
import type { ChunkRecord, Operation, OperationRequest, Outcome, Via } from './history/types.ts';

/** Error codes whose requests a client may send again (RETRYABLE in src/errors/errors.ts). */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set(['busy', 'unavailable', 'internal']);
/** First backoff after a failed attempt; doubled on each further failure. */
export const BACKOFF_START_MS = 100;
/** Longest backoff between attempts (a restarting bridge takes a few seconds). */
export const BACKOFF_MAX_MS = 1_000;
/** Code recorded when the last attempt failed at the connection (refused, reset, cut stream). */
export const CONNECTION_ERROR = 'connection_error';

/** The HTTP paths of each via. */
const PATHS: Readonly<Record<Exclude<Via, 'nats'>, string>> = {
  http: '/v1/completions',
  'http-stream': '/v1/completions',
  'http-chat': '/v1/chat/completions',
};

/** What one HTTP request needs beyond the operation it fills. */
export interface HttpRequestContext {
  baseUrl: string;
  /** Aborted when the runner stops the load: open requests are recorded unknown. */
  stopped: AbortSignal;
  /** Called on the first chunk of a streamed operation (faults land mid-stream). */
  onStreaming(): void;
}

/** An attempt that failed in a way the client retries. */
class RetryableAttempt extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly httpStatus: number | undefined,
    /** From Retry-After, when the bridge sent one. */
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
    this.name = 'RetryableAttempt';
  }
}

/** The OpenAI body of a request. */
export function openAiBody(via: Exclude<Via, 'nats'>, r: OperationRequest): Record<string, unknown> {
  const body: Record<string, unknown> = { model: r.model, stream: via !== 'http' };
  if (via === 'http-chat') body.messages = r.messages;
  else body.prompt = r.promptTokenIds ?? r.prompt;
  if (via !== 'http') body.stream_options = { include_usage: true };
  const fields: Array<[string, unknown]> = [
    ['max_tokens', r.maxTokens],
    ['temperature', r.temperature],
    ['top_p', r.topP],
    ['top_k', r.topK],
    ['seed', r.seed],
    ['stop', r.stop],
    ['ignore_eos', r.ignoreEos],
  ];
  for (const [k, v] of fields) if (v !== undefined) body[k] = v;
  return body;
}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown };
}

function errorOf(body: unknown, status: number): { code: string; message: string } {
  const e = (body as ErrorBody | undefined)?.error;
  return {
    code: typeof e?.code === 'string' ? e.code : `http_${status}`,
    message: typeof e?.message === 'string' ? e.message : `HTTP ${status}`,
  };
}

function retryAfterMs(res: Response): number | undefined {
  const s = Number(res.headers.get('retry-after'));
  return Number.isFinite(s) && s > 0 ? s * 1000 : undefined;
}

/** The text of one response chunk or body choice, for either API. */
function choiceText(choice: Record<string, unknown> | undefined): string {
  if (choice === undefined) return '';
  if (typeof choice.text === 'string') return choice.text;
  const delta = (choice.delta ?? choice.message) as { content?: unknown } | undefined;
  return typeof delta?.content === 'string' ? delta.content : '';
}

interface Answer {
  finishReason?: string;
  completionTokens?: number;
  /** The version the last chunk (or the body) named in `system_fingerprint`. */
  modelVersion?: string;
}

/**
 * The model version a `system_fingerprint` names (`<model>@<version>`, src/bridge/openai-response.ts),
 * or undefined when it names none (null, or not of that shape).
 */
export function fingerprintVersion(fingerprint: unknown): string | undefined {
  if (typeof fingerprint !== 'string') return undefined;
  const at = fingerprint.lastIndexOf('@');
  return at > 0 && at < fingerprint.length - 1 ? fingerprint.slice(at + 1) : undefined;
}

/** `{ modelVersion }` when `version` is known, else nothing (for spreading into a record). */
function versionField(version: string | undefined): { modelVersion?: string } {
  return version === undefined ? {} : { modelVersion: version };
}

/** Reads one SSE stream, recording every event but `[DONE]` as a chunk of `attempt`. */
async function readStream(
  res: Response,
  attempt: number,
  chunks: ChunkRecord[],
  onFirst: () => void,
): Promise<Answer> {
  if (res.body === null)
    throw new RetryableAttempt(CONNECTION_ERROR, 'a stream without a body', 200, undefined);
  const answer: Answer = {};
  let seq = 0;
  let buffered = '';
  const decoder = new TextDecoder();
  for await (const bytes of res.body) {
    buffered += decoder.decode(bytes as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const data = event
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice('data: '.length))
        .join('\n');
      if (data === '[DONE]') return answer;
      const json = JSON.parse(data) as Record<string, unknown>;
      if (json.error !== undefined) {
        const { code, message } = errorOf(json, 200);
        if (RETRYABLE_CODES.has(code)) throw new RetryableAttempt(code, message, 200, undefined);
        throw Object.assign(new Error(message), { code, httpStatus: 200 });
      }
      const choice = (json.choices as Array<Record<string, unknown>> | undefined)?.[0];
      if (seq === 0) onFirst();
      const version = fingerprintVersion(json.system_fingerprint);
      if (version !== undefined) answer.modelVersion = version;
      chunks.push({
        seq: seq++,
        attempt,
        tokenIds: [],
        text: choiceText(choice),
        at: Date.now(),
        ...versionField(version),
      });
      if (typeof choice?.finish_reason === 'string') answer.finishReason = choice.finish_reason;
      const usage = json.usage as { completion_tokens?: unknown } | null | undefined;
      if (typeof usage?.completion_tokens === 'number') answer.completionTokens = usage.completion_tokens;
    }
  }
  throw new RetryableAttempt(CONNECTION_ERROR, 'the stream ended without [DONE]', 200, undefined);
}

/** One attempt; resolves with the answer, rejects with RetryableAttempt or a final error. */
async function attemptOnce(
  op: Operation,
  via: Exclude<Via, 'nats'>,
  attempt: number,
  ctx: HttpRequestContext,
  signal: AbortSignal,
): Promise<Answer> {
  let res: Response;
  try {
    res = await fetch(ctx.baseUrl + PATHS[via], {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': op.id },
      body: JSON.stringify(openAiBody(via, op.request)),
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new RetryableAttempt(CONNECTION_ERROR, describe(err), undefined, undefined);
  }
  if (!res.ok) {
    const body: unknown = await res.json().catch(() => undefined);
    const { code, message } = errorOf(body, res.status);
    if (RETRYABLE_CODES.has(code)) throw new RetryableAttempt(code, message, res.status, retryAfterMs(res));
    throw Object.assign(new Error(message), { code, httpStatus: res.status });
  }
  try {
    if (via !== 'http') return await readStream(res, attempt, op.chunks, () => ctx.onStreaming());
    const body = (await res.json()) as {
      choices?: Array<Record<string, unknown>>;
      usage?: { completion_tokens?: number };
      system_fingerprint?: unknown;
    };
    const choice = body.choices?.[0];
    const version = fingerprintVersion(body.system_fingerprint);
    op.chunks.push({
      seq: 0,
      attempt,
      tokenIds: [],
      text: choiceText(choice),
      at: Date.now(),
      ...versionField(version),
    });
    return {
      ...versionField(version),
      ...(typeof choice?.finish_reason === 'string' ? { finishReason: choice.finish_reason } : {}),
      ...(body.usage?.completion_tokens === undefined
        ? {}
        : { completionTokens: body.usage.completion_tokens }),
    };
  } catch (err) {
    if (signal.aborted || err instanceof RetryableAttempt || (err as { code?: unknown }).code !== undefined)
      throw err;
    // The connection broke while the body was read.
    throw new RetryableAttempt(CONNECTION_ERROR, describe(err), res.status, undefined);
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/**
 * Sends `op` (already filled with id, request and deadline) until it completes, fails for good,
 * passes its deadline, or the load is stopped; fills its chunks and returns its outcome.
 */
export async function sendHttp(op: Operation, ctx: HttpRequestContext): Promise<Outcome> {
  const via = op.via;
  if (via === 'nats') throw new Error(`operation ${op.id} is not an HTTP operation`);
  const signal = AbortSignal.any([ctx.stopped, AbortSignal.timeout(Math.max(1, op.deadline - Date.now()))]);
  let backoff = BACKOFF_START_MS;
  let last: RetryableAttempt | undefined;
  for (let attempt = 1; ; attempt++) {
    if (ctx.stopped.aborted) return { kind: 'unknown', at: Date.now() };
    if (signal.aborted) break;
    try {
      const answer = await attemptOnce(op, via, attempt, ctx, signal);
      return {
        kind: 'ok',
        finishReason: answer.finishReason ?? 'none',
        completionTokens: answer.completionTokens ?? -1,
        at: Date.now(),
        ...versionField(answer.modelVersion),
      };
    } catch (err) {
      if (ctx.stopped.aborted) return { kind: 'unknown', at: Date.now() };
      if (signal.aborted) break;
      if (!(err instanceof RetryableAttempt)) {
        const e = err as { code?: unknown; httpStatus?: unknown };
        return {
          kind: 'error',
          code: typeof e.code === 'string' ? e.code : 'client_exception',
          message: describe(err),
          ...(typeof e.httpStatus === 'number' ? { httpStatus: e.httpStatus } : {}),
          at: Date.now(),
        };
      }
      last = err;
      await sleep(err.retryAfterMs ?? backoff, signal);
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
    }
  }
  return {
    kind: 'error',
    code: 'deadline_exceeded',
    message: `no answer by the deadline${last === undefined ? '' : ` (last attempt: ${last.code}: ${last.message})`}`,
    ...(last?.httpStatus === undefined ? {} : { httpStatus: last.httpStatus }),
    at: Date.now(),
  };
}
