/** Bridge options: defaults, and contradictions refused with the option's name. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_BRIDGE_HOST,
  DEFAULT_BRIDGE_PORT,
  DEFAULT_MAX_BODY_BYTES,
  compileBridgeOptions,
} from '../../src/bridge/options.ts';
import { acceptedHostNames, hostNameOf } from '../../src/bridge/host-check.ts';
import { StartupError } from '../../src/errors/errors.ts';

describe('compileBridgeOptions', () => {
  it('fills the defaults: loopback, 8080, 1 MiB bodies, no policies', () => {
    const o = compileBridgeOptions();
    assert.equal(o.host, DEFAULT_BRIDGE_HOST);
    assert.equal(o.host, '127.0.0.1');
    assert.equal(o.port, DEFAULT_BRIDGE_PORT);
    assert.equal(o.port, 8080);
    assert.equal(o.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
    assert.deepEqual(o.policies, {});
    assert.match(o.id, /^bridge-/);
  });

  it('refuses bad values naming the option', () => {
    const refused = (opts: Parameters<typeof compileBridgeOptions>[0], message: RegExp): void =>
      assert.throws(
        () => compileBridgeOptions(opts),
        (e: unknown) => e instanceof StartupError && message.test(e.message),
      );
    refused({ port: 70_000 }, /bridge port must be an integer from 0 to 65535/);
    refused({ maxBodyBytes: 0 }, /maxBodyBytes must be an integer >= 1/);
    refused(
      { headersTimeoutMs: 5_000, requestTimeoutMs: 1_000 },
      /headersTimeoutMs \(5000\) must not exceed requestTimeoutMs/,
    );
    refused({ id: 'a.b' }, /bridge id must match/);
    refused({ host: '0.0.0.0' }, /0\.0\.0\.0, which is not loopback: give allowedHosts \(--allowed-hosts\)/);
    refused({ host: '0.0.0.0', allowedHosts: ['a b'] }, /allowedHosts: 'a b' is not a host name/);
  });

  it('answers loopback names on a loopback bind, and only the allowed names elsewhere', () => {
    const names = (host: string, allowed: string[]): string[] | undefined => {
      const set = acceptedHostNames(compileBridgeOptions({ host, allowedHosts: allowed }).host, allowed);
      return set === undefined ? undefined : [...set].sort();
    };
    assert.deepEqual(names('127.0.0.1', []), ['127.0.0.1', '[::1]', 'localhost']);
    assert.deepEqual(names('::1', ['api.example:443']), ['127.0.0.1', '[::1]', 'api.example', 'localhost']);
    assert.deepEqual(names('0.0.0.0', ['switchyard-bridge', 'switchyard-bridge.ml.svc']), [
      'switchyard-bridge',
      'switchyard-bridge.ml.svc',
    ]);
    assert.equal(names('0.0.0.0', ['*']), undefined);
    assert.equal(hostNameOf('API.Example:8080'), 'api.example');
    assert.equal(hostNameOf('[::1]:8080'), '[::1]');
  });
});
