/** Asserting that nats-server refuses a publish or a subscription (permission tests). */
import assert from 'node:assert/strict';
import { PermissionViolationError, type NatsConnection } from '@nats-io/nats-core';
import type { Credential, CredentialStore } from '../../src/cli/nats-credentials.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { actorInboxPrefix, type InboxRole } from '../../src/cluster/subjects.ts';

/** A connection with `credential`, its inboxes named as the actor's would be. */
export function connectAs(
  url: string,
  credential: Credential,
  role: InboxRole,
  id = credential.id,
): Promise<NatsConnection> {
  return connectNats({
    servers: url,
    nkeySeedFile: credential.seedFile,
    inboxPrefix: actorInboxPrefix(role, id),
  });
}

/** How long to wait for the server's asynchronous -ERR of a refused operation. */
export const REFUSAL_TIMEOUT_MS = 2_000;

/** Resolves with the permission violation the server reports for `subject`. */
export function violation(nc: NatsConnection, subject: string): Promise<PermissionViolationError> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no permission violation for ${subject}`)),
      REFUSAL_TIMEOUT_MS,
    );
    void (async () => {
      for await (const s of nc.status()) {
        if (
          s.type === 'error' &&
          s.error instanceof PermissionViolationError &&
          s.error.subject === subject
        ) {
          clearTimeout(timer);
          resolve(s.error);
          return;
        }
      }
    })();
  });
}

/** Subscribing to `subject` (in `queue`) is refused: the subscription's callback gets the error. */
export async function subscribeRefused(nc: NatsConnection, subject: string, queue?: string): Promise<void> {
  const refused = new Promise<Error>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`subscribe ${subject} was not refused`)),
      REFUSAL_TIMEOUT_MS,
    );
    nc.subscribe(subject, {
      ...(queue !== undefined ? { queue } : {}),
      callback: (err) => {
        if (err === null) return;
        clearTimeout(timer);
        resolve(err);
      },
    });
  });
  const err = await refused;
  assert.ok(err instanceof PermissionViolationError, String(err));
  assert.equal(err.operation, 'subscription');
  assert.equal(err.subject, subject);
  if (queue !== undefined) assert.equal(err.queue, queue);
}

/** Publishing to `subject` is refused (the server says so; the connection stays up). */
export async function publishRefused(nc: NatsConnection, subject: string): Promise<void> {
  const refused = violation(nc, subject);
  nc.publish(subject, '{}');
  const err = await refused;
  assert.equal(err.operation, 'publish');
  assert.equal(nc.isClosed(), false);
}

/** One credential per role, with the ids the permission tests use. */
export type RoleCredentials = Record<
  'router' | 'replica' | 'bridge' | 'client' | 'collector' | 'operator',
  Credential
>;

/** Issues {@link RoleCredentials} from `store`. */
export function issueRoles(store: CredentialStore): RoleCredentials {
  return {
    router: store.issue('router', 'rt'),
    replica: store.issue('replica', 'ra'),
    bridge: store.issue('bridge', 'br'),
    client: store.issue('client', 'client'),
    collector: store.issue('collector', 'col'),
    operator: store.issue('operator', 'operator'),
  };
}
