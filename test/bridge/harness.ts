/**
 * A small cluster for the bridge tests: a real nats-server, a router and replica processes
 * started through the CLI, and bridges in this process talking real HTTP. Plus the helpers the
 * tests share: raw HTTP (for framing and malformed input), SSE parsing, heartbeat watching.
 */
import { request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';
import type { NatsConnection } from '@nats-io/nats-core';
import { startBridge, type Bridge } from '../../src/bridge/bridge.ts';
import type { BridgeOptions } from '../../src/bridge/options.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { decodeReplicaHeartbeat, type ReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject } from '../../src/cluster/subjects.ts';
import { ActorProcess, killAll, waitFor } from '../helpers/cluster.ts';
import { NatsServer } from '../helpers/nats-server.ts';

// Bridges in this process log at warn like the actor processes the helpers start.
process.env.SWITCHYARD_LOG_LEVEL ??= 'warn';

/** Longest a test request may take: a hang fails the test with a message, not at undici's 300 s. */
export const TEST_REQUEST_TIMEOUT_MS = 60_000;

/** The bundled model's id. */
export const MODEL = 'tiny-gpt2';

/** A running test cluster. */
export interface TestCluster {
  server: NatsServer;
  nc: NatsConnection;
  router: ActorProcess;
  replicas: ActorProcess[];
  bridges: Bridge[];
  /** Starts another bridge on a free port (stopped by `close`). */
  bridge(opts?: BridgeOptions): Promise<Bridge>;
  close(): Promise<void>;
}

/** Starts nats-server, one router, replicas with the given extra CLI args, and one bridge. */
export async function startCluster(
  replicaArgs: Array<{ id: string; args?: string[] }> = [{ id: 'r1' }],
  bridgeOpts: BridgeOptions = {},
): Promise<TestCluster> {
  const server = await NatsServer.start({ jetstream: true });
  const [router, replicas] = await Promise.all([
    ActorProcess.start('router', 'rt', server.url),
    Promise.all(replicaArgs.map((r) => ActorProcess.start('replica', r.id, server.url, r.args ?? []))),
  ]);
  const nc = await connectNats({ servers: server.url });
  const cluster: TestCluster = {
    server,
    nc,
    router,
    replicas,
    bridges: [],
    async bridge(opts: BridgeOptions = {}): Promise<Bridge> {
      const b = await startBridge({ port: 0, ...opts, nats: { servers: server.url, ...opts.nats } });
      cluster.bridges.push(b);
      return b;
    },
    async close(): Promise<void> {
      await Promise.all(cluster.bridges.map((b) => b.stop()));
      await nc.close();
      await killAll([cluster.router, ...cluster.replicas]);
      await server.stop();
    },
  };
  const first = await cluster.bridge(bridgeOpts);
  // Ready once the bridge has heard every replica (and the router its membership warm-up).
  await waitFor('the bridge to see the replicas', async () => (await fetch(`${first.url}/readyz`)).ok);
  return cluster;
}

/** A raw HTTP exchange over a socket: whatever bytes go out, the whole answer as text. */
export function rawHttp(port: number, bytes: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1' });
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms; got so far: ${data}`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => (data += d.toString('utf8')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.on('error', reject);
    socket.write(bytes);
  });
}

/** An HTTP answer with its body as text. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** POSTs `body` (sent as given when a string or Buffer, else as JSON) with node:http. */
export function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<Answer> {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: 'POST', headers, signal: AbortSignal.timeout(TEST_REQUEST_TIMEOUT_MS) },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** The JSON payloads of an SSE body (`[DONE]` kept as the string). */
export function sseEvents(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((e) => e !== '')
    .map((e) => {
      if (!e.startsWith('data: ')) throw new Error(`not an SSE data event: ${JSON.stringify(e)}`);
      const payload = e.slice('data: '.length);
      return payload === '[DONE]' ? payload : (JSON.parse(payload) as unknown);
    });
}

/** Records a replica's heartbeats. */
export function watchHeartbeats(
  nc: NatsConnection,
  replicaId: string,
): { beats: ReplicaHeartbeat[]; stop(): void } {
  const beats: ReplicaHeartbeat[] = [];
  const sub = nc.subscribe(replicaHeartbeatSubject(replicaId), {
    callback: (_err, msg) => void beats.push(decodeReplicaHeartbeat(msg.data)),
  });
  return { beats, stop: () => sub.unsubscribe() };
}

export { ActorProcess, killAll, waitFor };

/** Reads from an SSE response until at least `n` events (blank-line separated) have arrived. */
export async function readSseEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  n: number,
): Promise<void> {
  let events = 0;
  while (events < n) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the stream ended after ${events} of ${n} events`);
    events += (
      Buffer.from(value ?? [])
        .toString('utf8')
        .match(/\n\n/g) ?? []
    ).length;
  }
}
