/**
 * The public API of switchyard: what a program imports to use a cluster (the client), to run
 * actors in-process (replica, router, bridge), or to embed the engine. Everything else is
 * internal and may change without notice.
 */
export { SwitchyardClient, type GenerateResult, type StreamOptions } from './client/client.ts';
export type { ClientOptions } from './client/options.ts';
export type { FeedbackOptions } from './client/feedback.ts';
export type { FeedbackInput } from './capture/feedback-input.ts';
export type { FeedbackEvent, Metadata, Thumbs } from './cluster/messages/capture.ts';
export type { ClientStream, StreamDelta, StreamResult } from './client/stream.ts';
export type { GenerateRequest } from './cluster/messages/generate.ts';
export type { ConnectionOptions } from './cluster/connection.ts';
export { Engine } from './engine/engine.ts';
export type { EngineOptions } from './engine/options.ts';
export type { ChatMessage, GenerateParams } from './cluster/messages/params.ts';
export type { EngineChunk, EngineEnd, EngineStream, EngineStats } from './engine/types.ts';
export { startReplica, type Replica } from './replica/replica.ts';
export type { ReplicaOptions } from './replica/options.ts';
export { startRouter, type Router } from './router/router.ts';
export type { RouterOptions } from './router/options.ts';
export { startBridge, type Bridge } from './bridge/bridge.ts';
export type { BridgeOptions } from './bridge/options.ts';
export {
  BusyError,
  CancelledError,
  DeadlineExceededError,
  ERROR_CODES,
  ForbiddenError,
  InternalError,
  InvalidRequestError,
  ModelNotFoundError,
  RateLimitedError,
  StartupError,
  SwitchyardError,
  UnauthorizedError,
  UnavailableError,
  type ErrorCode,
} from './errors/errors.ts';
/**
 * Tracing for a program that runs actors in-process: `switchyard <actor>` calls it for you. A
 * program with its own OpenTelemetry SDK needs neither: the client's and the actors' spans join
 * whatever provider and active context it installed.
 */
export { initTracing, type Tracing } from './telemetry/tracing.ts';
export type { TracingOptions } from './telemetry/tracing-options.ts';
