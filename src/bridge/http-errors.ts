/**
 * The one place an error becomes an HTTP answer (STYLE.md; TGI's `impl From<InferError>`): every
 * route, every stream and every policy failure goes through {@link toHttpError}, so a status, a
 * Retry-After or an error body is decided here and nowhere else. Bodies have OpenAI's shape,
 * `{"error": {"message", "type", "param", "code"}}`, with `code` always one of switchyard's
 * error codes. Operator detail (causes, stack traces) stays in the logs: an `internal` error's
 * message is replaced by one that only names the request id.
 */
import { InvalidRequestError, SwitchyardError, type ErrorCode } from '../errors/errors.ts';

/** What a client gets for an error. */
export interface HttpError {
  status: number;
  headers: Record<string, string>;
  body: ErrorBody;
  /** The switchyard error code (for logs and metrics). */
  code: ErrorCode;
}

/** OpenAI's error body. */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: ErrorCode };
}

/** Status a cancelled request is logged and counted with (nginx's "client closed request"). */
export const STATUS_CLIENT_CLOSED = 499;
/**
 * Retry-After of a `busy` answer: a replica frees a batch slot within a few decode steps, so a
 * retry one second later (the smallest Retry-After HTTP can say) usually finds room.
 */
export const BUSY_RETRY_AFTER_S = 1;
/** Retry-After of an `unavailable` answer: about how long a restarting replica takes to announce itself. */
export const UNAVAILABLE_RETRY_AFTER_S = 1;
/** Smallest Retry-After: the header counts whole seconds, and 0 would invite an immediate retry. */
const MIN_RETRY_AFTER_S = 1;

/** HTTP statuses of client mistakes made at the HTTP layer (all of them `invalid_request`). */
export type HttpInputStatus = 400 | 404 | 405 | 408 | 413 | 415 | 421;

/**
 * A client mistake that HTTP has its own status for: unknown route (404), wrong method (405),
 * body timeout (408), body too large (413), wrong content type (415), a `Host` this bridge does
 * not answer (421). Its code stays
 * `invalid_request`, so everything outside HTTP sees the taxonomy unchanged.
 */
export class HttpInputError extends InvalidRequestError {
  readonly status: HttpInputStatus;
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    status: HttpInputStatus,
    message: string,
    headers: Record<string, string> = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'HttpInputError';
    this.status = status;
    this.headers = headers;
  }
}

/** Status and OpenAI error `type` of each code (DESIGN.md "Errors"). */
const BY_CODE: Readonly<Record<ErrorCode, { status: number; type: string }>> = {
  invalid_request: { status: 400, type: 'invalid_request_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  unauthorized: { status: 401, type: 'authentication_error' },
  forbidden: { status: 403, type: 'permission_error' },
  rate_limited: { status: 429, type: 'rate_limit_error' },
  busy: { status: 429, type: 'overloaded_error' },
  unavailable: { status: 503, type: 'unavailable_error' },
  deadline_exceeded: { status: 504, type: 'timeout_error' },
  cancelled: { status: STATUS_CLIENT_CLOSED, type: 'cancelled_error' },
  internal: { status: 500, type: 'server_error' },
  engine_failed: { status: 500, type: 'server_error' },
  // The pinned version is gone mid-request: a retry from scratch gets the version served now.
  version_unavailable: { status: 503, type: 'unavailable_error' },
};

function retryAfterSeconds(ms: number): string {
  const s = Number.isFinite(ms) ? Math.ceil(ms / 1000) : MIN_RETRY_AFTER_S;
  return String(Math.max(MIN_RETRY_AFTER_S, s));
}

/**
 * Maps anything thrown to the client's answer. Non-switchyard errors are `internal` (a bug of
 * ours): their text never reaches the client.
 */
export function toHttpError(err: unknown, requestId: string): HttpError {
  const known = err instanceof SwitchyardError ? err : undefined;
  const code: ErrorCode = known?.code ?? 'internal';
  const { status: codeStatus, type } = BY_CODE[code];
  const headers: Record<string, string> = {};
  let status = codeStatus;
  let message =
    code === 'internal' || known === undefined
      ? `internal error; the operators can find it in the bridge's logs under request id ${requestId}`
      : known.message;
  if (err instanceof HttpInputError) {
    status = err.status;
    Object.assign(headers, err.headers);
  }
  switch (code) {
    case 'unauthorized':
      headers['www-authenticate'] = 'Bearer';
      break;
    case 'rate_limited': {
      const ms = (err as { retryAfterMs?: unknown }).retryAfterMs;
      headers['retry-after'] = retryAfterSeconds(typeof ms === 'number' ? ms : 0);
      break;
    }
    case 'busy':
      headers['retry-after'] = String(BUSY_RETRY_AFTER_S);
      break;
    case 'unavailable':
      headers['retry-after'] = String(UNAVAILABLE_RETRY_AFTER_S);
      break;
    default:
      break;
  }
  if (message === '') message = code;
  return { status, headers, code, body: { error: { message, type, param: null, code } } };
}
