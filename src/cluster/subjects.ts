/**
 * Every NATS subject switchyard uses is built here and nowhere else (STYLE.md), so the
 * protocol's namespace can be read, versioned and permissioned from one file. docs/protocol.md
 * describes the same subjects for implementers in other languages.
 */
import { createInbox } from '@nats-io/nats-core';
import { InvalidRequestError } from '../errors/errors.ts';

/**
 * Version prefix of every subject. A change that an old peer cannot ignore gets a new prefix,
 * so old and new actors can share one NATS cluster during an upgrade without misreading each other.
 */
export const PROTOCOL_PREFIX = 'sy.v1';

/** Front door for generate requests: every router subscribes here in {@link ROUTER_QUEUE_GROUP}. */
export const GENERATE_SUBJECT = `${PROTOCOL_PREFIX}.generate`;

/** Queue group of the routers, so that each front-door request reaches exactly one router. */
export const ROUTER_QUEUE_GROUP = 'sy-routers';

/** Subscribes to the heartbeats of every replica (membership tables are built from these). */
export const ALL_REPLICA_HEARTBEATS = `${PROTOCOL_PREFIX}.hb.replica.*`;

/** Subscribes to the heartbeats of every router. */
export const ALL_ROUTER_HEARTBEATS = `${PROTOCOL_PREFIX}.hb.router.*`;

/**
 * Replica, router and model ids become subject tokens, so they may not contain `.`, `*`, `>`
 * or whitespace; a fixed, small alphabet also keeps them safe in file names, metrics and logs.
 */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Model versions additionally allow `.` (e.g. `1.2.0`); they never become subject tokens. */
export const MODEL_VERSION_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

function describe(value: unknown): string {
  if (typeof value !== 'string') return value === null ? 'null' : typeof value;
  return JSON.stringify(value.length > 70 ? `${value.slice(0, 70)}…` : value);
}

/**
 * Rejects an id that would break a subject (or is not a string at all), naming the field, so a
 * bad id fails at its source instead of as a subscription to the wrong subjects.
 */
export function assertId(kind: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    throw new InvalidRequestError(`${kind} must match [A-Za-z0-9_-]{1,64}, got ${describe(value)}`);
  }
}

/** Like {@link assertId} for model versions, which may also contain dots. */
export function assertModelVersion(kind: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || !MODEL_VERSION_PATTERN.test(value)) {
    throw new InvalidRequestError(`${kind} must match [A-Za-z0-9._-]{1,64}, got ${describe(value)}`);
  }
}

/** {@link replicaGenerateSubject} with the id left out: span names and metrics stay low-cardinality. */
export const REPLICA_GENERATE_TEMPLATE = `${PROTOCOL_PREFIX}.replica.{id}.generate`;

/** Where a router forwards one attempt of a request to the replica it chose. */
export function replicaGenerateSubject(replicaId: string): string {
  assertId('replica id', replicaId);
  return `${PROTOCOL_PREFIX}.replica.${replicaId}.generate`;
}

/** Where a router tells a replica to stop working on an attempt (client gone, failover, deadline). */
export function replicaCancelSubject(replicaId: string): string {
  assertId('replica id', replicaId);
  return `${PROTOCOL_PREFIX}.replica.${replicaId}.cancel`;
}

/**
 * Where tests and the chaos suite inject faults into one replica (stall the engine, delay or
 * fail steps, drop heartbeats). A replica subscribes only when fault injection is enabled.
 */
export function replicaFaultSubject(replicaId: string): string {
  assertId('replica id', replicaId);
  return `${PROTOCOL_PREFIX}.replica.${replicaId}.fault`;
}

/**
 * Where an operator tells one replica to hot swap its model (a folder or a registry URL). Only
 * the operator and the collector may publish here; the replica answers when the swap is done.
 */
/** Every replica's swap subject (the collector's rollouts publish there). */
export const ALL_REPLICA_SWAP = `${PROTOCOL_PREFIX}.replica.*.swap`;

export function replicaSwapSubject(replicaId: string): string {
  assertId('replica id', replicaId);
  return `${PROTOCOL_PREFIX}.replica.${replicaId}.swap`;
}

/** Where a client cancels a request: at the router that acked it, which owns its state. */
export function routerCancelSubject(routerId: string): string {
  assertId('router id', routerId);
  return `${PROTOCOL_PREFIX}.router.${routerId}.cancel`;
}

/** Where one replica publishes its heartbeats. */
export function replicaHeartbeatSubject(replicaId: string): string {
  assertId('replica id', replicaId);
  return `${PROTOCOL_PREFIX}.hb.replica.${replicaId}`;
}

/** Where one router publishes its heartbeats. */
export function routerHeartbeatSubject(routerId: string): string {
  assertId('router id', routerId);
  return `${PROTOCOL_PREFIX}.hb.router.${routerId}`;
}

/**
 * The id a heartbeat subject names, or undefined when the subject is not one, so a monitor can
 * check that a heartbeat's body claims the id its subject carries (a mismatch is a bug or a spoof).
 */
export function heartbeatSubjectId(subject: string): { role: 'replica' | 'router'; id: string } | undefined {
  const parts = subject.split('.');
  if (parts.length !== 5 || `${parts[0]}.${parts[1]}` !== PROTOCOL_PREFIX || parts[2] !== 'hb') {
    return undefined;
  }
  const role = parts[3];
  const id = parts[4];
  if ((role !== 'replica' && role !== 'router') || id === undefined || !ID_PATTERN.test(id)) return undefined;
  return { role, id };
}

/** Roles whose inboxes are named by role and id, so permissions can tell whose replies are whose. */
export type InboxRole = 'router' | 'replica' | 'bridge' | 'client' | 'collector';

/**
 * The reply-inbox prefix of one actor: `_INBOX_<role>.<id>`. Two tokens, not `_INBOX_<role>_<id>`:
 * a NATS wildcard matches whole tokens only, and replicas must be allowed to publish to every
 * router's inbox (`_INBOX_router.>`) without knowing the routers. Replies go to
 * `<prefix>.<nuid>.<n>` (reply-mux.ts).
 */
export function actorInboxPrefix(role: InboxRole, id: string): string {
  assertId(`${role} id`, id);
  return `_INBOX_${role}.${id}`;
}

/** Every inbox of one role (`_INBOX_router.>`): what a permission grants to publish replies to. */
export function roleInboxes(role: InboxRole): string {
  return `_INBOX_${role}.>`;
}

/** Every inbox of one actor (`_INBOX_router.<id>.>`): the only inboxes it may subscribe to. */
export function actorInboxes(role: InboxRole, id: string): string {
  return `${actorInboxPrefix(role, id)}.>`;
}

/** Every subject of one replica (generate, cancel, fault). */
export function replicaSubjects(replicaId: string): string {
  assertId('replica id', replicaId);
  return `${PROTOCOL_PREFIX}.replica.${replicaId}.*`;
}

/** Every replica's generate subject: what routers may publish to. */
export const ALL_REPLICA_GENERATE = `${PROTOCOL_PREFIX}.replica.*.generate`;
/** Every replica's cancel subject. */
export const ALL_REPLICA_CANCEL = `${PROTOCOL_PREFIX}.replica.*.cancel`;
/** Every router's cancel subject: what clients and bridges may publish to. */
export const ALL_ROUTER_CANCEL = `${PROTOCOL_PREFIX}.router.*.cancel`;
/** Every heartbeat, of routers and replicas. */
export const ALL_HEARTBEATS = `${PROTOCOL_PREFIX}.hb.>`;
/** The NATS micro-service discovery subjects ($SRV.PING/INFO/STATS) a replica answers. */
export const SERVICE_DISCOVERY_SUBJECTS = '$SRV.>';
/** JetStream's API for the account (`$JS.API.INFO`), which opening a KV bucket asks. */
export const JETSTREAM_ACCOUNT_INFO = '$JS.API.INFO';

/**
 * The JetStream API and KV subjects of one KV bucket (stream `KV_<bucket>`): create and inspect
 * the stream, get and put keys. nats-server 2.9 permissions cannot scope by more than subject,
 * so this is as narrow as it gets: the stream's own API calls and the bucket's keys.
 */
export function kvBucketSubjects(bucket: string): string[] {
  assertId('KV bucket', bucket);
  const stream = `KV_${bucket}`;
  return [
    `$JS.API.*.*.${stream}`, // STREAM.INFO/CREATE/UPDATE, DIRECT.GET
    `$JS.API.*.*.${stream}.>`, // DIRECT.GET.<stream>.<subject>, CONSUMER.*.<stream>.<name>
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$KV.${bucket}.>`,
  ];
}

/**
 * Completion events, one subject per model (`sy.v1.capture.completion.<model>`), so an operator
 * can route or mirror one model's traffic; the stream {@link COMPLETIONS_STREAM} takes them all.
 */
export function completionSubject(model: string): string {
  assertId('model id', model);
  return `${PROTOCOL_PREFIX}.capture.completion.${model}`;
}

/** Every completion event subject: the completions stream's subjects and the routers' publish right. */
export const ALL_COMPLETIONS = `${PROTOCOL_PREFIX}.capture.completion.*`;

/** Where bridges and clients publish feedback on a completion (stream {@link FEEDBACK_STREAM}). */
export const FEEDBACK_SUBJECT = `${PROTOCOL_PREFIX}.capture.feedback`;

/** The JetStream stream of completion events. */
export const COMPLETIONS_STREAM = 'SY_COMPLETIONS';
/** The JetStream stream of feedback. */
export const FEEDBACK_STREAM = 'SY_FEEDBACK';
/** The collectors' KV bucket of joined records (completion + feedback, by request id). */
export const RECORDS_BUCKET = 'SY_RECORDS';

/** The collector's requests (`stats`, `export`), answered by any collector of {@link COLLECTOR_QUEUE_GROUP}. */
export function collectorSubject(op: 'stats' | 'export'): string {
  return `${PROTOCOL_PREFIX}.collector.${op}`;
}
/** Where later pages of an export are asked of the collector that holds its snapshot. */
export function collectorPageSubject(collectorId: string): string {
  assertId('collector id', collectorId);
  return `${PROTOCOL_PREFIX}.collector.page.${collectorId}`;
}

/** Every collector request subject. */
export const ALL_COLLECTOR_REQUESTS = `${PROTOCOL_PREFIX}.collector.*`;
/** Queue group of the collectors, so a dataset request reaches one of them. */
export const COLLECTOR_QUEUE_GROUP = 'sy-collectors';

/**
 * The JetStream API subjects a stream's publisher needs to learn whether the stream exists, and
 * those a consumer of it needs (create its durable consumer, fetch, ack). Acks go to `$JS.ACK.<stream>.>`.
 */
export function streamConsumerSubjects(stream: string): string[] {
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.CREATE.${stream}`,
    `$JS.API.STREAM.UPDATE.${stream}`,
    `$JS.API.CONSUMER.*.${stream}`,
    `$JS.API.CONSUMER.*.${stream}.>`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.>`,
    // A pull is `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`: two tokens before the stream.
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
    `$JS.ACK.${stream}.>`,
  ];
}

/**
 * A fresh, unguessable reply subject for one streamed request. `prefix` must match the
 * connection's `inboxPrefix` where NATS permissions restrict inboxes (NATS default: `_INBOX`).
 */
export function streamInbox(prefix?: string): string {
  return createInbox(prefix);
}

/**
 * The model registry's object store (stream `OBJ_SY_MODELS`): every file of every version, as
 * object `<id>/<digest>/<path>`. The digest in the name keeps two pushers of one version id
 * from overwriting each other's files, and lets versions with identical files share them.
 */
export const MODELS_OBJECT_BUCKET = 'SY_MODELS';
/** The registry's KV bucket of version manifests, key {@link modelVersionKey}. */
export const MODEL_VERSIONS_BUCKET = 'SY_MODEL_VERSIONS';
/** The registry's KV bucket of aliases, key {@link modelAliasKey}; its history is the alias history. */
export const MODEL_ALIASES_BUCKET = 'SY_MODEL_ALIASES';

/**
 * Rollouts: one key per model id (the model's current or last rollout), written by operators'
 * `switchyard rollout` commands and by the collector that drives it; routers watch it (read
 * only) to split traffic. See src/rollout/.
 */
export const ROLLOUTS_BUCKET = 'SY_ROLLOUTS';

/**
 * A version or alias becomes KV key tokens after the model id, so on top of
 * {@link MODEL_VERSION_PATTERN} it may not start or end with `.` nor hold `..` (an empty token).
 */
function assertKeyTokens(kind: string, value: string): void {
  assertModelVersion(kind, value);
  if (value.startsWith('.') || value.endsWith('.') || value.includes('..')) {
    throw new InvalidRequestError(
      `${kind} must not start or end with '.' nor contain '..' (it becomes a KV key), got ${describe(value)}`,
    );
  }
}

/** Checks a registry version or alias name: {@link MODEL_VERSION_PATTERN}, usable as KV key tokens. */
export function assertRegistryRef(kind: string, value: unknown): asserts value is string {
  assertModelVersion(kind, value);
  assertKeyTokens(kind, value);
}

/** The versions-bucket key of one version: `<id>.<version>`. */
export function modelVersionKey(id: string, version: string): string {
  assertId('model id', id);
  assertRegistryRef('model version', version);
  return `${id}.${version}`;
}

/** The aliases-bucket key of one alias: `<id>.<alias>`. */
export function modelAliasKey(id: string, alias: string): string {
  assertId('model id', id);
  assertRegistryRef('model alias', alias);
  return `${id}.${alias}`;
}

/** Every key of one model in the versions or aliases bucket (`<id>.>`). */
export function modelKeys(id: string): string {
  assertId('model id', id);
  return `${id}.>`;
}

/**
 * The model id and the version or alias a registry key names (the id holds no dot, so the first
 * dot splits them), or undefined for a key of another shape.
 */
export function splitModelKey(key: string): { id: string; name: string } | undefined {
  const dot = key.indexOf('.');
  if (dot <= 0) return undefined;
  const id = key.slice(0, dot);
  const name = key.slice(dot + 1);
  return ID_PATTERN.test(id) && MODEL_VERSION_PATTERN.test(name) ? { id, name } : undefined;
}

/**
 * Read-only JetStream API subjects of one stream: its info, single-message gets (direct or not),
 * and ephemeral ordered consumers (what a KV get, history or watch and an object get use) with
 * their flow-control replies. No create, update, purge, delete or publish: a role holding only
 * these can read the stream and never change it (measured on nats-server 2.9.10).
 */
function streamReadSubjects(stream: string): string[] {
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.INFO.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/** What reading (get, keys, history, watch) one KV bucket needs, and nothing that writes it. */
export function kvBucketReadSubjects(bucket: string): string[] {
  assertId('KV bucket', bucket);
  return streamReadSubjects(`KV_${bucket}`);
}

/** What reading (info, list, get) one object store needs, and nothing that writes it. */
export function objectStoreReadSubjects(bucket: string): string[] {
  assertId('object store', bucket);
  return streamReadSubjects(`OBJ_${bucket}`);
}

/**
 * Everything one object store needs to be created and written: its stream's API (create,
 * update, purge, consumers), the chunk and meta subjects `$O.<bucket>.C.>`/`.M.>`, flow control.
 */
export function objectStoreSubjects(bucket: string): string[] {
  assertId('object store', bucket);
  const stream = `OBJ_${bucket}`;
  return [
    `$JS.API.*.*.${stream}`,
    `$JS.API.*.*.${stream}.>`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.STREAM.MSG.DELETE.${stream}`,
    `$O.${bucket}.>`,
    `$JS.FC.${stream}.>`,
  ];
}
