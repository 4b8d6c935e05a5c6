import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nkeys, type NatsConnection, type Status } from '@nats-io/nats-core';
import {
  CONNECTION_ENV,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_PING_OUT,
  DEFAULT_PING_INTERVAL_MS,
  compileConnectionOptions,
  connectNats,
  redactUrl,
  type ConnectionOptions,
} from '../../src/cluster/connection.ts';
import { StartupError, UnauthorizedError, UnavailableError } from '../../src/errors/errors.ts';
import { NatsServer, freePort } from '../helpers/nats-server.ts';

/** nats.js' own connect timeout, which connectTimeoutMs must override. */
const NATS_JS_CONNECT_TIMEOUT_MS = 20_000;

/** Asserts that `promise` rejects with an instance of `type` whose message matches every pattern. */
async function rejectsWith(
  promise: Promise<unknown>,
  type: new (...args: never[]) => Error,
  ...patterns: RegExp[]
) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

/** Resolves with the first status of `type`, or rejects after `ms`. */
async function nextStatus(nc: NatsConnection, type: Status['type'], ms: number): Promise<number> {
  const started = Date.now();
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`no '${type}' status within ${ms} ms`)), ms).unref(),
  );
  const seen = (async () => {
    for await (const s of nc.status()) if (s.type === type) return Date.now() - started;
    throw new Error('status iterator ended');
  })();
  return Promise.race([seen, timeout]);
}

async function roundTrip(nc: NatsConnection, subject: string): Promise<void> {
  const sub = nc.subscribe(subject, { max: 1 });
  nc.publish(subject, 'ping');
  for await (const m of sub) assert.equal(m.string(), 'ping');
}

describe('compileConnectionOptions', () => {
  it('fills deliberate defaults', () => {
    const c = compileConnectionOptions();
    assert.deepEqual(c.servers, ['nats://127.0.0.1:4222']);
    assert.equal(c.pingIntervalMs, DEFAULT_PING_INTERVAL_MS);
    assert.equal(c.maxPingOut, DEFAULT_MAX_PING_OUT);
    assert.equal(c.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS);
    assert.equal(c.maxReconnectAttempts, -1);
    assert.deepEqual(c.auth, { kind: 'none' });
    assert.deepEqual(compileConnectionOptions({ servers: 'a:1, nats://b:2' }).servers, ['a:1', 'nats://b:2']);
  });

  const contradictions: [ConnectionOptions, RegExp][] = [
    [{ token: 't', user: 'u', pass: 'p' }, /user\/pass and token contradict each other/],
    [{ credsFile: '/x', nkeySeedFile: '/y' }, /nkeySeedFile and credsFile contradict/],
    [{ user: 'u' }, /user is set without pass \(SWITCHYARD_NATS_PASSWORD\)/],
    [{ pass: 'p' }, /pass is set without user/],
    [{ tlsCertFile: '/c' }, /tlsCertFile is set without tlsKeyFile/],
    [{ pingIntervalMs: 0 }, /pingIntervalMs must be an integer >= 1, got 0/],
    [{ maxReconnectAttempts: -2 }, /maxReconnectAttempts must be an integer >= -1/],
    [{ servers: [] }, /servers must name at least one server \(SWITCHYARD_NATS_URL\)/],
    [{ servers: 'http://u:secret@h:1' }, /servers: 'http:\/\/\*\*\*@h:1' must be nats:\/\//],
  ];
  for (const [opts, message] of contradictions) {
    it(`rejects ${JSON.stringify(opts)}`, () => {
      assert.throws(
        () => compileConnectionOptions(opts),
        (err: unknown) => err instanceof StartupError && err.reason === 'config' && message.test(err.message),
      );
    });
  }

  it('redacts credentials in server URLs', () => {
    assert.equal(redactUrl('nats://u:pw@h:4222'), 'nats://***@h:4222');
    assert.equal(redactUrl('tok@h:4222'), '***@h:4222');
    assert.equal(redactUrl('nats://h:4222'), 'nats://h:4222');
  });
});

describe('connectNats against a real nats-server', () => {
  let plain: NatsServer;
  let secured: NatsServer;
  before(async () => {
    plain = await NatsServer.start();
    secured = await NatsServer.start({ users: [{ user: 'alice', password: 's3cret' }] });
  });
  after(async () => {
    await plain.stop();
    await secured.stop();
  });

  it('connects to an open server', async () => {
    const nc = await connectNats({ servers: plain.url, name: 'test-plain' });
    await roundTrip(nc, 'test.plain');
    await nc.close();
  });

  it('connects with the right user and password', async () => {
    const nc = await connectNats({ servers: secured.url, user: 'alice', pass: 's3cret' });
    await roundTrip(nc, 'test.secured');
    await nc.close();
  });

  it('says that credentials are needed when none were given', async () => {
    await rejectsWith(
      connectNats({ servers: secured.url }),
      UnauthorizedError,
      /refused the connection/,
      /requires credentials and none were given/,
      new RegExp(`${CONNECTION_ENV.user}.*${CONNECTION_ENV.pass}`),
    );
  });

  it('says that the credentials were refused, without echoing the password', async () => {
    await assert.rejects(
      connectNats({ servers: secured.url, user: 'alice', pass: 'wrong-pw' }),
      (err: unknown) => {
        assert.ok(err instanceof UnauthorizedError);
        assert.equal(err.code, 'unauthorized');
        assert.match(err.message, /refused the credentials of user 'alice'/);
        assert.match(err.message, /SWITCHYARD_NATS_PASSWORD/);
        assert.doesNotMatch(err.message, /wrong-pw/);
        return true;
      },
    );
  });

  it('authenticates with an nkey seed file, and names an unreadable one', async () => {
    const user = nkeys.createUser();
    const server = await NatsServer.start({
      extraConfig: `authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }`,
    });
    try {
      const seedFile = join(server.dir, 'user.nk');
      writeFileSync(seedFile, `${new TextDecoder().decode(user.getSeed())}\n`);
      const nc = await connectNats({ servers: server.url, nkeySeedFile: seedFile });
      await roundTrip(nc, 'test.nkey');
      await nc.close();
      await rejectsWith(
        connectNats({ servers: server.url, nkeySeedFile: join(server.dir, 'missing.nk') }),
        StartupError,
        /nkeySeedFile \(SWITCHYARD_NATS_NKEY_SEED_FILE\): cannot read .*missing\.nk/,
      );
      const other = join(server.dir, 'other.nk');
      writeFileSync(other, new TextDecoder().decode(nkeys.createUser().getSeed()));
      await rejectsWith(
        connectNats({ servers: server.url, nkeySeedFile: other }),
        UnauthorizedError,
        /refused the nkey/,
      );
    } finally {
      await server.stop();
    }
  });

  it('reports an unreachable server as unavailable, naming it', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    await rejectsWith(
      connectNats({ servers: url }),
      UnavailableError,
      new RegExp(`cannot connect to NATS at ${url}`),
    );
  });

  it('reconnects after the server restarts, keeping subscriptions', async () => {
    const server = await NatsServer.start();
    try {
      const nc = await connectNats({ servers: server.url });
      const disconnected = nextStatus(nc, 'disconnect', 5_000);
      const reconnected = nextStatus(nc, 'reconnect', 10_000);
      await server.restart(500);
      await disconnected;
      await reconnected;
      await roundTrip(nc, 'test.after.restart');
      await nc.close();
    } finally {
      await server.stop();
    }
  });

  it('notices a frozen server within pingInterval × maxPingOut and recovers when it thaws', async () => {
    const server = await NatsServer.start();
    try {
      const nc = await connectNats({ servers: server.url, pingIntervalMs: 250, maxPingOut: 2 });
      const stale = nextStatus(nc, 'staleConnection', 20_000);
      server.signal('SIGSTOP');
      const ms = await stale;
      // Sooner than the defaults (2 s × 2) would notice: the options took effect.
      assert.ok(ms < DEFAULT_PING_INTERVAL_MS * DEFAULT_MAX_PING_OUT, `stale after ${ms} ms`);
      const reconnected = nextStatus(nc, 'reconnect', 10_000);
      server.signal('SIGCONT');
      await reconnected;
      await roundTrip(nc, 'test.after.thaw');
      await nc.close();
    } finally {
      await server.stop();
    }
  });

  it('gives up on a frozen server after connectTimeoutMs, not 20 s', async () => {
    const server = await NatsServer.start();
    try {
      server.signal('SIGSTOP');
      const started = Date.now();
      await rejectsWith(
        connectNats({ servers: server.url, connectTimeoutMs: 300 }),
        UnavailableError,
        /cannot connect/,
      );
      // Half nats.js' own 20 s connect timeout: generous, and still fails if ours was ignored.
      assert.ok(Date.now() - started < NATS_JS_CONNECT_TIMEOUT_MS / 2, `took ${Date.now() - started} ms`);
    } finally {
      server.signal('SIGCONT');
      await server.stop();
    }
  });
});
