/**
 * Failover tests' common parts: the cluster they run against, and the exactness of streams that
 * moved between replicas, against an uninterrupted in-process run.
 */
import assert from 'node:assert/strict';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import type { NatsConnection } from '@nats-io/nats-core';
import { freePort } from '../../src/cli/nats-server.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { Engine } from '../../src/engine/engine.ts';
import type { GenerateResult } from '../../src/engine/types.ts';
import { ActorProcess, killAll } from './cluster.ts';
import type { Recorded, Sent } from './front-door.ts';
import { TEST_THREADS, TINY_MODEL } from './models.ts';
import { NatsServer } from './nats-server.ts';

/** The uninterrupted run of the same request (with the seed the router announced). */
async function reference(engine: Engine, req: GenerateRequest, got: Recorded): Promise<GenerateResult> {
  const { model: _model, ...params } = req;
  const seed = got.ack?.seed;
  return engine.generate(seed === undefined ? params : { ...params, seed });
}

/**
 * Every stream ended as its uninterrupted run ends: the same tokens, none twice, none missing,
 * the same text (the end's text included), finish reason and usage, after at least `minAttempts`
 * attempts whose chunks come in attempt order. (Contiguous seq needs no check here: the stream
 * layer turns a gap into an error, which the first assertion catches.)
 */
export async function assertExact(
  engine: Engine,
  requests: GenerateRequest[],
  sent: Sent[],
  minAttempts: number,
): Promise<GenerateResult[]> {
  const results = await Promise.all(sent.map((s) => s.done));
  const refs: GenerateResult[] = [];
  for (const [i, got] of results.entries()) {
    const req = requests[i]!;
    assert.equal(got.error, undefined, `stream ${i} failed: ${got.error?.code} ${got.error?.message}`);
    assert.ok(got.end, `stream ${i} has no end`);
    assert.ok(got.end.attempts >= minAttempts, `stream ${i} took ${got.end.attempts} attempt(s)`);
    const attempts = got.chunks.map((c) => c.attempt);
    assert.equal(attempts[0], 1, `stream ${i}: the first chunk is not from the first attempt`);
    assert.ok(
      attempts.every((a, k) => k === 0 || a >= attempts[k - 1]!),
      `stream ${i}: chunk attempts go back: ${attempts.join(',')}`,
    );
    assert.equal(
      attempts.at(-1),
      got.end.attempts,
      `stream ${i}: the last chunk is not from the last attempt`,
    );
    if (req.temperature !== 0) assert.equal(typeof got.ack?.seed, 'number', 'sampled request got no seed');
    const ref = await reference(engine, req, got);
    refs.push(ref);
    assert.deepEqual(got.tokenIds, ref.tokenIds, `stream ${i}: tokens differ from the uninterrupted run`);
    assert.equal(
      got.text + (got.end.text ?? ''),
      ref.text,
      `stream ${i}: text differs from the uninterrupted run`,
    );
    assert.equal(got.end.finishReason, ref.finishReason, `stream ${i}: finish reason`);
    assert.deepEqual(got.end.usage, ref.usage, `stream ${i}: usage`);
  }
  return refs;
}

/** What a failover test runs against: a nats-server, one router, one replica, a reference engine. */
export interface FailoverCluster {
  server: NatsServer;
  nc: NatsConnection;
  /** The uninterrupted runs' engine, in this process. */
  engine: Engine;
  router: ActorProcess;
  replica: ActorProcess;
  /** The router's /metrics URL. */
  routerMetrics: string;
}

/** Starts a router `rt` (with metrics), a CPU replica `replicaId` and the reference engine. */
export async function startFailoverCluster(replicaId: string): Promise<FailoverCluster> {
  const server = await NatsServer.start();
  const metricsPort = await freePort();
  const [router, replica, engine] = await Promise.all([
    ActorProcess.start('router', 'rt', server.url, ['--metrics-port', String(metricsPort)]),
    ActorProcess.start('replica', replicaId, server.url),
    Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS }),
  ]);
  const nc = await connectNats({ servers: server.url });
  return { server, nc, engine, router, replica, routerMetrics: `http://127.0.0.1:${metricsPort}/metrics` };
}

/** Stops what {@link startFailoverCluster} started (any part may be missing) and `others`. */
export async function stopFailoverCluster(
  c: Partial<FailoverCluster>,
  others: ActorProcess[],
): Promise<void> {
  await c.nc?.close();
  await c.engine?.stop();
  await killAll([c.router, c.replica, ...others].filter((a): a is ActorProcess => a !== undefined));
  await c.server?.stop();
}
