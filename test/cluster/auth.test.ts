/**
 * A nats-server with authentication: actors with credentials join and serve; an actor without
 * them is refused at start-up with a clear error, and nothing reads traffic without credentials.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import { UnauthorizedError } from '../../src/errors/errors.ts';
import { ActorProcess, killAll } from '../helpers/cluster.ts';
import { request } from '../helpers/front-door.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const CREDENTIALS = { SWITCHYARD_NATS_USER: 'actor', SWITCHYARD_NATS_PASSWORD: 's3cret-pass' };

describe('a cluster on an authenticated nats-server', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let router: ActorProcess;
  let replica: ActorProcess;

  before(async () => {
    server = await NatsServer.start({ users: [{ user: 'actor', password: 's3cret-pass' }] });
    [router, replica] = await Promise.all([
      ActorProcess.start('router', 'rt', server.url, [], CREDENTIALS),
      ActorProcess.start('replica', 'ra', server.url, [], CREDENTIALS),
    ]);
    nc = await connectNats({ servers: server.url, user: 'actor', pass: 's3cret-pass' });
  });

  after(async () => {
    await nc?.close();
    await killAll([router, replica]);
    await server?.stop();
  });

  it('actors with credentials serve requests', async () => {
    const got = await request(nc, {
      model: 'tiny-gpt2',
      prompt: 'authenticated',
      maxTokens: 4,
      temperature: 0,
    });
    assert.equal(got.end?.finishReason, 'length', got.error?.message);
  });

  it('a client without credentials is refused with a clear error', async () => {
    await assert.rejects(connectNats({ servers: server.url }), (err: unknown) => {
      assert.ok(err instanceof UnauthorizedError, String(err));
      assert.match(err.message, /refused|credentials/i);
      return true;
    });
  });

  it('a replica without credentials fails to start with a clear message', async () => {
    await assert.rejects(ActorProcess.start('replica', 'intruder', server.url), (err: unknown) => {
      assert.match(String(err), /unauthorized|refused|credentials/i);
      return true;
    });
  });
});
