/**
 * A router's Prometheus metrics. The router sees every request from admission to its one end,
 * so the request-level metrics live here (the bridge and the NATS client both go through a
 * router): counts by model and outcome, duration, time to first token, inter-token latency and
 * token counts as delivered to the client. Membership gauges are read at scrape time.
 */
import type { ErrorCode } from '../errors/errors.ts';
import {
  actorRegistry,
  Counter,
  DURATION_BUCKETS_S,
  Gauge,
  Histogram,
  ITL_BUCKETS_S,
  TTFT_BUCKETS_S,
  scraped,
  type Registry,
} from '../telemetry/prometheus.ts';
import type { Membership } from './membership.ts';
import type { RolloutArm } from '../rollout/types.ts';

/**
 * Most distinct `model` label values one router mints. Model names reach the router in replica
 * heartbeats (a request is admitted only for a model some replica announces), so a publisher
 * that invents names must not invent series: past the cap, further models share
 * {@link OTHER_MODEL_LABEL}.
 */
export const MAX_MODEL_LABELS = 64;
/** The `model` label of every model past {@link MAX_MODEL_LABELS}. */
export const OTHER_MODEL_LABEL = 'other';

/** How a request ended, as the `code` label says it: `ok`, or its error code. */
export type RequestCode = 'ok' | ErrorCode;

/** Why an attempt was abandoned (metrics label). */
export type FailoverReason =
  | 'replica_dead'
  | 'stalled'
  | 'no_ack'
  | 'error'
  | 'unavailable'
  | 'engine_failed'
  | 'reconnect'
  | 'unasked_cancel';

/** What the metrics read from the router at scrape time. */
export interface RouterMetricsSource {
  readonly id: string;
  readonly membership: Membership;
  inFlight(): number;
}

/** The instruments of one model, bound once per request so the chunk path does no label lookup. */
export interface ModelInstruments {
  firstToken(seconds: number): void;
  interToken(seconds: number): void;
  finished(code: RequestCode, seconds: number, promptTokens: number, completionTokens: number): void;
}

/** One router's registry and the instruments its code updates. */
export class RouterMetrics {
  readonly registry: Registry;
  private readonly requests: Counter<'model' | 'code'>;
  private readonly duration: Histogram<'model' | 'code'>;
  private readonly ttft: Histogram<'model'>;
  private readonly itl: Histogram<'model'>;
  private readonly promptTokens: Counter<'model'>;
  private readonly generationTokens: Counter<'model'>;
  private readonly failovers: Counter<'reason'>;
  private readonly declaredDead: Counter;
  private readonly rolloutWeight: Gauge<'model' | 'canary_version'>;
  private readonly rolloutRequests: Counter<'model' | 'arm'>;
  /** The canary label each model's weight series has now (removed when the rollout changes). */
  private readonly rolloutSeries = new Map<string, string>();
  private readonly byModel = new Map<string, ModelInstruments>();
  /** Model names given a label of their own so far (at most MAX_MODEL_LABELS). */
  private readonly modelLabels = new Set<string>();

  constructor(source: RouterMetricsSource) {
    const registry = actorRegistry({ router: source.id });
    const registers = [registry];
    this.registry = registry;
    this.requests = new Counter({
      name: 'switchyard_requests_total',
      help: 'Generate requests this router answered, by model and outcome (ok or the error code).',
      labelNames: ['model', 'code'],
      registers,
    });
    this.duration = new Histogram({
      name: 'switchyard_request_duration_seconds',
      help: 'From admission to the end of the stream, by model and outcome.',
      labelNames: ['model', 'code'],
      buckets: DURATION_BUCKETS_S,
      registers,
    });
    this.ttft = new Histogram({
      name: 'switchyard_time_to_first_token_seconds',
      help: 'From admission to the first token forwarded to the client.',
      labelNames: ['model'],
      buckets: TTFT_BUCKETS_S,
      registers,
    });
    this.itl = new Histogram({
      name: 'switchyard_inter_token_latency_seconds',
      help: 'Time between two tokens forwarded on one stream (failover pauses included).',
      labelNames: ['model'],
      buckets: ITL_BUCKETS_S,
      registers,
    });
    this.promptTokens = new Counter({
      name: 'switchyard_prompt_tokens_total',
      help: 'Prompt tokens of completed requests, as reported in their usage.',
      labelNames: ['model'],
      registers,
    });
    this.generationTokens = new Counter({
      name: 'switchyard_generation_tokens_total',
      help: 'Tokens generated and delivered to clients (all attempts of a request together).',
      labelNames: ['model'],
      registers,
    });
    this.failovers = new Counter({
      name: 'switchyard_failovers_total',
      help: 'Attempts abandoned and resumed on another replica, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.declaredDead = new Counter({
      name: 'switchyard_replicas_declared_dead_total',
      help: 'Times a replica was declared dead (missed beats, stuck engine, or deregistered).',
      registers,
    });
    new Gauge({
      name: 'switchyard_replicas',
      help: 'Replicas in this router membership table, by liveness.',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = { alive: 0, suspect: 0, dead: 0 };
        for (const m of source.membership.all()) counts[m.liveness]++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    scraped(
      registry,
      'counter',
      'switchyard_heartbeats_missed_total',
      'Replica heartbeats that did not arrive within their interval (each counted once).',
      () => source.membership.missedBeats,
    );
    new Counter({
      name: 'switchyard_heartbeats_dropped_total',
      help:
        'Replica heartbeats not counted, by reason: malformed, mismatched (subject and body name ' +
        'different ids), refused (membership table full).',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        const { malformed, mismatched, refused } = source.membership.counts;
        this.inc({ reason: 'malformed' }, malformed);
        this.inc({ reason: 'mismatched' }, mismatched);
        this.inc({ reason: 'refused' }, refused);
      },
    });
    this.rolloutWeight = new Gauge({
      name: 'switchyard_router_rollout_weight',
      help: 'Percent of new requests of a model this router sends to its canary version (rollouts).',
      labelNames: ['model', 'canary_version'],
      registers,
    });
    this.rolloutRequests = new Counter({
      name: 'switchyard_router_rollout_requests_total',
      help: 'Requests admitted during a rollout, by the arm they were placed on (stable, canary).',
      labelNames: ['model', 'arm'],
      registers,
    });
    scraped(registry, 'gauge', 'switchyard_router_in_flight', 'Requests this router owns now.', () =>
      source.inFlight(),
    );
  }

  /** The instruments of `model`, made once per model. */
  forModel(name: string): ModelInstruments {
    const model = this.modelLabel(name);
    let bound = this.byModel.get(model);
    if (bound === undefined) {
      const ttft = this.ttft.labels({ model });
      const itl = this.itl.labels({ model });
      const prompt = this.promptTokens.labels({ model });
      const generated = this.generationTokens.labels({ model });
      bound = {
        firstToken: (s) => ttft.observe(s),
        interToken: (s) => itl.observe(s),
        finished: (code, s, promptTokens, completionTokens) => {
          this.requests.inc({ model, code });
          this.duration.observe({ model, code }, s);
          prompt.inc(promptTokens);
          generated.inc(completionTokens);
        },
      };
      this.byModel.set(model, bound);
    }
    return bound;
  }

  /** A request refused at admission (no stream was opened), `model` as far as it is known. */
  refused(model: string, code: RequestCode): void {
    this.requests.inc({ model: this.modelLabel(model), code });
  }

  failedOver(reason: FailoverReason): void {
    this.failovers.inc({ reason });
  }

  replicaDeclaredDead(): void {
    this.declaredDead.inc();
  }

  /** The weight this router applies to `model`'s canary now; undefined when it has no rollout. */
  rolloutApplied(model: string, canary: string | undefined, weight: number): void {
    const label = this.modelLabel(model);
    const previous = this.rolloutSeries.get(label);
    if (previous !== undefined && previous !== canary) {
      this.rolloutWeight.remove({ model: label, canary_version: previous });
      this.rolloutSeries.delete(label);
    }
    if (canary === undefined) return;
    this.rolloutSeries.set(label, canary);
    this.rolloutWeight.set({ model: label, canary_version: canary }, weight);
  }

  /** A request admitted on an arm of a rollout. */
  rolloutRequest(model: string, arm: RolloutArm): void {
    this.rolloutRequests.inc({ model: this.modelLabel(model), arm });
  }

  /** `model` itself while fewer than MAX_MODEL_LABELS names have a label, else OTHER_MODEL_LABEL. */
  private modelLabel(model: string): string {
    if (this.modelLabels.has(model)) return model;
    if (this.modelLabels.size >= MAX_MODEL_LABELS) return OTHER_MODEL_LABEL;
    this.modelLabels.add(model);
    return model;
  }
}
