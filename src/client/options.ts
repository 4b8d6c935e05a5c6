/** Client options, their defaults, and the one function that fills and checks them. */
import { nuid, type NatsConnection } from '@nats-io/nats-core';
import type { ConnectionOptions } from '../cluster/connection.ts';
import { ATTEMPT_MAX } from '../cluster/messages/stream.ts';
import { actorInboxPrefix } from '../cluster/subjects.ts';
import { DEFAULT_ACK_TIMEOUT_MS } from '../cluster/stream-requester.ts';
import { checkMs } from '../config/checks.ts';
import { StartupError } from '../errors/errors.ts';

/** Deadline of a request that gives no `timeoutMs`: long generations on a CPU take minutes. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 120_000;
/** Sends per request, the first included: enough to survive two router losses in a row. */
export const DEFAULT_CLIENT_MAX_ATTEMPTS = 3;
/**
 * Silence after which the router that owns a request counts as gone. Routers beat every 200 ms
 * by default, so this is about five missed beats: long enough that a GC pause is not a failover,
 * short enough that a lost router costs a user about a second.
 */
export const DEFAULT_ROUTER_SILENCE_MS = 1_000;
/**
 * Pause before a resend, so that a restarting router, or NATS dropping a dead router's queue
 * subscription, has a moment; small because the request already waited for the failure.
 */
export const DEFAULT_RETRY_BACKOFF_MS = 50;
/** Longest pause between two resends (the pause doubles from retryBackoffMs on each). */
export const MAX_RETRY_BACKOFF_MS = 1_000;

/** How a {@link SwitchyardClient} reaches the cluster and how patient it is. */
export interface ClientOptions {
  /** Connect with these options (the client owns and closes the connection). Excludes `nc`. @default {} */
  nats?: ConnectionOptions;
  /** Use this open connection (the caller keeps owning it; `close()` leaves it open). Excludes `nats`. */
  nc?: NatsConnection;
  /** Deadline of a request that gives no `timeoutMs`. @default DEFAULT_CLIENT_TIMEOUT_MS (120000) */
  defaultTimeoutMs?: number;
  /**
   * Sends per request, the first included (1 turns failover off). A send that no router acked
   * within `ackTimeoutMs` was lost before any router took it and is not counted: such sends are
   * repeated until the deadline. @default DEFAULT_CLIENT_MAX_ATTEMPTS (3)
   */
  maxAttempts?: number;
  /**
   * Silence of the owning router's heartbeats (and of its stream) after which the request is
   * resent elsewhere; 0 turns the watch off. @default DEFAULT_ROUTER_SILENCE_MS (1000)
   */
  routerSilenceMs?: number;
  /** No ack within this: the request or its router was lost; resend. @default DEFAULT_ACK_TIMEOUT_MS (5000) */
  ackTimeoutMs?: number;
  /** Pause before the first resend; it doubles for each later one, up to MAX_RETRY_BACKOFF_MS. @default DEFAULT_RETRY_BACKOFF_MS (50) */
  retryBackoffMs?: number;
  /**
   * Reply-inbox prefix where NATS permissions restrict `_INBOX.>`; with `nats` it defaults to
   * `nats.inboxPrefix`, and it must match the connection's own prefix. @default with `nats`:
   * `_INBOX_client.<random>` (what the client credential of `up` may subscribe to); with `nc`: '_INBOX'
   */
  inboxPrefix?: string;
}

/** {@link ClientOptions} checked, with every default filled in. */
export interface CompiledClientOptions {
  defaultTimeoutMs: number;
  maxAttempts: number;
  routerSilenceMs: number;
  ackTimeoutMs: number;
  retryBackoffMs: number;
  inboxPrefix: string | undefined;
}

/** Fills defaults and rejects contradictions with a {@link StartupError} naming the option. */
export function compileClientOptions(opts: ClientOptions): CompiledClientOptions {
  if (opts.nats !== undefined && opts.nc !== undefined) {
    throw new StartupError('config', 'client options nats and nc contradict each other: give one');
  }
  const maxAttempts = checkMs('maxAttempts', opts.maxAttempts, DEFAULT_CLIENT_MAX_ATTEMPTS);
  if (maxAttempts > ATTEMPT_MAX) {
    throw new StartupError('config', `maxAttempts must be at most ${ATTEMPT_MAX}, got ${maxAttempts}`);
  }
  const givenPrefix = opts.inboxPrefix ?? opts.nats?.inboxPrefix;
  // A connection of its own gets inboxes that name the role (`_INBOX_client.<random>`), the
  // prefix the client credential may subscribe to; an adopted one keeps whatever it uses.
  const inboxPrefix =
    givenPrefix !== undefined && givenPrefix !== ''
      ? givenPrefix
      : opts.nc === undefined
        ? actorInboxPrefix('client', nuid.next())
        : undefined;
  return {
    defaultTimeoutMs: checkMs('defaultTimeoutMs', opts.defaultTimeoutMs, DEFAULT_CLIENT_TIMEOUT_MS),
    maxAttempts,
    routerSilenceMs: checkMs('routerSilenceMs', opts.routerSilenceMs, DEFAULT_ROUTER_SILENCE_MS, 0),
    ackTimeoutMs: checkMs('ackTimeoutMs', opts.ackTimeoutMs, DEFAULT_ACK_TIMEOUT_MS),
    retryBackoffMs: checkMs('retryBackoffMs', opts.retryBackoffMs, DEFAULT_RETRY_BACKOFF_MS, 0),
    inboxPrefix,
  };
}
