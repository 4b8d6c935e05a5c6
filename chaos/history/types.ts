/**
 * The history of a chaos run, as Jepsen records one: every request is an operation, invoked,
 * then ok, error(code) or unknown, with every chunk the client received. Load clients write it;
 * the checker reads it; other records (the collector's capture, later) are checked against it.
 */

/** How a request was sent. */
export type Via = 'nats' | 'http' | 'http-stream' | 'http-chat';

/** What the operation asked for, as far as exactness is concerned. */
export interface OperationRequest {
  model: string;
  /** Text prompt or chat messages, as sent. */
  prompt?: string;
  messages?: Array<{ role: string; content: string }>;
  promptTokenIds?: number[];
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop?: string[];
  ignoreEos?: boolean;
}

/** One chunk as the client received it. */
export interface ChunkRecord {
  /** Position in the client's stream (0-based); for HTTP streams the SSE event index. */
  seq: number;
  /** The replica attempt that produced it, where the transport says (NATS client: chunk.attempt). */
  attempt?: number;
  tokenIds: number[];
  text: string;
  /** Epoch ms when the client received it. */
  at: number;
  /**
   * The model version the transport said made it, where it says: over NATS the version the
   * stream was pinned to when the chunk came (the router's ack, the first chunk); over HTTP the
   * chunk's or the body's `system_fingerprint` (`<model>@<version>`).
   */
  modelVersion?: string;
}

/** How the operation ended, as the client saw it. */
export type Outcome =
  | {
      kind: 'ok';
      finishReason: string;
      completionTokens: number;
      at: number;
      /** Replica attempts the request used (the client library's count), where the transport says. */
      attempts?: number;
      /**
       * The model version it completed on, where the transport says: the end's version over NATS
       * (`StreamResult.modelVersion`), the last chunk's or the body's `system_fingerprint` over HTTP.
       */
      modelVersion?: string;
    }
  | { kind: 'error'; code: string; message: string; httpStatus?: number; at: number }
  /** The client gave up or the run ended without an answer (Jepsen's :info). */
  | { kind: 'unknown'; at: number };

/** The uninterrupted run of the same request, computed before any fault. */
export interface Reference {
  tokenIds: number[];
  text: string;
  finishReason: string;
}

/** One request of the run. */
export interface Operation {
  id: string;
  /** Which load client process sent it. */
  client: string;
  via: Via;
  request: OperationRequest;
  /** Epoch ms. */
  invokedAt: number;
  /** Epoch ms by which the request had to end. */
  deadline: number;
  chunks: ChunkRecord[];
  outcome: Outcome;
  /** Absent for requests whose output is not reproducible (hot sampling without exactness). */
  reference?: Reference;
  /**
   * The reference of every model version the run may serve, by version (absent in older
   * histories, and for requests that are not reproducible). Where present, the checker compares
   * the request with the reference of the version it was pinned to and completed on, not with
   * `reference` (the bundled model's, version 1).
   */
  references?: Record<string, Reference>;
}

/** A fault the runner injected, with what it verified really happened. */
export interface FaultRecord {
  name: string;
  target: string;
  startedAt: number;
  endedAt?: number;
  /** e.g. "process state T", "pid gone", "link down"; absent when it could not be verified. */
  verified?: string;
}

/** An invariant the runner checked outside the operations (a refusal, flat RSS, a verdict of a router). */
export interface InvariantCheck {
  name: string;
  ok: boolean;
  /** What was measured, e.g. "peak RSS 212, 214, 213 MiB". */
  detail: string;
}

/**
 * Something an actor reported during the run, from its structured log (warn level and above):
 * the timing evidence of the report (when a router noticed a fault and failed a request over).
 */
export interface ActorEvent {
  /** Epoch ms, the log line's own time. */
  at: number;
  /** The actor that logged it, e.g. "router rt1". */
  actor: string;
  /** What happened: "failover" for a router resuming a request elsewhere, else the log message. */
  what: string;
  requestId?: string;
  /** The replica the event is about (the failed attempt's, for a failover). */
  replica?: string;
  reason?: string;
}

/** A whole run of one scenario. */
export interface History {
  scenario: string;
  seed: number;
  startedAt: number;
  endedAt: number;
  faults: FaultRecord[];
  operations: Operation[];
  /** Invariants checked outside the operations; any that failed fails the scenario. */
  checks?: InvariantCheck[];
  /** What the actors logged at warn and above, oldest first (absent in older histories). */
  events?: ActorEvent[];
  /** Set by the runner's self-test (`--plant`): this operation was corrupted on purpose before checking. */
  planted?: { kind: string; operation: string; expectedVerdict: Verdict };
  /** What the capture path kept of the run (absent in older histories): see {@link CaptureEvidence}. */
  capture?: CaptureEvidence;
}

/** One collected record as the capture check compares it (the collector's `SY_RECORDS` entry). */
export interface CapturedRecord {
  /** The cluster request id (HTTP requests: `<tenant>:<x-request-id>`). */
  requestId: string;
  /** Whether the record holds a completion event, and whether that event is final. */
  completion: 'final' | 'provisional' | 'none';
  finishReason?: string;
  completionTokens?: number;
  /** The event's error code, for a request that ended in error. */
  code?: string;
}

/**
 * What the capture path kept of a run, read once the load was over and the collector caught up:
 * the final completion events in the stream per request id (a count: more than one is a
 * duplicate), every record of the records bucket, and the routers' counted drops. The capture
 * check (`history/capture.ts`) joins it to the operations.
 */
export interface CaptureEvidence {
  /** Final completion events in the completions stream, by the event's request id. */
  finalEvents: Record<string, number>;
  /** Provisional events in the stream (retryable errors a client may resend). */
  provisionalEvents: number;
  records: CapturedRecord[];
  /**
   * `switchyard_capture_dropped_total` by router and reason: each router's last reading (a killed
   * router's last before it died), summed over its restarts.
   */
  drops: Record<string, Record<string, number>>;
  /** Whether the routers' buffers emptied and the collector's consumer had nothing pending. */
  caughtUp: boolean;
  /** How the catch-up went ("buffers empty after 0.4 s; consumer idle after 1.2 s"). */
  detail: string;
  /** Set by the self-test (`--plant duplicate-event|drop-event`): what was corrupted in the capture. */
  planted?: { kind: string; requestId: string; operation: string; expected: string };
}

/** How the checker classifies one operation. */
export type Verdict =
  | 'exact'
  | 'completed_different'
  | 'duplicated'
  | 'gap'
  | 'lost'
  | 'hung'
  | 'error_allowed'
  | 'error_disallowed'
  | 'unchecked';
