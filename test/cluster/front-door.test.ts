/**
 * The front door under strain, for real: replica and router processes through the CLI, a real
 * nats-server, the bundled model. Prompts at the size limit arrive while normal streams run: each
 * gets a typed answer and nothing fails over or is declared dead (tokenizing happens off the
 * replica's event loop). A router that stops drains its front door: every request sent while it
 * stops completes, those it already held there, the rest through the other router.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { SwitchyardClient } from '../../src/client/client.ts';
import type { ClientStream } from '../../src/client/stream.ts';
import { decodeReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject } from '../../src/cluster/subjects.ts';
import { freePort } from '../../src/cli/nats-server.ts';
import { Engine } from '../../src/engine/engine.ts';
import { PROMPT_MAX_CHARS } from '../../src/cluster/messages/params.ts';
import { InvalidRequestError } from '../../src/errors/errors.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { consume, referenceRun, scrape, scrapeTotal, type Consumed } from '../helpers/hardening.ts';
import { TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const ROUTERS = ['rt-a', 'rt-b'] as const;
const PROSE = 'The quick brown fox jumps over the lazy dog while the yard sleeps. ';
const HUGE = PROSE.repeat(Math.ceil(PROMPT_MAX_CHARS / PROSE.length)).slice(0, PROMPT_MAX_CHARS);

function normal(i: number, maxTokens: number): GenerateRequest {
  return {
    model: 'tiny-gpt2',
    prompt: `Stream ${i % 3} keeps going`,
    maxTokens,
    temperature: 0,
    ignoreEos: true,
  };
}

describe('the front door under strain', () => {
  let server: NatsServer;
  let client: SwitchyardClient;
  let engine: Engine;
  let routers: ActorProcess[] = [];
  let replica: ActorProcess;
  const metrics = new Map<string, string>();

  /** A metric summed over both routers (a stopped router counts what it said last). */
  const last = new Map<string, number>();
  async function total(name: string): Promise<number> {
    let sum = 0;
    for (const router of routers) {
      const key = `${router.id} ${name}`;
      if (router.child.exitCode === null) last.set(key, await scrapeTotal(metrics.get(router.id)!, name));
      sum += last.get(key) ?? 0;
    }
    return sum;
  }

  /** Resolves after `count` heartbeats of the replica that report reserved token budget. */
  async function loadSeen(count: number): Promise<void> {
    let seen = 0;
    const sub = client.nc.subscribe(replicaHeartbeatSubject('rx'), {
      callback: (_err, msg) => {
        const hb = decodeReplicaHeartbeat(msg.data);
        if (hb.freeTokenBudget < hb.tokenBudget) seen++;
      },
    });
    try {
      await waitFor('heartbeats that report the load', () => seen >= count);
    } finally {
      sub.unsubscribe();
    }
  }

  before(async () => {
    server = await NatsServer.start();
    for (const id of ROUTERS) metrics.set(id, `http://127.0.0.1:${await freePort()}/metrics`);
    const started = await Promise.all([
      ...ROUTERS.map((id) =>
        ActorProcess.start('router', id, server.url, ['--metrics-port', new URL(metrics.get(id)!).port]),
      ),
      ActorProcess.start('replica', 'rx', server.url),
      Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS }),
    ]);
    engine = started.pop() as Engine;
    replica = started.pop() as ActorProcess;
    routers = started as ActorProcess[];
    // A lost request would wait out this ack timeout: longer than every request's deadline, so
    // only a typed answer (never silence) lets a request complete.
    client = await SwitchyardClient.connect({ nats: { servers: server.url }, ackTimeoutMs: 60_000 });
    for (const id of ROUTERS) {
      await waitFor(`the replica alive at ${id}`, async () => {
        return (await scrape(metrics.get(id)!, `switchyard_replicas{state="alive",router="${id}"}`)) === 1;
      });
    }
  });

  after(async () => {
    await client?.close();
    await engine?.stop();
    await killAll([...routers, replica]);
    await server?.stop();
  });

  it('prompts at the size limit under load get typed answers; no failover, no replica declared dead', async () => {
    const refs = await Promise.all([0, 1, 2].map((i) => referenceRun(engine, normal(i, 60))));
    const failovers = await total('switchyard_failovers_total');
    const dead = await total('switchyard_replicas_declared_dead_total');
    await injectFault(client.nc, 'rx', { step_delay_ms: 20 }); // the normal streams outlast the big prompts
    try {
      const streams = Array.from({ length: 4 }, (_, i) =>
        consume(client.stream(normal(i, 60), { timeoutMs: 30_000 })),
      );
      await waitFor('the normal streams to run', () => streams.every((s) => s.got.tokenIds.length > 0));
      // The routers must see the load: two heartbeats that report the streams' reservations.
      await loadSeen(2);
      // Text prompts are refused by their size alone; chat messages are tokenized in full first.
      const huge: GenerateRequest[] = [
        { model: 'tiny-gpt2', prompt: HUGE, maxTokens: 8 },
        { model: 'tiny-gpt2', prompt: HUGE },
        { model: 'tiny-gpt2', messages: [{ role: 'user', content: HUGE }], maxTokens: 8 },
        { model: 'tiny-gpt2', messages: [{ role: 'user', content: HUGE }] },
      ];
      const big = await Promise.all(huge.map((r) => consume(client.stream(r, { timeoutMs: 30_000 })).done));
      const normals = await Promise.all(streams.map((s) => s.done));
      for (const [i, got] of big.entries()) {
        if (got.error === undefined) continue; // a completion is a typed answer too
        assert.ok(
          got.error instanceof InvalidRequestError,
          `large prompt ${i}: expected invalid_request, got ${String(got.error)}`,
        );
        assert.match(got.error.message, /context length/, `large prompt ${i}`);
      }
      for (const [i, got] of normals.entries()) assertCompleted(got, refs[i % 3]!, `normal stream ${i}`);
    } finally {
      await injectFault(client.nc, 'rx', { step_delay_ms: 0 });
    }
    assert.equal((await total('switchyard_failovers_total')) - failovers, 0, 'failovers');
    assert.equal(
      (await total('switchyard_replicas_declared_dead_total')) - dead,
      0,
      'replicas declared dead',
    );
  });

  // Last: a router stops.
  it('a stopping router drains its front door: every request sent meanwhile completes', async () => {
    const refs = await Promise.all([0, 1, 2].map((i) => referenceRun(engine, normal(i, 30))));
    const victim = routers.find((r) => r.id === 'rt-a')!;
    await injectFault(client.nc, 'rx', { step_delay_ms: 10 });
    try {
      const sent: Array<{ i: number; stream: ClientStream; run: ReturnType<typeof consume> }> = [];
      const send = (): void => {
        const i = sent.length;
        const stream = client.stream(normal(i, 30), { timeoutMs: 30_000 });
        sent.push({ i, stream, run: consume(stream) });
      };
      for (let k = 0; k < 12; k++) send();
      await waitFor('the first requests to stream', () => sent.every((s) => s.run.got.tokenIds.length > 0));
      const burst = (count: number): void => {
        for (let k = 0; k < count; k++) send();
      };
      victim.signal('SIGTERM');
      let stopped = false;
      void victim.exited.then(() => (stopped = true));
      // Requests in short bursts from the moment the stop is signalled, each burst in its own
      // write, then paced ones until the router is gone: none may be lost (a lost one would wait
      // out the client's 60 s ack timeout, past its deadline).
      for (let k = 0; k < 20 && !stopped; k++) {
        burst(2);
        await new Promise((r) => setImmediate(r));
      }
      while (!stopped && sent.length < 90) {
        burst(1);
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(await victim.exited, 0, `a draining router must exit 0:\n${victim.log}`);
      for (const { i, run } of sent) assertCompleted(await run.done, refs[i % 3]!, `request ${i}`);
      // About half of the first 12 were in flight at the stopping router: it finished them.
      assert.ok(
        sent.some((s) => s.stream.routerId === 'rt-a'),
        'no request was in flight at the stopping router',
      );
    } finally {
      await injectFault(client.nc, 'rx', { step_delay_ms: 0 });
    }
  });
});

function assertCompleted(got: Consumed, ref: { tokenIds: number[]; text: string }, what: string): void {
  assert.equal(got.error, undefined, `${what} failed: ${String(got.error)}`);
  assert.deepEqual(got.tokenIds, ref.tokenIds, `${what}: tokens differ from the reference`);
  assert.equal(got.text, ref.text, `${what}: text differs from the reference`);
}
