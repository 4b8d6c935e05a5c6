/**
 * The capture rules of the per-role permissions (src/cluster/permissions.ts) on a real
 * nats-server with JetStream: routers publish completion events and the collector, under its
 * own credential, consumes them into records; bridges and clients publish feedback; only the
 * collector reads the streams and answers dataset requests. Each rule's refusal is tested.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { SwitchyardClient } from '../../src/client/client.ts';
import { CredentialStore, type Credential } from '../../src/cli/nats-credentials.ts';
import { CAPTURE_FORMAT_VERSION, encodeCaptureRecord } from '../../src/cluster/messages/capture.ts';
import { authorizationBlock } from '../../src/cluster/permissions.ts';
import {
  COLLECTOR_QUEUE_GROUP,
  FEEDBACK_SUBJECT,
  collectorSubject,
  completionSubject,
  type InboxRole,
} from '../../src/cluster/subjects.ts';
import { ActorProcess, killAll, waitFor } from '../helpers/cluster.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import {
  connectAs,
  issueRoles,
  publishRefused,
  subscribeRefused,
  type RoleCredentials,
} from '../helpers/permissions.ts';

describe('capture under the per-role permissions', () => {
  let server: NatsServer;
  let store: CredentialStore;
  let cred: RoleCredentials;
  const actors: ActorProcess[] = [];
  const open: NatsConnection[] = [];

  async function as(credential: Credential, role: InboxRole, id = credential.id): Promise<NatsConnection> {
    const nc = await connectAs(server.url, credential, role, id);
    open.push(nc);
    return nc;
  }

  before(async () => {
    store = new CredentialStore(mkdtempSync(join(tmpdir(), 'sy-capperm-')), {
      kvBuckets: ['sy_rate_limits'],
    });
    cred = issueRoles(store);
    server = await NatsServer.start({ jetstream: true, extraConfig: authorizationBlock(store.users) });
    const seed = (c: Credential): Record<string, string> => ({ SWITCHYARD_NATS_NKEY_SEED_FILE: c.seedFile });
    actors.push(await ActorProcess.start('collector', 'col', server.url, [], seed(cred.collector)));
    actors.push(
      ...(await Promise.all([
        ActorProcess.start('router', 'rt', server.url, [], seed(cred.router)),
        ActorProcess.start('replica', 'ra', server.url, [], seed(cred.replica)),
      ])),
    );
  });

  after(async () => {
    await Promise.all(open.map((nc) => nc.close()));
    await killAll(actors);
    await server?.stop();
    if (store !== undefined) rmSync(store.dir, { recursive: true, force: true });
  });

  it('a request is captured by its router and recorded by the collector, each under its own credential', async () => {
    const client = await SwitchyardClient.connect({
      nats: { servers: server.url, nkeySeedFile: cred.client.seedFile },
    });
    try {
      await client.generate(
        { model: 'tiny-gpt2', prompt: 'secured capture', maxTokens: 4, temperature: 0 },
        { requestId: 'perm-1' },
      );
    } finally {
      await client.close();
    }
    const operator = await as(cred.operator, 'client', 'operator');
    await waitFor('the record', async () => {
      const stats = (await operator.request(collectorSubject('stats'), '{}', { timeout: 5_000 })).json<{
        records: number;
      }>();
      return stats.records === 1;
    });
  });

  it('a client stores feedback; a bridge may ask the collector for stats', async () => {
    const client = await as(cred.client, 'client');
    const ack = await jetstream(client, { timeout: 5_000 }).publish(
      FEEDBACK_SUBJECT,
      encodeCaptureRecord({
        v: CAPTURE_FORMAT_VERSION,
        request_id: 'perm-1',
        rating: 1,
        received_at: new Date().toISOString(),
      }),
    );
    assert.ok(ack.seq >= 1);
    const bridge = await as(cred.bridge, 'bridge');
    const stats = (await bridge.request(collectorSubject('stats'), '{}', { timeout: 5_000 })).json<{
      records: number;
    }>();
    assert.ok(stats.records >= 1, 'the bridge reads the stats');
  });

  it('refuses completion events from anyone but a router', async () => {
    for (const role of ['client', 'bridge', 'replica', 'collector'] as const) {
      await publishRefused(await as(cred[role], role), completionSubject('tiny-gpt2'));
    }
  });

  it('refuses feedback from replicas and routers, and dataset exports to bridges and clients', async () => {
    await publishRefused(await as(cred.replica, 'replica'), FEEDBACK_SUBJECT);
    await publishRefused(await as(cred.router, 'router'), FEEDBACK_SUBJECT);
    await publishRefused(await as(cred.bridge, 'bridge'), collectorSubject('export'));
    await publishRefused(await as(cred.client, 'client'), collectorSubject('export'));
  });

  it('refuses reading the streams or answering dataset requests to every role but the collector', async () => {
    for (const role of ['client', 'bridge', 'router', 'replica'] as const) {
      const nc = await as(cred[role], role);
      await subscribeRefused(nc, 'sy.v1.capture.>');
      await subscribeRefused(nc, collectorSubject('export'), COLLECTOR_QUEUE_GROUP);
      await publishRefused(nc, '$JS.API.CONSUMER.CREATE.SY_COMPLETIONS.thief');
    }
  });
});
