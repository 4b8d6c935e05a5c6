/** The `bridge` option table: defaults from the bridge's own constants, precedence, and messages. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  DEFAULT_CACHE_BUCKET,
  DEFAULT_CACHE_MAX_VALUE_BYTES,
  DEFAULT_CACHE_TTL_MS,
  compileResponseCacheOptions,
} from '../../src/bridge/cache.ts';
import {
  DEFAULT_BRIDGE_HOST,
  DEFAULT_BRIDGE_PORT,
  DEFAULT_MAX_BODY_BYTES,
  compileBridgeOptions,
} from '../../src/bridge/options.ts';
import {
  DEFAULT_RATE_LIMIT_BUCKET,
  DEFAULT_RATE_LIMIT_FAIL_MODE,
  compileRateLimitOptions,
} from '../../src/bridge/rate-limit-options.ts';
import { resolveBridgeConfig, resolveUpConfig } from '../../src/config/actors.ts';
import { EXAMPLE_CONFIG_YAML } from '../../src/config/docs.ts';
import type { ResolveInput } from '../../src/config/resolve.ts';
import { rejectsConfig, scratchFiles } from '../helpers/config.ts';

const { dir, file } = scratchFiles('sy-bridge-config-test-');

function bridge(input: Partial<ResolveInput>) {
  const r = resolveBridgeConfig({ argv: [], env: {}, cwd: dir, ...input });
  assert.equal(r.help, false);
  return r;
}

const rejects = rejectsConfig;

describe('bridge defaults', () => {
  it("are the bridge's named constants", () => {
    const { settings, sources } = bridge({});
    assert.equal(settings.host, DEFAULT_BRIDGE_HOST);
    assert.equal(settings.port, DEFAULT_BRIDGE_PORT);
    assert.equal(settings.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
    assert.equal(settings.keysFile, undefined, 'no keys unless a file is given');
    assert.equal(settings.rateLimit.bucket, DEFAULT_RATE_LIMIT_BUCKET);
    assert.equal(settings.rateLimit.failMode, DEFAULT_RATE_LIMIT_FAIL_MODE);
    assert.deepEqual(settings.cache, {
      enabled: false,
      bucket: DEFAULT_CACHE_BUCKET,
      ttlMs: DEFAULT_CACHE_TTL_MS,
      maxValueBytes: DEFAULT_CACHE_MAX_VALUE_BYTES,
    });
    assert.equal(settings.logLevel, 'info');
    assert.deepEqual(settings.nats, {});
    assert.deepEqual(sources.get('port'), { kind: 'default' });
  });

  it('compile to what the bridge, the limiter and the cache compile by themselves', () => {
    const {
      logLevel: _,
      keysFile: __,
      rateLimit,
      cache,
      ...options
    } = bridge({
      argv: ['--id', 'b1'],
    }).settings;
    assert.deepEqual(compileBridgeOptions(options), compileBridgeOptions({ id: 'b1' }));
    assert.deepEqual(compileRateLimitOptions(rateLimit), compileRateLimitOptions({}));
    assert.deepEqual(compileResponseCacheOptions(cache), compileResponseCacheOptions({}));
  });
});

describe('bridge precedence: flags > environment > file > defaults', () => {
  const config = file(
    'yaml',
    'bridge:\n  port: 9001\n  keysFile: keys/api.yaml\n  rateLimit:\n    failMode: closed\n  cache:\n    ttlMs: 2m\n',
  );

  it('--port', () => {
    const env = { SWITCHYARD_BRIDGE_PORT: '9002' };
    const all = bridge({ argv: ['--config', config, '--port', '9003'], env });
    assert.equal(all.settings.port, 9003);
    assert.deepEqual(all.sources.get('port'), { kind: 'flag', name: 'port' });
    assert.equal(bridge({ argv: ['--config', config], env }).settings.port, 9002);
    const fromFile = bridge({ argv: ['--config', config] });
    assert.equal(fromFile.settings.port, 9001);
    assert.deepEqual(fromFile.sources.get('port'), { kind: 'file', path: config, key: 'bridge.port' });
    assert.equal(bridge({}).settings.port, DEFAULT_BRIDGE_PORT);
  });

  it('--rate-limit-fail-mode, a nested file key', () => {
    const env = { SWITCHYARD_BRIDGE_RATE_LIMIT_FAIL_MODE: 'open' };
    const flag = bridge({ argv: ['--config', config, '--rate-limit-fail-mode', 'closed'], env });
    assert.equal(flag.settings.rateLimit.failMode, 'closed');
    assert.equal(bridge({ argv: ['--config', config], env }).settings.rateLimit.failMode, 'open');
    const fromFile = bridge({ argv: ['--config', config] });
    assert.equal(fromFile.settings.rateLimit.failMode, 'closed');
    assert.deepEqual(fromFile.sources.get('rateLimit.failMode'), {
      kind: 'file',
      path: config,
      key: 'bridge.rateLimit.failMode',
    });
    assert.equal(bridge({}).settings.rateLimit.failMode, 'open');
  });

  it('the file gives durations with units and paths beside it', () => {
    const { settings } = bridge({ argv: ['--config', config] });
    assert.equal(settings.cache.ttlMs, 120_000);
    assert.equal(settings.keysFile, join(dir, 'keys', 'api.yaml'));
    assert.equal(bridge({ argv: ['--keys-file', 'k.json'] }).settings.keysFile, join(dir, 'k.json'));
    assert.equal(
      bridge({ env: { SWITCHYARD_KEYS_FILE: '/etc/sy/keys.yaml' } }).settings.keysFile,
      '/etc/sy/keys.yaml',
    );
    assert.equal(bridge({ argv: ['--cache'] }).settings.cache.enabled, true);
  });

  it('the example config file in the docs resolves', () => {
    const example = file('yaml', EXAMPLE_CONFIG_YAML);
    const { settings } = bridge({ argv: ['--config', example] });
    assert.equal(settings.cache.enabled, true);
    assert.equal(settings.rateLimit.failMode, 'closed');
    assert.equal(settings.nats.user, 'switchyard');
  });
});

describe('bad bridge input names its source', () => {
  it('a bad --rate-limit-fail-mode names the flag, the variable or the file key', () => {
    rejects(
      () => bridge({ argv: ['--rate-limit-fail-mode', 'half'] }),
      /^--rate-limit-fail-mode: expected one of open, closed, got 'half'$/,
    );
    rejects(
      () => bridge({ env: { SWITCHYARD_BRIDGE_RATE_LIMIT_FAIL_MODE: 'ajar' } }),
      /environment variable SWITCHYARD_BRIDGE_RATE_LIMIT_FAIL_MODE: expected one of open, closed/,
    );
    const typo = file('json', '{"bridge": {"rateLimit": {"failMode": "shut"}}}');
    rejects(
      () => bridge({ argv: ['--config', typo] }),
      /bridge\.rateLimit\.failMode in .*: expected one of open, closed, got 'shut'/,
    );
  });

  it('bad ports, buckets and TTLs', () => {
    rejects(() => bridge({ argv: ['--port', '70000'] }), /--port: expected an integer between 0 and 65535/);
    rejects(() => bridge({ argv: ['--cache-bucket', 'a.b'] }), /--cache-bucket: expected a bucket name/);
    rejects(
      () => bridge({ argv: ['--rate-limit-ttl-ms', '60s'] }),
      /--rate-limit-ttl-ms: expected a duration in milliseconds >= 60001/,
    );
    const key = file('yaml', 'bridge:\n  cache:\n    enable: true\n');
    rejects(() => bridge({ argv: ['--config', key] }), /unknown key 'bridge.cache.enable'/);
  });

  it('a headers timeout above the request timeout names both and their sources', () => {
    rejects(
      () => bridge({ argv: ['--headers-timeout-ms', '40s'] }),
      /^--headers-timeout-ms \(40000\) must not exceed --request-timeout-ms \(30000, the default\)$/,
    );
  });
});

describe('up hands the bridge its settings', () => {
  it('--host, --port, --keys-file and --cache', () => {
    const r = resolveUpConfig({
      argv: ['--port', '0', '--keys-file', 'keys.yaml', '--cache'],
      env: {},
      cwd: dir,
    });
    assert.equal(r.help, false);
    assert.equal(r.settings.host, DEFAULT_BRIDGE_HOST);
    assert.equal(r.settings.port, 0);
    assert.equal(r.settings.keysFile, join(dir, 'keys.yaml'));
    assert.equal(r.settings.cache, true);
    const plain = resolveUpConfig({ argv: [], env: {} }, { cores: 2 });
    assert.ok(!plain.help && plain.settings.keysFile === undefined && !plain.settings.cache);
  });
});
