/**
 * A replica on WebGPU (SwiftShader) in the cluster: it serves through the router, and its
 * in-flight streams move exactly to a CPU replica when it dies, and back from a CPU replica to a
 * WebGPU one: the same model gives the same tokens on either provider.
 */
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import type { Engine } from '../../src/engine/engine.ts';
import { ActorProcess, injectFault, waitFor } from '../helpers/cluster.ts';
import {
  assertExact,
  startFailoverCluster,
  stopFailoverCluster,
  type FailoverCluster,
} from '../helpers/failover.ts';
import { send } from '../helpers/front-door.ts';
import { waitForAliveReplicas } from '../helpers/metrics.ts';
import type { NatsServer } from '../helpers/nats-server.ts';
import { swiftShaderChildEnv, useSwiftShader } from '../helpers/webgpu.ts';

const skip = useSwiftShader();

/** Few tokens: SwiftShader is about 160x slower than the CPU provider. */
const TOKENS = 24;
const STREAMS: GenerateRequest[] = [
  {
    model: 'tiny-gpt2',
    prompt: 'The night shift at the yard',
    maxTokens: TOKENS,
    temperature: 0,
    ignoreEos: true,
  },
  {
    model: 'tiny-gpt2',
    prompt: 'A short story:',
    maxTokens: TOKENS,
    temperature: 0.6,
    topP: 0.9,
    ignoreEos: true,
  },
];

describe('a WebGPU replica in the cluster (SwiftShader)', { skip }, () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let engine: Engine;
  let cpu: ActorProcess;
  const gpus: ActorProcess[] = [];
  let routerMetrics: string;
  const alive = (n: number): Promise<void> => waitForAliveReplicas(routerMetrics, 'rt', n);
  const startGpu = async (id: string): Promise<ActorProcess> => {
    const replica = await ActorProcess.start(
      'replica',
      id,
      server.url,
      ['--device', 'webgpu'],
      swiftShaderChildEnv(),
    );
    gpus.push(replica);
    return replica;
  };

  let cluster: FailoverCluster | undefined;

  before(async () => {
    cluster = await startFailoverCluster('cpu');
    ({ server, nc, engine, replica: cpu, routerMetrics } = cluster);
  });

  after(() => stopFailoverCluster(cluster ?? {}, gpus));

  it('serves through the router and fails over exactly from webgpu to cpu', async () => {
    const gpu = await startGpu('gpu-1');
    await alive(2);
    await injectFault(nc, 'cpu', { drop_heartbeats: true });
    await alive(1); // the WebGPU replica alone takes the streams
    const sent = STREAMS.map((req) => send(nc, req));
    await waitFor(
      'a few chunks on every stream from webgpu',
      () => sent.every((s) => s.record.chunks.length >= 3),
      60_000,
    );
    await injectFault(nc, 'cpu', { drop_heartbeats: false });
    await alive(2);
    await gpu.kill();
    await assertExact(engine, STREAMS, sent, 2);
  });

  it('and back: streams started on cpu finish exactly on webgpu', async () => {
    await alive(1);
    const gpu = await startGpu('gpu-2');
    await alive(2);
    await injectFault(nc, 'gpu-2', { drop_heartbeats: true });
    await alive(1); // the CPU replica alone, slowed so its streams are mid-way when it dies
    await injectFault(nc, 'cpu', { step_delay_ms: 150 });
    const sent = STREAMS.map((req) => send(nc, req));
    await waitFor(
      'a few chunks on every stream from cpu',
      () => sent.every((s) => s.record.chunks.length >= 3),
      60_000,
    );
    await injectFault(nc, 'gpu-2', { drop_heartbeats: false });
    await alive(2);
    await cpu.kill();
    await assertExact(engine, STREAMS, sent, 2);
    await gpu.kill();
  });
});
