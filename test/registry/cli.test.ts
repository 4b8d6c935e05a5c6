/**
 * `switchyard models` end to end, run as the command (bin/switchyard.mjs) against a real
 * nats-server with JetStream: push (and its no-op repeat), list --json, alias, show --json with
 * the alias history, rm refused for a version an alias uses and for one a heartbeat-publishing
 * (fake) replica serves, and rm of an unused version. `--json` prints one JSON document on stdout.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { SWITCHYARD_BIN } from '../../chaos/paths.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { encodeReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject } from '../../src/cluster/subjects.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { modelFolder, tempDir } from './helpers.ts';

const exec = promisify(execFile);
/** How often the fake replica beats (the command listens for at least 1 s). */
const FAKE_HEARTBEAT_MS = 200;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('`switchyard models`', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let work: string;

  const models = async (...args: string[]): Promise<Run> => {
    try {
      const { stdout, stderr } = await exec(
        process.execPath,
        [SWITCHYARD_BIN, 'models', ...args, '--nats', server.url],
        {
          timeout: 60_000,
        },
      );
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
  const json = <T>(r: Run): T => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
    work = tempDir('cli');
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it('pushes a folder, and a second push of it is a no-op', async () => {
    const folder = modelFolder(work, 'v1', { id: 'cli-m', version: '1' });
    const first = await models('push', folder, '--trainer', 'train.py --lr 1e-4', '--by', 'tester@ci');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /pushed cli-m@1 \(digest [0-9a-f]{12}, 3 files/);
    const again = await models('push', folder);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /in the registry already, with this digest: nothing to do/);
    const second = json<{ created: boolean; manifest: { version: string; lineage: { parent?: string } } }>(
      await models(
        'push',
        modelFolder(work, 'v2', { id: 'cli-m' }),
        '--version',
        '2',
        '--parent',
        '1',
        '--json',
      ),
    );
    assert.equal(second.created, true);
    assert.equal(second.manifest.version, '2');
    assert.equal(second.manifest.lineage.parent, '1');
  });

  it('lists versions as JSON, moves an alias and shows a version with its alias history', async () => {
    const listed = json<{
      versions: Array<{ id: string; version: string; pushed_by: string; lineage: object }>;
    }>(await models('list', '--json'));
    assert.deepEqual(
      listed.versions.map((v) => `${v.id}@${v.version}`),
      ['cli-m@1', 'cli-m@2'],
    );
    assert.equal(listed.versions[0]?.pushed_by, 'tester@ci');
    assert.deepEqual(listed.versions[0]?.lineage, { trainer: 'train.py --lr 1e-4' });

    const moved = await models('alias', 'cli-m', 'stable', '1', '--reason', 'first release');
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stderr, /cli-m@stable -> 1/);
    const shown = json<{
      manifest: { version: string; files: unknown[] };
      aliases: Array<{ alias: string }>;
      history: Array<{ version: string; by: string; reason: string; at: string }>;
    }>(await models('show', 'cli-m@stable', '--json'));
    assert.equal(shown.manifest.version, '1');
    assert.equal(shown.manifest.files.length, 3);
    assert.deepEqual(
      shown.aliases.map((a) => a.alias),
      ['stable'],
    );
    assert.equal(shown.history.length, 1);
    assert.equal(shown.history[0]?.reason, 'first release');
    assert.match(shown.history[0]?.by ?? '', /.+@.+/, 'by is user@host unless --by');

    const human = await models('list');
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^model\s+version\s+digest/);
    assert.match(human.stdout, /cli-m\s+1\s+[0-9a-f]{12}.*stable/);
  });

  it('rm refuses a version an alias uses, and one a running replica serves; removes an unused one', async () => {
    const byAlias = await models('rm', 'cli-m@1');
    assert.equal(byAlias.code, 1);
    assert.match(byAlias.stderr, /cli-m@1 is in use by alias stable/);

    let progress = 0;
    const beat = (): void =>
      nc.publish(
        replicaHeartbeatSubject('fake-rep'),
        encodeReplicaHeartbeat({
          id: 'fake-rep',
          model: 'cli-m',
          modelVersion: '2',
          device: 'cpu',
          state: 'ready',
          queueDepth: 0,
          activeSequences: 0,
          maxBatchSize: 8,
          maxQueue: 64,
          freeTokenBudget: 4096,
          tokenBudget: 4096,
          progress: progress++,
          busySince: null,
          sentAt: Date.now(),
          intervalMs: FAKE_HEARTBEAT_MS,
        }),
      );
    beat();
    const timer = setInterval(beat, FAKE_HEARTBEAT_MS);
    try {
      const byReplica = await models('rm', 'cli-m@2');
      assert.equal(byReplica.code, 1);
      assert.match(byReplica.stderr, /cli-m@2 is served by running replica fake-rep/);
      // Move the alias off 1: nothing uses 1 any more (the replica serves 2).
      assert.equal((await models('alias', 'cli-m', 'stable', '2', '--by', 'tester@ci')).code, 0);
      const removed = await models('rm', 'cli-m@1', '--json');
      assert.equal(removed.code, 0, removed.stderr);
      assert.equal((JSON.parse(removed.stdout) as { removed: { version: string } }).removed.version, '1');
    } finally {
      clearInterval(timer);
    }
    const listed = json<{ versions: Array<{ version: string; aliases: string[] }> }>(
      await models('list', 'cli-m', '--json'),
    );
    assert.deepEqual(listed.versions, [{ ...listed.versions[0], version: '2', aliases: ['stable'] }]);
  });

  it('usage errors exit 2 and say what is wrong', async () => {
    const unknown = await models('frobnicate');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown action 'frobnicate'; the actions are push, list, show, rm, alias/);
    const badRef = await models('show', 'cli-m');
    assert.equal(badRef.code, 2);
    assert.match(badRef.stderr, /'cli-m' names no version or alias/);
    const missing = await models('alias', 'cli-m', 'stable');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /usage: switchyard models alias <id> <alias> <version>/);
  });
});
