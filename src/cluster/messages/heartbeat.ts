/**
 * Heartbeats: the membership and load signal routers route by. A replica's heartbeat carries
 * engine progress, not only liveness, because "alive" means the inference path moves
 * (DESIGN.md invariant 4): a monitor that sees `busy_since` set while `progress` stands still
 * treats the replica as dead even though its process still publishes.
 */
import { ID_PATTERN, MODEL_VERSION_PATTERN } from '../subjects.ts';
import {
  encodeObject,
  invalidField,
  parseObject,
  readEnum,
  readInt,
  readOptional,
  readPattern,
  readString,
  type NumberRule,
} from '../../validation/fields.ts';

/** Advertised lifecycle state: only `ready` actors get new work; `draining` ones finish theirs. */
export const HEARTBEAT_STATES = ['starting', 'ready', 'draining', 'stopped'] as const;

/** One of {@link HEARTBEAT_STATES}. */
export type HeartbeatState = (typeof HEARTBEAT_STATES)[number];

/** Longest device description (`cpu`, `cuda:0`, a GPU name). */
export const DEVICE_MAX_LENGTH = 128;
/** Longest heartbeat interval a peer may announce; a monitor's miss window is built from it. */
export const HEARTBEAT_INTERVAL_MAX_MS = 60_000;

const COUNT: NumberRule = { min: 0, max: Infinity };
const EPOCH_MS: NumberRule = { min: 0, max: Infinity };
const INTERVAL: NumberRule = { min: 1, max: HEARTBEAT_INTERVAL_MAX_MS };
const ID_SHAPE = '[A-Za-z0-9_-]{1,64}';
const VERSION_SHAPE = '[A-Za-z0-9._-]{1,64}';
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** What a replica tells the cluster about itself, every `intervalMs`. */
export interface ReplicaHeartbeat {
  id: string;
  model: string;
  modelVersion: string;
  /** `cpu` or `cuda:N` (or a longer description); for operators and placement. */
  device: string;
  state: HeartbeatState;
  /** Requests waiting beyond the running batch. */
  queueDepth: number;
  /** Sequences in the running batch. */
  activeSequences: number;
  maxBatchSize: number;
  /** Requests that may wait beyond the batch before the replica answers `busy`. */
  maxQueue: number;
  /** Tokens of KV budget not reserved by running sequences: what a router can still place. */
  freeTokenBudget: number;
  tokenBudget: number;
  /** Engine step counter; monotonic for the life of the process. Standing still while busy = stuck. */
  progress: number;
  /** Epoch ms since which the replica has had work without a break; null when idle. */
  busySince?: number | null;
  /**
   * Sender's clock (epoch ms) when the forward pass running now started; null between steps.
   * With `stepTokens` it lets a monitor give a long prefill the time its size needs before it
   * calls the engine stuck. Optional on the wire (older replicas leave it out).
   */
  stepStartedAt?: number | null;
  /** Tokens the running forward pass covers (rows × new positions); 0 between steps. */
  stepTokens?: number;
  /**
   * How long the sender expects the running pass to take, from its own measured passes (a slow
   * device announces more than its step's size suggests); 0 between steps or before any was
   * measured. Optional on the wire (older replicas leave it out).
   */
  stepExpectedMs?: number;
  /** Sender's clock (epoch ms): lets a monitor spot delayed delivery and clock skew. */
  sentAt: number;
  /** The sender's heartbeat period, so monitors need no shared configuration to count misses. */
  intervalMs: number;
  /**
   * Digest of the version new requests get: the registry version's digest, or for a model
   * folder the sha256 of its ONNX file. Optional on the wire (older replicas leave it out).
   */
  modelDigest?: string;
  /** Other versions still loaded, finishing requests that started on them (after a hot swap). */
  retiringVersions?: string[];
  /** The version a swap in progress is loading. */
  swappingTo?: string;
  /** Why the last swap failed (the replica serves on with `modelVersion`); cleared by a swap that works. */
  swapError?: string;
}

/** Longest swap error a heartbeat carries. */
export const SWAP_ERROR_MAX_LENGTH = 512;
/** Most retiring versions a heartbeat lists. */
export const RETIRING_VERSIONS_MAX = 16;

/** What a router tells the cluster about itself. */
export interface RouterHeartbeat {
  id: string;
  state: HeartbeatState;
  /** Requests this router owns right now. */
  inFlight: number;
  sentAt: number;
  intervalMs: number;
}

/** The one decoder of replica heartbeats. */
export function decodeReplicaHeartbeat(data: Uint8Array | string): ReplicaHeartbeat {
  const o = parseObject(data, 'replica heartbeat');
  const busySince = o.busy_since;
  const hb: ReplicaHeartbeat = {
    id: readPattern('id', o.id, ID_PATTERN, ID_SHAPE),
    model: readPattern('model', o.model, ID_PATTERN, ID_SHAPE),
    modelVersion: readPattern('model_version', o.model_version, MODEL_VERSION_PATTERN, VERSION_SHAPE),
    device: readString('device', o.device, { minLength: 1, maxLength: DEVICE_MAX_LENGTH }),
    state: readEnum('state', o.state, HEARTBEAT_STATES),
    queueDepth: readInt('queue_depth', o.queue_depth, COUNT),
    activeSequences: readInt('active_sequences', o.active_sequences, COUNT),
    maxBatchSize: readInt('max_batch_size', o.max_batch_size, { min: 1, max: Infinity }),
    maxQueue: readInt('max_queue', o.max_queue, COUNT),
    freeTokenBudget: readInt('free_token_budget', o.free_token_budget, COUNT),
    tokenBudget: readInt('token_budget', o.token_budget, COUNT),
    progress: readInt('progress', o.progress, COUNT),
    busySince:
      busySince === undefined || busySince === null ? null : readInt('busy_since', busySince, EPOCH_MS),
    stepStartedAt: readOptional(o, 'step_started_at', (f, v) => readInt(f, v, EPOCH_MS)) ?? null,
    stepTokens: readOptional(o, 'step_tokens', (f, v) => readInt(f, v, COUNT)) ?? 0,
    stepExpectedMs: readOptional(o, 'step_expected_ms', (f, v) => readInt(f, v, COUNT)) ?? 0,
    sentAt: readInt('sent_at', o.sent_at, EPOCH_MS),
    intervalMs: readInt('interval_ms', o.interval_ms, INTERVAL),
  };
  const digest = readOptional(o, 'model_digest', (f, v) => readPattern(f, v, SHA256_HEX, '64 hex digits'));
  if (digest !== undefined) hb.modelDigest = digest;
  const retiring = readOptional(o, 'retiring_versions', (f, v) => {
    if (!Array.isArray(v) || v.length > RETIRING_VERSIONS_MAX) {
      invalidField(f, `an array of at most ${RETIRING_VERSIONS_MAX} versions`, v);
    }
    return v.map((x: unknown, i) => readPattern(`${f}[${i}]`, x, MODEL_VERSION_PATTERN, VERSION_SHAPE));
  });
  if (retiring !== undefined && retiring.length > 0) hb.retiringVersions = retiring;
  const swappingTo = readOptional(o, 'swapping_to', (f, v) =>
    readPattern(f, v, MODEL_VERSION_PATTERN, VERSION_SHAPE),
  );
  if (swappingTo !== undefined) hb.swappingTo = swappingTo;
  const swapError = readOptional(o, 'swap_error', (f, v) =>
    readString(f, v, { minLength: 1, maxLength: SWAP_ERROR_MAX_LENGTH }),
  );
  if (swapError !== undefined) hb.swapError = swapError;
  return hb;
}

/** Serialises a replica heartbeat. */
export function encodeReplicaHeartbeat(hb: ReplicaHeartbeat): Uint8Array {
  return encodeObject({
    id: hb.id,
    model: hb.model,
    model_version: hb.modelVersion,
    device: hb.device,
    state: hb.state,
    queue_depth: hb.queueDepth,
    active_sequences: hb.activeSequences,
    max_batch_size: hb.maxBatchSize,
    max_queue: hb.maxQueue,
    free_token_budget: hb.freeTokenBudget,
    token_budget: hb.tokenBudget,
    progress: hb.progress,
    busy_since: hb.busySince ?? null,
    step_started_at: hb.stepStartedAt ?? null,
    step_tokens: hb.stepTokens ?? 0,
    step_expected_ms: hb.stepExpectedMs ?? 0,
    sent_at: hb.sentAt,
    interval_ms: hb.intervalMs,
    model_digest: hb.modelDigest,
    retiring_versions: hb.retiringVersions?.length ? hb.retiringVersions : undefined,
    swapping_to: hb.swappingTo,
    swap_error: hb.swapError?.slice(0, SWAP_ERROR_MAX_LENGTH),
  });
}

/** The one decoder of router heartbeats. */
export function decodeRouterHeartbeat(data: Uint8Array | string): RouterHeartbeat {
  const o = parseObject(data, 'router heartbeat');
  return {
    id: readPattern('id', o.id, ID_PATTERN, ID_SHAPE),
    state: readEnum('state', o.state, HEARTBEAT_STATES),
    inFlight: readInt('in_flight', o.in_flight, COUNT),
    sentAt: readInt('sent_at', o.sent_at, EPOCH_MS),
    intervalMs: readInt('interval_ms', o.interval_ms, INTERVAL),
  };
}

/** Serialises a router heartbeat. */
export function encodeRouterHeartbeat(hb: RouterHeartbeat): Uint8Array {
  return encodeObject({
    id: hb.id,
    state: hb.state,
    in_flight: hb.inFlight,
    sent_at: hb.sentAt,
    interval_ms: hb.intervalMs,
  });
}
