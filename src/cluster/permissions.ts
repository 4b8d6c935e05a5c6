/**
 * What each role may publish and subscribe to on NATS (DESIGN.md invariant 7): the one table
 * `switchyard up` configures its nats-server with, and that docs/protocol.md ships as a template
 * for operators' own servers. Everything not listed is refused by nats-server, asynchronously
 * (a permissions violation for that subscription or publish; the connection stays up).
 *
 * Streamed replies: `allow_responses: true` lets a responder publish one message to a request's
 * reply subject, which breaks ack/chunk/end streams (measured on nats-server 2.9.10). So streams
 * are granted as publish rights on the requesters' inbox prefixes, which name their role
 * (`_INBOX_router.>`); `allow_responses` stays on for the replica only, for the single replies
 * of the micro-service discovery requests (`$SRV.PING`), whose requesters can be anyone.
 */
import {
  ALL_COLLECTOR_REQUESTS,
  ALL_COMPLETIONS,
  COLLECTOR_QUEUE_GROUP,
  COMPLETIONS_STREAM,
  FEEDBACK_STREAM,
  FEEDBACK_SUBJECT,
  RECORDS_BUCKET,
  ROLLOUTS_BUCKET,
  collectorSubject,
  collectorPageSubject,
  streamConsumerSubjects,
  ALL_HEARTBEATS,
  ALL_REPLICA_CANCEL,
  ALL_REPLICA_GENERATE,
  ALL_REPLICA_SWAP,
  ALL_REPLICA_HEARTBEATS,
  ALL_ROUTER_CANCEL,
  ALL_ROUTER_HEARTBEATS,
  GENERATE_SUBJECT,
  JETSTREAM_ACCOUNT_INFO,
  ROUTER_QUEUE_GROUP,
  SERVICE_DISCOVERY_SUBJECTS,
  actorInboxes,
  kvBucketSubjects,
  kvBucketReadSubjects,
  MODELS_OBJECT_BUCKET,
  MODEL_ALIASES_BUCKET,
  MODEL_VERSIONS_BUCKET,
  objectStoreReadSubjects,
  objectStoreSubjects,
  replicaHeartbeatSubject,
  replicaSubjects,
  roleInboxes,
  routerCancelSubject,
  routerHeartbeatSubject,
} from './subjects.ts';

/** A role with its own permissions; `operator` is for commands that are not actors. */
export type PermissionRole = 'router' | 'replica' | 'bridge' | 'client' | 'collector' | 'operator';

/** A user's allow-lists, as nats-server's `permissions` block takes them. */
export interface SubjectPermissions {
  /** Subjects it may publish to. */
  readonly publish: readonly string[];
  /** Subjects it may subscribe to; `"<subject> <queue>"` allows that queue group only. */
  readonly subscribe: readonly string[];
  /** May publish one reply to the reply subject of each message it received. */
  readonly allowResponses: boolean;
}

/** The KV buckets bridges reach (cache and rate limits). */
export interface PermissionContext {
  readonly kvBuckets: readonly string[];
}

/** Wildcard id that the template uses where `up` writes a real id. */
export const TEMPLATE_ID = '<id>';

/** What a client program or a bridge may do without JetStream: the front door in, its replies back. */
function requester(inboxes: string): SubjectPermissions {
  return {
    // Feedback goes to its stream, whose ack comes back to the inbox (never a buffer: 202 means stored).
    publish: [GENERATE_SUBJECT, ALL_ROUTER_CANCEL, FEEDBACK_SUBJECT],
    // Router heartbeats for the client's router watch, replica heartbeats for the bridge's view.
    subscribe: [inboxes, ALL_HEARTBEATS],
    allowResponses: false,
  };
}

/**
 * Reading the model registry (replicas fetch and watch versions): get, watch and object get on
 * its three buckets, never a write, purge or delete.
 */
function registryReader(): string[] {
  return [
    JETSTREAM_ACCOUNT_INFO,
    ...kvBucketReadSubjects(MODEL_VERSIONS_BUCKET),
    ...kvBucketReadSubjects(MODEL_ALIASES_BUCKET),
    ...objectStoreReadSubjects(MODELS_OBJECT_BUCKET),
  ];
}

/** Watching the rollouts (routers split traffic by them): get and watch, never a write. */
function rolloutsReader(): string[] {
  return [JETSTREAM_ACCOUNT_INFO, ...kvBucketReadSubjects(ROLLOUTS_BUCKET)];
}

/** Managing the model registry (the collector's rollouts): push, alias and remove. */
function registryWriter(): string[] {
  return [
    ...kvBucketSubjects(MODEL_VERSIONS_BUCKET),
    ...kvBucketSubjects(MODEL_ALIASES_BUCKET),
    ...objectStoreSubjects(MODELS_OBJECT_BUCKET),
  ];
}

/**
 * The permissions of one actor. `id` is the actor's id (the client credential is shared by
 * every program, so its inboxes are the role's: programs sharing it can read each other's
 * replies, as they can with any shared credential).
 */
export function rolePermissions(
  role: PermissionRole,
  id: string,
  ctx: PermissionContext,
): SubjectPermissions {
  switch (role) {
    case 'router':
      return {
        publish: [
          ALL_REPLICA_GENERATE,
          ALL_REPLICA_CANCEL,
          routerHeartbeatSubject(id),
          roleInboxes('client'),
          roleInboxes('bridge'),
          // Completion events, acked by JetStream on the router's inbox.
          ALL_COMPLETIONS,
          // Rollout weights: watched, never written.
          ...rolloutsReader(),
        ],
        subscribe: [
          `${GENERATE_SUBJECT} ${ROUTER_QUEUE_GROUP}`,
          ALL_REPLICA_HEARTBEATS,
          routerCancelSubject(id),
          actorInboxes('router', id),
        ],
        allowResponses: false,
      };
    case 'replica':
      return {
        publish: [replicaHeartbeatSubject(id), roleInboxes('router'), ...registryReader()],
        subscribe: [
          replicaSubjects(id),
          ALL_ROUTER_HEARTBEATS,
          SERVICE_DISCOVERY_SUBJECTS,
          actorInboxes('replica', id),
        ],
        allowResponses: true,
      };
    case 'bridge': {
      const base = requester(actorInboxes('bridge', id));
      return {
        ...base,
        publish: [
          ...base.publish,
          JETSTREAM_ACCOUNT_INFO,
          ...ctx.kvBuckets.flatMap(kvBucketSubjects),
          // The web page's stats view asks a collector.
          collectorSubject('stats'),
        ],
      };
    }
    case 'collector':
      return {
        // Its streams and its bucket (create, consume, ack), and answers to whoever asked.
        publish: [
          JETSTREAM_ACCOUNT_INFO,
          ...streamConsumerSubjects(COMPLETIONS_STREAM),
          ...streamConsumerSubjects(FEEDBACK_STREAM),
          ...kvBucketSubjects(RECORDS_BUCKET),
          ...registryWriter(),
          // Rollouts: their bucket, and swap commands to replicas (and back).
          ...kvBucketSubjects(ROLLOUTS_BUCKET),
          ALL_REPLICA_SWAP,
        ],
        subscribe: [
          `${ALL_COLLECTOR_REQUESTS} ${COLLECTOR_QUEUE_GROUP}`,
          // A rollout driver picks canary replicas from their heartbeats.
          ALL_REPLICA_HEARTBEATS,
          collectorPageSubject(id),
          actorInboxes('collector', id),
        ],
        // Dataset answers go to the asker's reply subject (bridges, the operator's CLI).
        allowResponses: true,
      };
    case 'client':
      return requester(roleInboxes('client'));
    case 'operator':
      return { publish: ['>'], subscribe: ['>'], allowResponses: false };
  }
}

/** One user of the server's `authorization` block: an nkey's public key and its permissions. */
export interface NatsUser {
  /** `U…` public key. */
  readonly nkey: string;
  readonly permissions: SubjectPermissions;
}

/** A JSON string, which nats-server's config syntax reads as a quoted string. */
const q = (s: string): string => JSON.stringify(s);

/** The `permissions` block of one user, in nats-server config syntax. */
export function permissionsBlock(p: SubjectPermissions, indent = '    '): string {
  const list = (items: readonly string[]): string => `[${items.map(q).join(', ')}]`;
  const lines = [
    `${indent}publish: { allow: ${list(p.publish)} }`,
    `${indent}subscribe: { allow: ${list(p.subscribe)} }`,
  ];
  if (p.allowResponses) lines.push(`${indent}allow_responses: true`);
  return lines.join('\n');
}

/** An `authorization` block with one nkey user per entry. */
export function authorizationBlock(users: readonly NatsUser[]): string {
  const entries = users.map(
    (u) =>
      `  {\n    nkey: ${q(u.nkey)}\n    permissions: {\n${permissionsBlock(u.permissions, '      ')}\n    }\n  }`,
  );
  return `authorization {\n users: [\n${entries.join('\n')}\n ]\n}`;
}
