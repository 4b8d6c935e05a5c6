/**
 * The per-role NATS permissions of `switchyard up` (src/cluster/permissions.ts) on a real
 * nats-server: actors with their own nkeys serve; each forbidden subscribe or publish of a
 * client, a bridge or a replica credential is refused by the server; and the cluster keeps
 * serving after the refusals. One server, one router and one replica for the whole file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Svcm } from '@nats-io/services';
import { SwitchyardClient } from '../../src/client/client.ts';
import { CredentialStore, type Credential } from '../../src/cli/nats-credentials.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { authorizationBlock } from '../../src/cluster/permissions.ts';
import { ensureCaptureStreams } from '../../src/capture/streams.ts';
import {
  COMPLETIONS_STREAM,
  GENERATE_SUBJECT,
  ROUTER_QUEUE_GROUP,
  completionSubject,
  replicaHeartbeatSubject,
  replicaFaultSubject,
  replicaSubjects,
  routerHeartbeatSubject,
  type InboxRole,
} from '../../src/cluster/subjects.ts';
import { UnauthorizedError } from '../../src/errors/errors.ts';
import { ActorProcess, killAll } from '../helpers/cluster.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { connectAs, publishRefused, subscribeRefused } from '../helpers/permissions.ts';

/** The bundled model's context, in tokens. */
const CONTEXT_LENGTH = 512;

describe('per-role NATS permissions (up on nats-server 2.9)', () => {
  let server: NatsServer;
  let store: CredentialStore;
  let router: ActorProcess;
  let replica: ActorProcess;
  let cred: Record<'router' | 'replica' | 'bridge' | 'client' | 'operator', Credential>;
  const open: NatsConnection[] = [];

  /** A connection with `credential`, its inboxes named as the actor's would be. */
  async function as(credential: Credential, role: InboxRole, id = credential.id): Promise<NatsConnection> {
    const nc = await connectAs(server.url, credential, role, id);
    open.push(nc);
    return nc;
  }

  before(async () => {
    store = new CredentialStore(mkdtempSync(join(tmpdir(), 'sy-perm-')), { kvBuckets: ['sy_rate_limits'] });
    cred = {
      router: store.issue('router', 'rt'),
      replica: store.issue('replica', 'ra'),
      bridge: store.issue('bridge', 'br'),
      client: store.issue('client', 'client'),
      operator: store.issue('operator', 'operator'),
    };
    // The collector identity: the capture test below consumes with it.
    store.issue('collector', 'col');
    // `rb` is a second replica identity that no process runs: its subjects are another's.
    store.issue('replica', 'rb');
    server = await NatsServer.start({ jetstream: true, extraConfig: authorizationBlock(store.users) });
    const seed = (c: Credential): Record<string, string> => ({ SWITCHYARD_NATS_NKEY_SEED_FILE: c.seedFile });
    [router, replica] = await Promise.all([
      ActorProcess.start('router', 'rt', server.url, [], seed(cred.router)),
      ActorProcess.start('replica', 'ra', server.url, [], seed(cred.replica)),
    ]);
  });

  after(async () => {
    await Promise.all(open.map((nc) => nc.close()));
    await killAll([router, replica]);
    await server?.stop();
    if (store !== undefined) rmSync(store.dir, { recursive: true, force: true });
  });

  it('refuses a connection without credentials', async () => {
    await assert.rejects(connectNats({ servers: server.url, maxReconnectAttempts: 0 }), UnauthorizedError);
  });

  it('serves a completion through the client credential', async () => {
    const client = await SwitchyardClient.connect({
      nats: { servers: server.url, nkeySeedFile: cred.client.seedFile },
    });
    try {
      const got = await client.generate({
        model: 'tiny-gpt2',
        prompt: 'secured',
        maxTokens: 6,
        temperature: 0,
      });
      assert.equal(got.finishReason, 'length');
      assert.equal(got.tokenIds.length, 6);
    } finally {
      await client.close();
    }
  });

  for (const role of ['client', 'bridge'] as const) {
    it(`refuses a ${role} credential reading traffic, joining the routers or posing as a replica`, async () => {
      const nc = await as(cred[role], role);
      await subscribeRefused(nc, 'sy.v1.>');
      await subscribeRefused(nc, '_INBOX.>');
      await subscribeRefused(nc, GENERATE_SUBJECT, ROUTER_QUEUE_GROUP);
      await publishRefused(nc, replicaHeartbeatSubject('ra'));
    });
  }

  it('gives the bridge credential its KV bucket but no other, the client credential all of JetStream', async () => {
    const bridge = await as(cred.bridge, 'bridge');
    const kv = await new Kvm(jetstream(bridge, { timeout: 2_000 })).create('sy_rate_limits', { history: 1 });
    await kv.put('k', 'v');
    assert.equal((await kv.get('k'))?.string(), 'v', 'the bridge reaches its own bucket');
    await publishRefused(bridge, '$JS.API.STREAM.INFO.KV_other');
    const client = await as(cred.client, 'client');
    await publishRefused(client, '$JS.API.INFO');
  });

  it('refuses a replica credential posing as a router or another replica', async () => {
    const nc = await as(cred.replica, 'replica');
    await publishRefused(nc, routerHeartbeatSubject('rt'));
    await publishRefused(nc, replicaHeartbeatSubject('rb'));
    await subscribeRefused(nc, replicaSubjects('rb'));
  });

  it('refuses a router the front door outside its queue group, and replica heartbeats', async () => {
    const nc = await as(cred.router, 'router', 'rt');
    await subscribeRefused(nc, GENERATE_SUBJECT);
    await publishRefused(nc, replicaHeartbeatSubject('ra'));
  });

  it('streams a whole context, and a stream that lives close to its deadline, under the permissions', async () => {
    // Replies go back on publish grants for the requesters' inbox prefixes, not allow_responses:
    // no message count or lifetime cuts a long stream short. Both ends are tested here.
    const client = await SwitchyardClient.connect({
      nats: { servers: server.url, nkeySeedFile: cred.client.seedFile },
      defaultTimeoutMs: 20_000,
    });
    const op = await connectNats({ servers: server.url, nkeySeedFile: cred.operator.seedFile });
    open.push(op);
    try {
      const prompt = [11, 12, 13, 14];
      const whole = await client.generate({
        model: 'tiny-gpt2',
        promptTokenIds: prompt,
        maxTokens: CONTEXT_LENGTH - prompt.length,
        temperature: 0,
        ignoreEos: true,
      });
      assert.equal(whole.finishReason, 'length');
      assert.equal(whole.tokenIds.length, CONTEXT_LENGTH - prompt.length, 'one chunk per token, all of them');
      // 60 tokens at 100 ms a step: about 6 s of a 9 s deadline.
      await op.request(replicaFaultSubject('ra'), JSON.stringify({ step_delay_ms: 100 }));
      const started = Date.now();
      const slow = await client.generate(
        { model: 'tiny-gpt2', prompt: 'slow', maxTokens: 60, temperature: 0, ignoreEos: true },
        { timeoutMs: 9_000 },
      );
      assert.equal(slow.tokenIds.length, 60);
      assert.ok(Date.now() - started >= 60 * 100, 'the stream really was slow');
    } finally {
      await op.request(replicaFaultSubject('ra'), JSON.stringify({ step_delay_ms: 0 }));
      await client.close();
    }
  });

  it('lets the collector credential create the capture streams, pull and ack its consumer', async () => {
    const collector = store.issue('collector', 'col');
    const nc = await as(collector, 'collector');
    await ensureCaptureStreams(nc);
    const jsm = await jetstreamManager(nc);
    // Its own model's subject: the router's own events of the tests above are not this test's.
    const subject = completionSubject('perm-test');
    await jsm.consumers.add(COMPLETIONS_STREAM, {
      durable_name: 'perm-test',
      ack_policy: AckPolicy.Explicit,
      filter_subject: subject,
    });
    // A router publishes an event (its inbox takes the ack); the collector pulls it and acks it.
    const routerNc = await as(cred.router, 'router');
    await jetstream(routerNc).publish(subject, '{"perm":"test"}', {
      msgID: 'perm-test-1',
    });
    const consumer = await jetstream(nc).consumers.get(COMPLETIONS_STREAM, 'perm-test');
    const msg = await consumer.next({ expires: 5_000 });
    assert.ok(msg, 'the collector pulled no message ($JS.API.CONSUMER.MSG.NEXT refused?)');
    assert.equal(msg.string(), '{"perm":"test"}');
    assert.ok(await msg.ackAck(), 'the ack was not confirmed');
    const info = await jsm.consumers.info(COMPLETIONS_STREAM, 'perm-test');
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.num_pending, 0);
  });

  it('lets the operator credential discover replicas over $SRV, and the cluster still serves', async () => {
    const op = await connectNats({ servers: server.url, nkeySeedFile: cred.operator.seedFile });
    open.push(op);
    const pings = await new Svcm(op).client().ping();
    const names: string[] = [];
    for await (const ping of pings) names.push(ping.name);
    assert.ok(names.length >= 1, 'the replica answers $SRV.PING');
    const client = await SwitchyardClient.connect({
      nats: { servers: server.url, nkeySeedFile: cred.client.seedFile },
    });
    try {
      const got = await client.generate({
        model: 'tiny-gpt2',
        prompt: 'still up',
        maxTokens: 4,
        temperature: 0,
      });
      assert.equal(got.finishReason, 'length');
    } finally {
      await client.close();
    }
  });
});
