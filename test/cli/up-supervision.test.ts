/**
 * `switchyard up` supervises its children, on one real cluster (a local nats-server, a router,
 * a replica, the HTTP bridge): a replica SIGKILLed or SIGTERMed from outside comes back under the
 * same id and serves again; a bridge whose restart fails (its port taken meanwhile) is retried
 * while the rest keeps serving; and a SIGKILLed `up` takes its nats-server and every child with it.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import { after, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { SwitchyardClient } from '../../src/client/client.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { decodeReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject } from '../../src/cluster/subjects.ts';
import { actorPid, childrenOf, killUp, startUp, waitGone, type UpProcess } from './up-process.ts';

/** How long a restart (backoff, process start, model load) may take on a loaded machine. */
const RESTART_TIMEOUT_MS = 60_000;
/** How long the kernel and the reaper may take to remove processes. */
const GONE_TIMEOUT_MS = 30_000;

/** Resolves with the next heartbeat that replica `id` publishes with state `ready`. */
async function nextReadyHeartbeat(nc: NatsConnection, id: string): Promise<string> {
  const sub = nc.subscribe(replicaHeartbeatSubject(id));
  const timer = setTimeout(() => sub.unsubscribe(), RESTART_TIMEOUT_MS);
  try {
    for await (const msg of sub) {
      const hb = decodeReplicaHeartbeat(msg.data);
      if (hb.state === 'ready') return hb.id;
    }
    throw new Error(`no ready heartbeat from ${id} within ${RESTART_TIMEOUT_MS} ms`);
  } finally {
    clearTimeout(timer);
    sub.unsubscribe();
  }
}

/** POSTs a completion until one answers 200 (503 while the router has no live replica yet). */
async function completes(base: string, prompt: string): Promise<void> {
  const deadline = Date.now() + RESTART_TIMEOUT_MS;
  for (;;) {
    const res = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-gpt2', prompt, max_tokens: 4, temperature: 0 }),
    });
    const body = (await res.json()) as { usage?: { completion_tokens: number } };
    if (res.status === 200) {
      assert.equal(body.usage?.completion_tokens, 4);
      return;
    }
    assert.equal(res.status, 503, `only "unavailable" while the replica comes back: ${JSON.stringify(body)}`);
    if (Date.now() > deadline) assert.fail(`no completion within ${RESTART_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Listens on 127.0.0.1:port as soon as the port is free again. */
async function occupy(port: number): Promise<Server> {
  const deadline = Date.now() + GONE_TIMEOUT_MS;
  for (;;) {
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) return server;
    if (Date.now() > deadline) assert.fail(`port ${port} was not freed within ${GONE_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('switchyard up supervision', () => {
  let up: UpProcess | undefined;
  let nc: NatsConnection | undefined;
  /** The credentials up wrote: a SIGKILLed up leaves them behind like its nats-server's dir. */
  let credsDir: string | undefined;
  after(async () => {
    await nc?.close();
    await killUp(up);
  });

  it('restarts children that die under the same id, and dies with everything it started', async () => {
    up = startUp(['--threads', '1', '--port', '0', '--metrics=false']);
    const summary = (await up.waitFor(/switchyard is up[\s\S]*Press Ctrl-C to stop/))[0];
    const url = /NATS\s+(nats:\/\/127\.0\.0\.1:\d+)/.exec(summary)?.[1];
    const http = /HTTP\s+(http:\/\/127\.0\.0\.1:(\d+))\s/.exec(summary);
    const natsLog = /local nats-server, log (\S+)\)/.exec(summary)?.[1];
    const seed = /^\s*client\s+(\S+\.nk)\s/m.exec(summary)?.[1];
    credsDir = seed === undefined ? undefined : dirname(seed);
    assert.ok(url !== undefined && http?.[1] !== undefined && http[2] !== undefined, summary);
    assert.ok(seed !== undefined, `no client credential in:\n${summary}`);
    const [, base, port] = http;
    const upPid = up.child.pid;
    assert.ok(upPid !== undefined);
    nc = await connectNats({ servers: url, nkeySeedFile: seed });

    // SIGKILL from outside: the replica comes back as replica-1 and serves.
    const killed = actorPid(upPid, 'replica-1');
    process.kill(killed, 'SIGKILL');
    await up.waitFor(/up: replica replica-1 exited unexpectedly \(signal SIGKILL\); restart 1 in \d+ ms/);
    const back = await up.waitFor(
      /up: replica replica-1 is back \(restart \d+, pid (\d+)\)/,
      RESTART_TIMEOUT_MS,
    );
    const restartedPid = Number(back[1]);
    assert.notEqual(restartedPid, killed);
    assert.equal(actorPid(upPid, 'replica-1'), restartedPid);
    // Subscribed after the old process was gone: this beat is the new one's.
    assert.equal(await nextReadyHeartbeat(nc, 'replica-1'), 'replica-1');
    await completes(base, 'after a SIGKILL'); // the only replica served it

    // SIGTERM from outside: it drains and exits 0, which up did not ask for either.
    let from = up.output().length;
    process.kill(restartedPid, 'SIGTERM');
    await up.waitFor(
      /up: replica replica-1 exited unexpectedly \(exit 0\); restart \d+ in/,
      RESTART_TIMEOUT_MS,
      from,
    );
    await up.waitFor(/up: replica replica-1 is back \(restart \d+, pid \d+\)/, RESTART_TIMEOUT_MS, from);
    await completes(base, 'after a SIGTERM');

    // A restart that fails: the bridge's port is taken while it is down. up retries it, and
    // the rest of the cluster keeps serving over NATS meanwhile.
    const bridgePid = actorPid(upPid, 'bridge-1');
    from = up.output().length;
    process.kill(bridgePid, 'SIGKILL');
    await waitGone([bridgePid], GONE_TIMEOUT_MS);
    const squatter = await occupy(Number(port));
    try {
      await up.waitFor(
        new RegExp(
          `up: bridge bridge-1 restart \\d+ failed: port ${port} on 127\\.0\\.0\\.1 is already in use.*; restart \\d+ in \\d+ ms`,
        ),
        RESTART_TIMEOUT_MS,
        from,
      );
      const client = await SwitchyardClient.connect({ nats: { servers: url, nkeySeedFile: seed } });
      try {
        const r = await client.generate({
          model: 'tiny-gpt2',
          prompt: 'no bridge',
          maxTokens: 4,
          temperature: 0,
        });
        assert.equal(r.tokenIds.length, 4);
      } finally {
        await client.close();
      }
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    await up.waitFor(/up: bridge bridge-1 is back \(restart \d+, pid \d+\)/, RESTART_TIMEOUT_MS, from);
    await completes(base, 'on the same port'); // --port 0 was pinned to the port it got first

    // SIGKILL up: the kernel kills nats-server and every actor (their parent-death signal).
    const children = childrenOf(upPid);
    const names = children.map((c) =>
      c.argv[0]?.endsWith('nats-server') === true ? 'nats-server' : c.argv[c.argv.indexOf('--id') + 1],
    );
    assert.deepEqual(names.sort(), ['bridge-1', 'collector-1', 'nats-server', 'replica-1', 'router-1']);
    await nc.close();
    nc = undefined;
    up.child.kill('SIGKILL');
    await waitGone(
      children.map((c) => c.pid),
      GONE_TIMEOUT_MS,
    );
    // A SIGKILLed up cannot remove the local nats-server's temp dir: the test does.
    if (natsLog !== undefined) rmSync(dirname(natsLog), { recursive: true, force: true });
    if (credsDir !== undefined) rmSync(credsDir, { recursive: true, force: true });
    assert.doesNotMatch(up.output(), /up: warning:/, 'setpriv works here (util-linux)');
  });
});
