/**
 * The one error taxonomy of switchyard (see DESIGN.md "Errors").
 *
 * Every error that crosses an actor boundary is a {@link SwitchyardError} with a stable `code`.
 * Code paths decide on `code` (and `retryable`), never on message text. Over NATS the code and
 * message travel as headers and are rebuilt by one function; over HTTP one function maps them to
 * a status. Both live next to their transports; the classes live here.
 */

/** Stable error codes, as carried on the wire. */
export const ERROR_CODES = [
  'invalid_request',
  'model_not_found',
  'unauthorized',
  'forbidden',
  'rate_limited',
  'busy',
  'unavailable',
  'deadline_exceeded',
  'cancelled',
  'internal',
  'engine_failed',
  'version_unavailable',
] as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Whether a request that failed with this code may be retried on another replica. */
const RETRYABLE: Readonly<Record<ErrorCode, boolean>> = {
  invalid_request: false,
  model_not_found: false,
  unauthorized: false,
  forbidden: false,
  rate_limited: false,
  busy: true,
  unavailable: true,
  deadline_exceeded: false,
  cancelled: false,
  internal: true,
  // A router retries an engine failure on one other replica itself (at most once); nobody resends
  // it after that, so that one request that breaks engines cannot take down every replica.
  engine_failed: false,
  // A request pinned to a version that no replica serves any more, with tokens already delivered:
  // resuming on another version would not be exact, and resending cannot bring the version back.
  version_unavailable: false,
};

/** True when `value` is one of the known error codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** Base class: every error switchyard raises on purpose has a code and a retryable flag. */
export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SwitchyardError';
    this.code = code;
    this.retryable = RETRYABLE[code];
  }
}

/** Bad input: wrong types, out-of-range parameters, prompt too long. Never reaches the engine. */
export class InvalidRequestError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('invalid_request', message, options);
    this.name = 'InvalidRequestError';
  }
}

/** No replica has ever served the requested model id (or version). */
export class ModelNotFoundError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('model_not_found', message, options);
    this.name = 'ModelNotFoundError';
  }
}

/** Missing or wrong credentials. */
export class UnauthorizedError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('unauthorized', message, options);
    this.name = 'UnauthorizedError';
  }
}

/** Valid credentials without permission for this action. */
export class ForbiddenError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('forbidden', message, options);
    this.name = 'ForbiddenError';
  }
}

/** A per-key rate limit is spent; retry after `retryAfterMs`. */
export class RateLimitedError extends SwitchyardError {
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number, options?: ErrorOptions) {
    super('rate_limited', message, options);
    this.name = 'RateLimitedError';
    this.retryAfterMs = retryAfterMs;
  }
}

/** A bounded queue or the token budget is full; answered at once, never by timing out. */
export class BusyError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('busy', message, options);
    this.name = 'BusyError';
  }
}

/** No live replica serves the model right now. */
export class UnavailableError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('unavailable', message, options);
    this.name = 'UnavailableError';
  }
}

/** The request's deadline passed before it completed. */
export class DeadlineExceededError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('deadline_exceeded', message, options);
    this.name = 'DeadlineExceededError';
  }
}

/** The client cancelled the request or went away. */
export class CancelledError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('cancelled', message, options);
    this.name = 'CancelledError';
  }
}

/** A fault of ours. Retryable elsewhere; the operator detail goes to logs. */
export class InternalError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('internal', message, options);
    this.name = 'InternalError';
  }
}

/**
 * An attempt ended because the inference engine failed with the request in its batch (the
 * worker threw or exited, or a forward pass failed). Its router retries it on one other replica;
 * a second engine failure ends the request with this code, which clients and the bridge never
 * resend (DESIGN.md invariant 8). A replica that was killed, frozen or partitioned is not an
 * engine failure: those attempts fail over as `unavailable`.
 */
export class EngineFailedError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('engine_failed', message, options);
    this.name = 'EngineFailedError';
  }
}

/**
 * The model version a request was pinned to at admission is served by no replica any more (a
 * hot swap or rollout retired it), and the request has delivered tokens: it cannot resume on
 * another version exactly. Nobody resends it; a caller that starts over gets the version served now.
 */
export class VersionUnavailableError extends SwitchyardError {
  constructor(message: string, options?: ErrorOptions) {
    super('version_unavailable', message, options);
    this.name = 'VersionUnavailableError';
  }
}

/** Builds the matching error class for a code (used when rebuilding errors from the wire). */
export function errorFromCode(code: ErrorCode, message: string, retryAfterMs = 0): SwitchyardError {
  switch (code) {
    case 'invalid_request':
      return new InvalidRequestError(message);
    case 'model_not_found':
      return new ModelNotFoundError(message);
    case 'unauthorized':
      return new UnauthorizedError(message);
    case 'forbidden':
      return new ForbiddenError(message);
    case 'rate_limited':
      return new RateLimitedError(message, retryAfterMs);
    case 'busy':
      return new BusyError(message);
    case 'unavailable':
      return new UnavailableError(message);
    case 'deadline_exceeded':
      return new DeadlineExceededError(message);
    case 'cancelled':
      return new CancelledError(message);
    case 'internal':
      return new InternalError(message);
    case 'engine_failed':
      return new EngineFailedError(message);
    case 'version_unavailable':
      return new VersionUnavailableError(message);
  }
}

/** Wraps anything thrown into a SwitchyardError, keeping the original as `cause`. */
export function toSwitchyardError(err: unknown): SwitchyardError {
  if (err instanceof SwitchyardError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(message, { cause: err });
}

/** Why an actor or engine could not start. */
export type StartupFailure =
  'config' | 'model_missing' | 'model_corrupt' | 'device_unavailable' | 'dependency';

/**
 * A failure to start (bad configuration, missing or corrupt model, unavailable device).
 * Not part of the wire taxonomy: it never crosses NATS, it stops the process with a message
 * that says what is wrong and how to fix it.
 */
export class StartupError extends Error {
  readonly reason: StartupFailure;
  constructor(reason: StartupFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StartupError';
    this.reason = reason;
  }
}

/** Why the model registry refused an operation (see {@link RegistryError}). */
export type RegistryFailure = 'version_conflict' | 'in_use' | 'unreachable';

/**
 * The model registry refused an operation whose input was well-formed: a version id that exists
 * with another digest (never overwritten), a version an alias or a running replica uses, or a
 * registry that does not answer with nothing cached to fall back on. Not part of the wire
 * taxonomy: it reaches operators (the `models` command) and a starting replica, with a message
 * that names what is in the way. A missing version or alias is a {@link ModelNotFoundError}, a
 * corrupt file a {@link StartupError} with reason `model_corrupt`.
 */
export class RegistryError extends Error {
  readonly reason: RegistryFailure;
  constructor(reason: RegistryFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RegistryError';
    this.reason = reason;
  }
}

/** Why a training run failed (see {@link TrainingError}). */
export type TrainingFailure = 'trainer_failed' | 'bad_output';

/**
 * A training run (`switchyard train`, `switchyard loop`) failed: the trainer command exited
 * non-zero or could not start (`trainer_failed`, with its exit code and last stderr lines in the
 * message), or it exited 0 without leaving a model folder the engine can load (`bad_output`).
 * Not part of the wire taxonomy: it reaches the operator who ran the command.
 */
export class TrainingError extends Error {
  readonly reason: TrainingFailure;
  /** The trainer's exit code, when it exited; null when it was killed by a signal or never started. */
  readonly exitCode: number | null;
  constructor(
    reason: TrainingFailure,
    message: string,
    exitCode: number | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'TrainingError';
    this.reason = reason;
    this.exitCode = exitCode;
  }
}
