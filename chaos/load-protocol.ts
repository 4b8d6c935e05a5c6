/** The IPC messages between the runner and a load client process (chaos/load-entry.ts). */
import type { Operation, OperationRequest, Reference, Via } from './history/types.ts';

/** One request the load client may send, with its reference when its output is reproducible. */
export interface LoadItem {
  request: OperationRequest;
  reference?: Reference;
  /** Its reference on every model version the run may serve, by version (Operation.references). */
  references?: Record<string, Reference>;
  /** The door it goes through. @default 'nats' */
  via?: Via;
}

/** What a load client is told to do. */
export interface LoadPlan {
  client: string;
  /** Set for an HTTP client: the bridge it sends every request to (items then go over HTTP). */
  bridgeUrl?: string;
  /** NATS URLs, the first one preferred (spreads clients over nodes); unused by HTTP clients. */
  servers: string[];
  nkeySeedFile: string;
  items: LoadItem[];
  /** Requests to send at most. */
  count: number;
  /** Stop sending after this long (in-flight requests still finish). */
  durationMs: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** Each request's deadline, from its invocation. */
  timeoutMs: number;
}

/** Runner → load client. */
export type ToLoad = { type: 'start'; plan: LoadPlan } | { type: 'stop' };

/** Load client → runner. */
export type FromLoad =
  /** A stream delivered its first chunk (the runner injects faults mid-stream). */
  | { type: 'streaming'; id: string; client: string; via: Via }
  | { type: 'done'; operations: Operation[] }
  | { type: 'failed'; message: string };
