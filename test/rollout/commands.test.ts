/**
 * `switchyard rollout` against a real nats-server with JetStream (no replicas, no collector:
 * the commands only write and read the record): what start refuses and why, one active rollout
 * per model, abort's weight 0 before any collector acts, status, and policy files that are
 * wrong in a way the message names.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { SWITCHYARD_BIN } from '../../chaos/paths.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { Registry } from '../../src/registry/registry.ts';
import { DEFAULT_POLICY, parseSteps, readPolicy } from '../../src/rollout/policy.ts';
import { RolloutStore } from '../../src/rollout/store.ts';
import { TINY_MODEL, TINY_MODEL_V2 } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const run = promisify(execFile);
const MODEL = 'tiny-gpt2';

describe('rollout policies and steps', () => {
  it('reads a policy, fills pacing defaults, and names what is wrong', () => {
    const p = readPolicy('policy', { checks: { ttft: { margin: 0.5 } } });
    assert.deepEqual(p.checks.ttft, { margin: 0.5, min_samples: 30, confidence: 0.99 });
    assert.equal(p.max_looks, DEFAULT_POLICY.max_looks);
    assert.throws(() => readPolicy('policy', { checks: {} }), /names no check/);
    assert.throws(() => readPolicy('policy', { checks: { speed: { margin: 1 } } }), /checks key/);
    assert.throws(
      () => readPolicy('policy', { checks: { ttft: { margin: 1, require_better: true } } }),
      /rating and thumbs_up only/,
    );
    assert.throws(() => readPolicy('policy', { checks: { rating: { margin: 2 } } }), /margin/);
    assert.throws(
      () => readPolicy('policy', { checks: { rating: { margin: 0.1, confidence: 0.5 } } }),
      /confidence/,
    );
    assert.throws(
      () => readPolicy('policy', { checks: { rating: { margin: 0.1 } }, extra: 1 }),
      /unknown field 'extra'/,
    );
  });

  it('parses steps: ascending weights, 100 appended', () => {
    assert.deepEqual(parseSteps('10,25,50'), [10, 25, 50, 100]);
    assert.deepEqual(parseSteps('5, 100'), [5, 100]);
    assert.deepEqual(parseSteps('0.5,1'), [0.5, 1, 100]);
    assert.throws(() => parseSteps('25,10'), /rise strictly/);
    assert.throws(() => parseSteps('0,50'), /not a weight/);
    assert.throws(() => parseSteps('120'), /not a weight/);
    assert.throws(() => parseSteps('1.234'), /two decimals/);
  });
});

describe('switchyard rollout', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let registry: Registry;
  const dir = mkdtempSync(join(tmpdir(), 'sy-rollout-cli-'));
  const cli = (...args: string[]): Promise<{ stdout: string; stderr: string }> =>
    run(process.execPath, [SWITCHYARD_BIN, 'rollout', ...args, '--nats', server.url], { timeout: 60_000 });
  const fails = async (args: string[], message: RegExp, code = 1): Promise<void> => {
    await assert.rejects(cli(...args), (err: { code?: number; stderr?: string }) => {
      assert.equal(err.code, code, err.stderr);
      assert.match(err.stderr ?? '', message);
      return true;
    });
  };

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
    registry = await Registry.open(nc, { create: true });
    await registry.push(TINY_MODEL, { version: '1' });
    await registry.push(TINY_MODEL_V2, { version: '2' });
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a start it cannot judge: no alias, an unknown version, the version served already', async () => {
    await fails(['start', MODEL, '2'], /has no alias 'stable'/);
    await registry.alias(MODEL, 'stable', '1', { by: 'test' });
    await fails(['start', MODEL, '9'], /tiny-gpt2@9 is not in the registry/);
    await fails(['start', MODEL, '1'], /is what 'stable' serves already/);
    await fails(['status', MODEL], /no rollout (of tiny-gpt2 )?was ever started/);
  });

  it('starts one rollout per model, aborts it with weight 0 at once, and says where it is', async () => {
    const started = await cli('start', MODEL, '2', '--steps', '20,60', '--canary-replicas', '1');
    assert.match(started.stdout, /started: tiny-gpt2 1 → 2, steps 20,60,100/);
    await fails(['start', MODEL, '2'], /promote or abort it first/);
    const status = JSON.parse((await cli('status', MODEL, '--json')).stdout) as {
      state: string;
      weight: number;
    };
    assert.deepEqual([status.state, status.weight], ['starting', 0]);
    assert.match((await cli('status')).stdout, /tiny-gpt2: rollout tiny-gpt2@2-[0-9a-f]{8} is starting/);
    await cli('abort', MODEL, '--reason', 'test');
    const store = await RolloutStore.open(nc, { create: false });
    const record = (await store.get(MODEL))!.record;
    assert.deepEqual([record.state, record.weight], ['aborting', 0]);
    assert.equal(record.decisions.at(-1)?.action, 'abort');
    assert.match(record.reason, /aborted by .*: test/);
    await fails(['promote', MODEL], /is aborting: a collector is carrying that out/);
  });

  it('names what is wrong in a policy file, before it connects', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'checks:\n  ttft: { margin: -1 }\n');
    await fails(['start', MODEL, '2', '--policy', file], /policy file .*bad\.yaml: .*margin/, 2);
    await fails(['start', MODEL, '2', '--steps', '50,10'], /rise strictly/, 2);
    await fails(
      ['start', MODEL, '2', '--policy', join(dir, 'missing.yaml')],
      /cannot read the policy file/,
      2,
    );
  });
});
