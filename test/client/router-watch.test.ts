/**
 * The client's router watch on a real nats-server: only heartbeats whose body names the router
 * their subject names count, as a sign of life or as `stopped`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { RouterWatch } from '../../src/client/router-watch.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { encodeRouterHeartbeat, type RouterHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { routerHeartbeatSubject } from '../../src/cluster/subjects.ts';
import type { SwitchyardError } from '../../src/errors/errors.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { sleep } from './fake-router.ts';

const SILENCE_MS = 200;
const BEAT_MS = 40;

let server: NatsServer;
let clientNc: NatsConnection;
let peerNc: NatsConnection;

before(async () => {
  server = await NatsServer.start();
  clientNc = await connectNats({ servers: server.url, name: 'watching-client' });
  peerNc = await connectNats({ servers: server.url, name: 'peers' });
});
after(async () => {
  await clientNc.close();
  await peerNc.close();
  await server.stop();
});

function publish(subjectId: string, bodyId: string, state: RouterHeartbeat['state'] = 'ready'): void {
  peerNc.publish(
    routerHeartbeatSubject(subjectId),
    encodeRouterHeartbeat({ id: bodyId, state, inFlight: 1, sentAt: Date.now(), intervalMs: BEAT_MS }),
  );
}

/** Publishes a beat every BEAT_MS for `ms`. */
async function beatFor(ms: number, subjectId: string, bodyId: string): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    publish(subjectId, bodyId);
    await sleep(BEAT_MS);
  }
  await peerNc.flush();
}

describe('RouterWatch', () => {
  it('a router kept "alive" only by heartbeats whose body names another id is presumed gone', async () => {
    const watch = new RouterWatch(clientNc, SILENCE_MS);
    const gone: SwitchyardError[] = [];
    await clientNc.flush();
    watch.watch('rt-forged', (reason) => gone.push(reason));
    await clientNc.flush(); // the subscription is in place
    await beatFor(3 * SILENCE_MS, 'rt-forged', 'someone-else');
    watch.close();
    assert.equal(gone.length, 1);
    assert.match(gone[0]!.message, /router rt-forged went silent/);
  });

  it('genuine beats keep it; a forged `stopped` does not fail it over, a genuine one does', async () => {
    const watch = new RouterWatch(clientNc, SILENCE_MS);
    const gone: SwitchyardError[] = [];
    watch.watch('rt-real', (reason) => gone.push(reason));
    await clientNc.flush();
    publish('rt-real', 'rt-other', 'stopped');
    await beatFor(3 * SILENCE_MS, 'rt-real', 'rt-real');
    assert.equal(gone.length, 0, 'alive through its own beats; the forged stop was ignored');
    publish('rt-real', 'rt-real', 'stopped');
    await peerNc.flush();
    await clientNc.flush();
    await sleep(BEAT_MS);
    watch.close();
    assert.equal(gone.length, 1);
    assert.match(gone[0]!.message, /router rt-real stopped/);
  });
});
