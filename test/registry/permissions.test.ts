/**
 * The registry under the per-role permissions (src/cluster/permissions.ts) on an nkey-secured
 * nats-server with JetStream: a replica resolves, fetches and watches, but every push, alias
 * move and removal it tries is refused and changes nothing; the collector and the operator may
 * do all three; bridges, routers and clients cannot even read the registry. Routers watch the
 * rollouts bucket but cannot write, purge or delete it.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PermissionViolationError, type NatsConnection } from '@nats-io/nats-core';
import { CredentialStore } from '../../src/cli/nats-credentials.ts';
import { authorizationBlock } from '../../src/cluster/permissions.ts';
import {
  MODELS_OBJECT_BUCKET,
  MODEL_ALIASES_BUCKET,
  MODEL_VERSIONS_BUCKET,
  ROLLOUTS_BUCKET,
  type InboxRole,
} from '../../src/cluster/subjects.ts';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { encodeRolloutRecord } from '../../src/rollout/record.ts';
import { watchRollouts, type AppliedRollout } from '../../src/router/rollouts.ts';
import { sampleRollout } from '../rollout/record-fixture.ts';
import { fetchVersion } from '../../src/registry/cache.ts';
import { Registry } from '../../src/registry/registry.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { connectAs, issueRoles, publishRefused, type RoleCredentials } from '../helpers/permissions.ts';
import { modelFolder, tempDir } from './helpers.ts';

/** The call failed because the server refused its subject (not for some other reason). */
function refusedForPermissions(err: unknown): void {
  let e: unknown = err;
  while (e instanceof Error && !(e instanceof PermissionViolationError)) e = e.cause;
  assert.ok(e instanceof PermissionViolationError, `expected a permission violation, got ${String(err)}`);
  assert.equal(e.operation, 'publish');
}

/** A refused JetStream call fails (permission error or no answer) within this. */
const REFUSED_CALL_TIMEOUT_MS = 1_500;

describe('the model registry under the per-role permissions', () => {
  let server: NatsServer;
  let store: CredentialStore;
  let work: string;
  let cred: RoleCredentials;
  const open: NatsConnection[] = [];

  async function as(
    role: keyof typeof cred,
    inbox: InboxRole = role === 'operator' ? 'client' : role,
  ): Promise<NatsConnection> {
    const nc = await connectAs(server.url, cred[role], inbox);
    open.push(nc);
    return nc;
  }

  before(async () => {
    work = tempDir('perm');
    store = new CredentialStore(join(work, 'creds'), { kvBuckets: [] });
    cred = issueRoles(store);
    server = await NatsServer.start({ jetstream: true, extraConfig: authorizationBlock(store.users) });
    const operator = await Registry.open(await as('operator'), { create: true });
    await operator.push(modelFolder(work, 'p1', { id: 'pm', version: '1' }), { by: 'operator' });
    await operator.alias('pm', 'stable', '1', { by: 'operator' });
  });

  after(async () => {
    await Promise.all(open.map((nc) => nc.close()));
    await server?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it('a replica resolves, fetches and watches the registry', async () => {
    const registry = await Registry.open(await as('replica'), { create: false });
    const manifest = await registry.resolve('pm', 'stable');
    assert.equal(manifest.version, '1');
    const dir = await fetchVersion(registry, manifest, join(work, 'cache-replica'));
    assert.equal(dir, join(work, 'cache-replica', manifest.digest));
    const first = await new Promise<string>((resolve) => {
      void registry
        .watchAlias('pm', 'stable', (r) => resolve(r.version))
        .then((w) => setTimeout(() => w.stop(), 0));
    });
    assert.equal(first, '1');
  });

  it('a replica cannot push, move an alias or remove a version: each is refused and changes nothing', async () => {
    const registry = await Registry.open(await as('replica'), {
      create: false,
      timeoutMs: REFUSED_CALL_TIMEOUT_MS,
    });
    await registry
      .push(modelFolder(work, 'p2', { id: 'pm', version: '2' }))
      .then(() => assert.fail('the push went through'), refusedForPermissions);
    await registry
      .alias('pm', 'stable', '1', { reason: 'replica tries' })
      .then(() => assert.fail('the alias move went through'), refusedForPermissions);
    const operator = await Registry.open(await as('operator'), { create: false });
    await operator.push(modelFolder(work, 'p3', { id: 'pm', version: '3' }));
    await registry
      .remove('pm', '3', { inUseBy: [] })
      .then(() => assert.fail('the removal went through'), refusedForPermissions);
    assert.equal(await operator.getVersion('pm', '2'), undefined, 'no version 2');
    assert.ok((await operator.getVersion('pm', '3')) !== undefined, 'version 3 stays');
    assert.deepEqual(
      (await operator.aliasHistory('pm', 'stable')).map((h) => h.by),
      ['operator'],
      'the alias did not move',
    );
    const nc = await as('replica');
    for (const subject of [
      `$KV.${MODEL_VERSIONS_BUCKET}.pm.9`,
      `$KV.${MODEL_ALIASES_BUCKET}.pm.stable`,
      `$O.${MODELS_OBJECT_BUCKET}.M.x`,
      `$O.${MODELS_OBJECT_BUCKET}.C.x`,
      `$JS.API.STREAM.PURGE.OBJ_${MODELS_OBJECT_BUCKET}`,
      `$JS.API.STREAM.DELETE.KV_${MODEL_ALIASES_BUCKET}`,
      `$JS.API.STREAM.CREATE.KV_${MODEL_VERSIONS_BUCKET}`,
      `$JS.API.STREAM.MSG.DELETE.KV_${MODEL_VERSIONS_BUCKET}`,
    ]) {
      await publishRefused(nc, subject);
    }
  });

  it('the collector and the operator push, move aliases and remove', async () => {
    for (const role of ['collector', 'operator'] as const) {
      const registry = await Registry.open(await as(role), { create: true });
      const version = `${role}-1`;
      const { created } = await registry.push(modelFolder(work, version, { id: 'pm', version }), {
        by: role,
      });
      assert.equal(created, true, role);
      await registry.alias('pm', `${role}-alias`, version, { by: role });
      assert.equal((await registry.resolve('pm', `${role}-alias`)).version, version);
      await registry.alias('pm', `${role}-alias`, '1', { by: role });
      await registry.remove('pm', version, { inUseBy: [] });
      assert.equal(await registry.getVersion('pm', version), undefined, role);
    }
  });

  it('bridges, routers and clients cannot read the registry', async () => {
    for (const role of ['bridge', 'router', 'client'] as const) {
      const nc = await as(role);
      await publishRefused(nc, `$JS.API.STREAM.MSG.GET.KV_${MODEL_ALIASES_BUCKET}`);
      await publishRefused(nc, `$JS.API.CONSUMER.CREATE.OBJ_${MODELS_OBJECT_BUCKET}`);
      await publishRefused(nc, `$KV.${MODEL_ALIASES_BUCKET}.pm.stable`);
    }
  });

  it('a router watches the rollouts but cannot write, purge or delete them', async () => {
    const operator = await new Kvm(jetstream(await as('operator'))).create(ROLLOUTS_BUCKET, { history: 1 });
    await operator.put('pm', encodeRolloutRecord(sampleRollout({ model: 'pm', weight: 10 })));
    const seen: AppliedRollout[] = [];
    const watch = watchRollouts({
      nc: await as('router'),
      log: { info: () => undefined, warn: () => undefined },
      onChange: (_model, rollout) => {
        if (rollout !== undefined) seen.push(rollout);
      },
    });
    try {
      const deadline = Date.now() + 10_000;
      while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(seen[0]?.weight, 10, 'the router read the rollout through its watch');
    } finally {
      watch.stop();
    }
    const nc = await as('router');
    for (const subject of [
      `$KV.${ROLLOUTS_BUCKET}.pm`,
      `$JS.API.STREAM.PURGE.KV_${ROLLOUTS_BUCKET}`,
      `$JS.API.STREAM.DELETE.KV_${ROLLOUTS_BUCKET}`,
      `$JS.API.STREAM.CREATE.KV_${ROLLOUTS_BUCKET}`,
      `$JS.API.STREAM.UPDATE.KV_${ROLLOUTS_BUCKET}`,
      `$JS.API.STREAM.MSG.DELETE.KV_${ROLLOUTS_BUCKET}`,
    ]) {
      await publishRefused(nc, subject);
    }
    assert.equal((await operator.get('pm'))?.revision, 1, 'the rollout is unchanged');
  });
});
