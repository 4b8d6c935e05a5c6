import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CONNECTION_ENV } from '../../src/cluster/connection.ts';
import {
  resolveReplicaConfig,
  resolveRouterConfig,
  resolveUpConfig,
  ALL_TABLES,
} from '../../src/config/actors.ts';
import { EXAMPLE_CONFIG_YAML } from '../../src/config/docs.ts';
import type { NvidiaSmi } from '../../src/config/gpus.ts';
import { BUNDLED_MODEL_DIR } from '../../src/config/paths.ts';
import { unknownEnvironment, type ResolveInput } from '../../src/config/resolve.ts';
import { StartupError } from '../../src/errors/errors.ts';
import { rejectsConfig, scratchFiles } from '../helpers/config.ts';

const { dir, file } = scratchFiles('sy-config-test-');

function replica(input: Partial<ResolveInput>) {
  const r = resolveReplicaConfig({ argv: [], env: {}, cwd: dir, ...input });
  assert.equal(r.help, false);
  return r;
}

const rejects = rejectsConfig;

describe('defaults', () => {
  it('fill every replica option, with the bundled model', () => {
    const { settings, sources } = replica({});
    assert.equal(settings.engine.modelDir, BUNDLED_MODEL_DIR);
    assert.equal(settings.engine.device, 'cpu');
    assert.equal(settings.engine.maxBatchSize, 32);
    assert.equal(
      settings.engine.intraOpThreads,
      undefined,
      'threads default to the cores, decided by the engine',
    );
    assert.equal(settings.allowFaultInjection, false);
    assert.equal(settings.warmup, true);
    assert.equal(settings.logLevel, 'info');
    assert.deepEqual(settings.nats, {});
    assert.deepEqual(sources.get('engine.maxBatchSize'), { kind: 'default' });
  });

  it('match the routers own compiled defaults', async () => {
    const { compileRouterOptions } = await import('../../src/router/options.ts');
    const r = resolveRouterConfig({ argv: ['--id', 'r1'], env: {} });
    assert.equal(r.help, false);
    const { logLevel: _, ...options } = r.settings;
    assert.deepEqual(compileRouterOptions(options), compileRouterOptions({ id: 'r1' }));
  });

  it('match the replicas own compiled defaults', async () => {
    const { compileReplicaOptions } = await import('../../src/replica/options.ts');
    const { logLevel: _, ...options } = replica({ argv: ['--id', 'x1'] }).settings;
    const bare = compileReplicaOptions({ id: 'x1', engine: { modelDir: BUNDLED_MODEL_DIR } });
    const ours = compileReplicaOptions(options);
    assert.deepEqual({ ...ours, engine: {} }, { ...bare, engine: {} });
    assert.equal(ours.engine.maxQueue, 64);
  });
});

describe('precedence: flags > environment > file > defaults', () => {
  for (const [ext, text] of [
    ['yaml', 'replica:\n  engine:\n    maxBatchSize: 8\n    maxQueue: 3\n'],
    ['json', '{"replica": {"engine": {"maxBatchSize": 8, "maxQueue": 3}}}'],
  ] as const) {
    it(`with a ${ext} file`, () => {
      const config = file(ext, text);
      const env = { SWITCHYARD_REPLICA_MAX_BATCH_SIZE: '16' };
      const all = replica({ argv: ['--config', config, '--max-batch-size', '24'], env });
      assert.equal(all.settings.engine.maxBatchSize, 24);
      assert.equal(all.settings.engine.maxQueue, 3, 'the file still gives what flags and env leave alone');
      assert.deepEqual(all.sources.get('engine.maxBatchSize'), { kind: 'flag', name: 'max-batch-size' });
      assert.equal(replica({ argv: ['--config', config], env }).settings.engine.maxBatchSize, 16);
      const fromFile = replica({ argv: [`--config=${config}`] });
      assert.equal(fromFile.settings.engine.maxBatchSize, 8);
      assert.equal(fromFile.configFile, config);
      assert.equal(replica({ env: { SWITCHYARD_CONFIG: config } }).settings.engine.maxBatchSize, 8);
      assert.equal(replica({}).settings.engine.maxBatchSize, 32);
    });
  }

  it('the last of a repeated flag wins; list flags collect', () => {
    assert.equal(replica({ argv: ['--threads', '2', '--threads=3'] }).settings.engine.intraOpThreads, 3);
    const servers = replica({ argv: ['--nats', 'a:4222', '--nats', 'b:4222, c:4222'] }).settings.nats.servers;
    assert.deepEqual(servers, ['a:4222', 'b:4222', 'c:4222']);
  });

  it('an empty environment variable counts as unset', () => {
    assert.equal(replica({ env: { SWITCHYARD_REPLICA_DEVICE: '' } }).settings.engine.device, 'cpu');
  });
});

describe('value types', () => {
  it('maps the NATS connection onto ConnectionOptions with the CONNECTION_ENV names', () => {
    const config = file(
      'yaml',
      'nats:\n  servers: [nats://n1:4222, nats://n2:4222]\n  credsFile: keys/app.creds\n',
    );
    const env = { [CONNECTION_ENV.user]: 'alice', [CONNECTION_ENV.pass]: 's3cret' };
    const { nats } = replica({ argv: ['--config', config, '--nats-tls-ca-file', 'ca.pem'], env }).settings;
    assert.deepEqual(nats, {
      servers: ['nats://n1:4222', 'nats://n2:4222'],
      credsFile: join(dir, 'keys', 'app.creds'), // relative to the file
      user: 'alice',
      pass: 's3cret',
      tlsCaFile: join(dir, 'ca.pem'), // relative to the working directory
    });
  });

  it('durations take units; booleans take words', () => {
    const config = file('yaml', 'replica:\n  drainGraceMs: 15s\n  orphanTimeoutMs: 900\n  warmup: false\n');
    const s = replica({
      argv: ['--config', config, '--heartbeat-interval-ms', '1m', '--allow-fault-injection'],
    }).settings;
    assert.equal(s.drainGraceMs, 15_000);
    assert.equal(s.orphanTimeoutMs, 900);
    assert.equal(s.heartbeatIntervalMs, 60_000);
    assert.equal(s.warmup, false);
    assert.equal(s.allowFaultInjection, true);
    assert.equal(
      replica({ env: { SWITCHYARD_ALLOW_FAULT_INJECTION: '1' } }).settings.allowFaultInjection,
      true,
    );
    assert.equal(replica({ argv: ['--allow-fault-injection=false'] }).settings.allowFaultInjection, false);
  });

  it('the example config file in the docs resolves for every subcommand', () => {
    const config = file('yaml', EXAMPLE_CONFIG_YAML);
    const r = replica({ argv: ['--config', config] });
    assert.equal(r.settings.engine.maxBatchSize, 16);
    assert.equal(r.settings.nats.user, 'switchyard');
    const router = resolveRouterConfig({ argv: ['--config', config], env: {} });
    assert.ok(!router.help && router.settings.strategy === 'least-loaded');
  });
});

describe('bad input names its source', () => {
  it('unknown flags, stray arguments, missing values', () => {
    rejects(
      () => replica({ argv: ['--max-batch-siz', '3'] }),
      /--max-batch-siz\b/,
      /did you mean --max-batch-size\?/,
    );
    rejects(() => replica({ argv: ['models/x'] }), /unexpected argument 'models\/x'/);
    rejects(() => replica({ argv: ['--threads'] }), /--threads needs a value/);
  });

  it('wrong types in flags and the environment', () => {
    rejects(
      () => resolveUpConfig({ argv: ['--replicas', 'abc'], env: {} }),
      /^--replicas: expected an integer >= 1, got 'abc'$/,
    );
    rejects(() => replica({ argv: ['--max-queue', '-1'] }), /--max-queue: expected an integer >= 0/);
    rejects(() => replica({ argv: ['--drain-grace-ms', 'soon'] }), /--drain-grace-ms: expected a duration/);
    rejects(() => replica({ argv: ['--device', 'gpu0'] }), /--device: expected cpu, cuda:N or webgpu\[:N\]/);
    rejects(() => replica({ argv: ['--id', 'a.b'] }), /--id: expected \[A-Za-z0-9_-\]/);
    rejects(
      () => replica({ env: { SWITCHYARD_ALLOW_FAULT_INJECTION: 'maybe' } }),
      /environment variable SWITCHYARD_ALLOW_FAULT_INJECTION: expected true or false/,
    );
    rejects(
      () => resolveRouterConfig({ argv: ['--strategy', 'fastest'], env: {} }),
      /--strategy: expected one of power-of-two, least-loaded, round-robin, got 'fastest'/,
    );
    rejects(() => replica({ argv: ['--log-level', 'loud'] }), /--log-level: expected one of fatal/);
  });

  it('unknown keys and wrong types in the config file', () => {
    const typo = file('yaml', 'replica:\n  engine:\n    maxBatchSiz: 3\n');
    rejects(
      () => replica({ argv: ['--config', typo] }),
      new RegExp(typo),
      /unknown key 'replica.engine.maxBatchSiz'/,
      /did you mean 'replica.engine.maxBatchSize'/,
    );
    const section = file('json', '{"replicas": {}}');
    rejects(() => replica({ argv: ['--config', section] }), /unknown key 'replicas'/);
    // A typo in another subcommand's section fails this one too.
    const other = file('yaml', 'router:\n  stratgy: round-robin\n');
    rejects(() => replica({ argv: ['--config', other] }), /unknown key 'router.stratgy'/);
    const wrong = file('json', '{"up": {"replicas": "two"}}');
    rejects(
      () => resolveUpConfig({ argv: ['--config', wrong], env: {} }),
      new RegExp(`up.replicas in ${wrong}: expected an integer >= 1, got 'two'`),
    );
    const quoted = file('json', '{"replica": {"engine": {"maxBatchSize": "4"}}}');
    rejects(
      () => replica({ argv: ['--config', quoted] }),
      /replica.engine.maxBatchSize in .*expected an integer/,
    );
    const notMapping = file('yaml', 'replica: 5\n');
    rejects(() => replica({ argv: ['--config', notMapping] }), /replica must be a mapping/);
    const list = file('yaml', '- a\n- b\n');
    rejects(() => replica({ argv: ['--config', list] }), /must be a mapping of sections/);
  });

  it('files that cannot be read or parsed', () => {
    rejects(
      () => replica({ argv: ['--config', join(dir, 'missing.yaml')] }),
      /missing\.yaml: cannot be read: does not exist/,
    );
    const yaml = file('yaml', 'replica:\n  engine: [\n');
    rejects(() => replica({ argv: ['--config', yaml] }), new RegExp(yaml), /is not valid YAML/);
    const json = file('json', '{"replica": ');
    rejects(() => replica({ argv: ['--config', json] }), /is not valid JSON/);
    const toml = file('toml', 'x = 1');
    rejects(() => replica({ argv: ['--config', toml] }), /must end in .json, .yaml or .yml/);
  });

  it('never echoes a credential', () => {
    const config = file('yaml', 'nats:\n  pass: [hunter2]\n');
    rejects(
      () => replica({ argv: ['--config', config] }),
      /nats.pass in .*expected a string, got \(hidden\)/,
    );
  });
});

describe('help', () => {
  it('wins over everything else on the line', () => {
    assert.equal(resolveReplicaConfig({ argv: ['--bogus', '--help'], env: {} }).help, true);
    assert.equal(resolveUpConfig({ argv: ['-h'], env: {} }).help, true);
  });
});

describe('up: --gpus and threads', () => {
  const up = (argv: string[], probe = {}, env = {}) => {
    const r = resolveUpConfig({ argv, env, cwd: dir }, probe);
    assert.equal(r.help, false);
    return r.settings;
  };
  const smi =
    (stdout: string, status = 0): NvidiaSmi =>
    () => ({ pid: 1, output: [], stdout, stderr: '', status, signal: null });

  it('defaults: one replica, one router, CPU, threads = cores / replicas', () => {
    const s = up([], { cores: 8 });
    assert.deepEqual([s.replicas, s.routers, s.gpuIds, s.threads], [1, 1, undefined, 8]);
    assert.equal(s.model, BUNDLED_MODEL_DIR);
    assert.equal(s.nats.servers, undefined, 'no --nats: up starts its own server');
    assert.deepEqual([s.host, s.port], ['127.0.0.1', 8080]);
    assert.equal(up(['--replicas', '3'], { cores: 8 }).threads, 2);
    assert.equal(up(['--replicas', '4'], { cores: 2 }).threads, 1, 'at least one');
    assert.equal(up(['--replicas', '4', '--threads', '3'], { cores: 2 }).threads, 3);
  });

  it('a GPU list gives one replica per GPU', () => {
    const s = up(['--gpus', '1, 3'], { cores: 8 });
    assert.deepEqual(s.gpuIds, [1, 3]);
    assert.equal(s.replicas, 2);
    assert.equal(s.threads, 4);
    assert.deepEqual(up(['--gpus', '0', '--replicas', '1']).gpuIds, [0], 'an agreeing count is fine');
  });

  it("--device names every replica's device, and the provider of the GPUs --gpus lists", () => {
    assert.deepEqual(up(['--replicas', '2']).replicaDevices, ['cpu', 'cpu']);
    assert.deepEqual(up(['--device', 'webgpu']).replicaDevices, ['webgpu:0']);
    assert.deepEqual(up(['--gpus', '1,3']).replicaDevices, ['cuda:1', 'cuda:3'], '--gpus alone is CUDA');
    assert.deepEqual(up(['--gpus', '0', '--device', 'webgpu']).replicaDevices, ['webgpu:0']);
    const missing: NvidiaSmi = () => ({
      ...smi('')(),
      error: Object.assign(new Error('spawnSync nvidia-smi ENOENT'), { code: 'ENOENT' }),
      status: null,
    });
    assert.deepEqual(
      up(['--gpus', 'all', '--device', 'webgpu'], { nvidiaSmi: missing }).replicaDevices,
      ['webgpu:0'],
      'without nvidia-smi, all is the one adapter WebGPU opens',
    );
    rejects(() => up(['--gpus', '0,1', '--device', 'webgpu']), /webgpu:1 cannot be had: .*no adapter index/);
    rejects(() => up(['--device', 'webgpu:2']), /webgpu:2 cannot be had/);
    rejects(() => up(['--gpus', '0', '--device', 'cpu']), /give --device cuda or --device webgpu, not 'cpu'/);
    rejects(() => up(['--device', 'tpu']), /--device: expected cpu, cuda\[:N\] or webgpu\[:N\]/);
  });

  it('all counts GPUs with nvidia-smi', () => {
    const out =
      'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaa)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbb)\n';
    assert.deepEqual(up(['--gpus', 'all'], { nvidiaSmi: smi(out) }).gpuIds, [0, 1]);
    assert.deepEqual(up([], { nvidiaSmi: smi(out) }, { SWITCHYARD_UP_GPUS: 'all' }).gpuIds, [0, 1]);
  });

  it('rejects bad lists and contradictions, and says when nvidia-smi is missing', () => {
    rejects(() => up(['--gpus', 'one']), /--gpus: expected 'all' or a comma-separated list of GPU ordinals/);
    rejects(() => up(['--gpus', '0,0']), /GPU 0 is listed twice/);
    rejects(() => up(['--gpus', '']), /--gpus: expected 'all'/);
    rejects(
      () => up(['--gpus', '0,1', '--replicas', '3']),
      /--replicas \(3\) contradicts --gpus \(2 GPUs: 0,1\)/,
    );
    const missing: NvidiaSmi = () => {
      const err = Object.assign(new Error('spawnSync nvidia-smi ENOENT'), { code: 'ENOENT' });
      return { ...smi('')(), error: err, status: null };
    };
    assert.throws(
      () => up(['--gpus', 'all'], { nvidiaSmi: missing }),
      (err: unknown) => {
        assert.ok(err instanceof StartupError);
        assert.equal(err.reason, 'device_unavailable');
        assert.match(err.message, /nvidia-smi, which is not installed or not on PATH/);
        return true;
      },
    );
    assert.throws(
      () => up(['--gpus', 'all'], { nvidiaSmi: smi('No devices were found\n') }),
      /lists no GPUs/,
    );
    assert.throws(() => up(['--gpus', 'all'], { nvidiaSmi: smi('', 9) }), /nvidia-smi -L failed \(exit 9\)/);
  });
});

describe('unknownEnvironment', () => {
  it('lists SWITCHYARD_* names no table declares', () => {
    const env = {
      SWITCHYARD_REPLICA_MAX_BATCH_SIZE: '1',
      SWITCHYARD_NATS_URL: 'x',
      SWITCHYARD_RPLICA_ID: 'r',
      PATH: '/bin',
    };
    assert.deepEqual(unknownEnvironment(env, ALL_TABLES), ['SWITCHYARD_RPLICA_ID']);
  });
});
