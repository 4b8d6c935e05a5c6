/**
 * What the bridge's request handlers get: the bridge's shared parts, and one request's own
 * (its id, its logger, the signal that fires when its client goes away, its caller).
 */
import type { LoadShedder } from './load-shedding.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SwitchyardClient } from '../client/client.ts';
import type { ActorState } from '../cluster/actor-state.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { ClusterView } from './cluster-view.ts';
import type { BridgeMetrics } from './metrics.ts';
import type { CompiledBridgeOptions } from './options.ts';
import type { Authenticator, CachedGeneration, Caller, RateLimiter, ResponseCache } from './policy.ts';
import type { SingleFlight } from './single-flight.ts';

/** Lifecycle of a bridge (the one actor lifecycle). */
export type BridgeState = ActorState;

/** The bridge's shared parts. */
export interface BridgeContext {
  readonly options: CompiledBridgeOptions;
  readonly client: SwitchyardClient;
  readonly view: ClusterView;
  readonly auth: Authenticator;
  readonly limiter: RateLimiter;
  readonly cache: ResponseCache;
  /** Identical cacheable generations in flight on this bridge, computed once. */
  readonly flights: SingleFlight<CachedGeneration>;
  readonly metrics: BridgeMetrics;
  /** Generations in flight, bounded by the live replicas' slots (`load-shedding.ts`). */
  readonly shedder: LoadShedder;
  readonly log: Logger;
  /** The bridge's state now. */
  readonly state: BridgeState;
  /** HTTP requests being served now. */
  inFlight(): number;
}

/** One HTTP request. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  /**
   * The id the cluster knows this request by: `requestId` scoped to the caller's tenant
   * (`tenancy.ts`), so that callers cannot touch each other's requests.
   */
  readonly clusterRequestId: string;
  /** Headers every answer to this request carries (`x-request-id`). */
  readonly headers: Record<string, string>;
  readonly log: Logger;
  /** Aborted when the client goes away before its answer is complete, or the drain runs out. */
  readonly signal: AbortSignal;
  /** Who is calling (the anonymous caller where keys are off or the route needs none). */
  readonly caller: Caller;
}

/** Serves one request; resolves with the status it was answered with (499: the client left). */
export type Handler = (bridge: BridgeContext, call: RequestContext) => Promise<number>;
