/**
 * Span attribute names, one place for all of them. Semantic-convention names where one exists
 * (messaging, GenAI, HTTP, error); `switchyard.*` for what is ours. The messaging and GenAI
 * conventions are still "development" status, and their authors ask users to copy the names
 * rather than import `@opentelemetry/semantic-conventions/incubating`, whose exports may change
 * in any minor release: hence constants here.
 */

/** Messaging conventions (https://opentelemetry.io/docs/specs/semconv/messaging/). */
export const MESSAGING_ATTRS = {
  system: 'messaging.system',
  destinationName: 'messaging.destination.name',
  /** Low-cardinality form of the destination, e.g. `sy.v1.replica.{id}.generate`. */
  destinationTemplate: 'messaging.destination.template',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  /** The NATS queue group of a subscription. */
  consumerGroupName: 'messaging.consumer.group.name',
  bodySize: 'messaging.message.body.size',
  messageId: 'messaging.message.id',
} as const;

/** `messaging.system` of every NATS span. */
export const MESSAGING_SYSTEM_NATS = 'nats';

/** Values of `messaging.operation.type` used here. */
export const MESSAGING_OPERATION = {
  send: 'send',
  receive: 'receive',
  process: 'process',
} as const;

/** GenAI conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/). */
export const GEN_AI_ATTRS = {
  /** `chat` or `text_completion`. */
  operationName: 'gen_ai.operation.name',
  requestModel: 'gen_ai.request.model',
  requestMaxTokens: 'gen_ai.request.max_tokens',
  requestTemperature: 'gen_ai.request.temperature',
  requestTopP: 'gen_ai.request.top_p',
  responseModel: 'gen_ai.response.model',
  responseId: 'gen_ai.response.id',
  responseFinishReasons: 'gen_ai.response.finish_reasons',
  usageInputTokens: 'gen_ai.usage.input_tokens',
  usageOutputTokens: 'gen_ai.usage.output_tokens',
} as const;

/** Values of `gen_ai.operation.name` for the two OpenAI-compatible endpoints. */
export const GEN_AI_OPERATION = {
  chat: 'chat',
  textCompletion: 'text_completion',
} as const;

/** HTTP server conventions (stable), for the bridge's server span. */
export const HTTP_ATTRS = {
  requestMethod: 'http.request.method',
  route: 'http.route',
  responseStatusCode: 'http.response.status_code',
  urlPath: 'url.path',
  urlScheme: 'url.scheme',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  clientAddress: 'client.address',
  userAgent: 'user_agent.original',
} as const;

/** `error.type`: the switchyard error code, or the class name of an unexpected error. */
export const ERROR_TYPE_ATTR = 'error.type';

/** Attributes that only switchyard has. */
export const SWITCHYARD_ATTRS = {
  /** Resource attribute: bridge, router, replica, collector. */
  role: 'switchyard.role',
  requestId: 'switchyard.request.id',
  /** 1-based attempt number of a routed request. */
  attempt: 'switchyard.attempt',
  replicaId: 'switchyard.replica.id',
  routerId: 'switchyard.router.id',
  /** On a failover event: why the attempt was abandoned (replica_dead, stalled, error code). */
  failoverReason: 'switchyard.failover.reason',
  /** Tokens already streamed when a failover resumed the request elsewhere. */
  resumedTokens: 'switchyard.resumed_tokens',
  batchSize: 'switchyard.batch.size',
  /** On the route span of a request split by a canary rollout: the rollout's id and the arm. */
  rolloutId: 'switchyard.rollout.id',
  rolloutArm: 'switchyard.rollout.arm',
} as const;

/** Names of the spans that are not message spans (those are named by operation and subject). */
export const SPAN_NAMES = {
  /** Router: one request from admission to its end, parent of one span per attempt. */
  route: 'route',
  /** Replica: the prompt (or chat messages) turned into token ids. */
  tokenize: 'tokenize',
  /** Replica: from submission to the engine until the request joined a prefill. */
  queueWait: 'queue_wait',
  /** Replica: the forward pass over the prompt, up to the first token. */
  prefill: 'prefill',
  /** Replica: decode steps from the first token to the last. */
  decode: 'decode',
} as const;

/** Span event names that only switchyard has. */
export const SWITCHYARD_EVENTS = {
  /** On the router's route span: one attempt was abandoned and the request moved on. */
  failover: 'switchyard.failover',
  /** On the replica's request span: the first token left the engine. */
  firstToken: 'switchyard.first_token',
  /** On the client's span: its router went away and the request was resent to another. */
  resend: 'switchyard.resend',
} as const;
