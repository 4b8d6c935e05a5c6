/**
 * A NATS server restart mid-stream: every actor's connection drops and reconnects, and publishes
 * made meanwhile are gone. Routers and replicas fail their running streams over at once when
 * their own connection reconnects (instead of waiting for deadlines), the client resends, and
 * every stream still ends exactly as an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { SwitchyardClient } from '../../src/client/client.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { Engine } from '../../src/engine/engine.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';
import { waitForAliveReplicas } from '../helpers/metrics.ts';
import { NatsServer, freePort } from '../helpers/nats-server.ts';

const TOKENS = 120;
const PROMPTS = ['The night shift at the yard', 'Weather', 'Bread needs', 'A short story:'];

describe('a NATS server restart mid-stream', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let engine: Engine;
  let client: SwitchyardClient;
  let actors: ActorProcess[] = [];

  before(async () => {
    server = await NatsServer.start();
    const port = await freePort();
    const [router, r1, r2, local] = await Promise.all([
      ActorProcess.start('router', 'rt', server.url, ['--metrics-port', String(port)]),
      ActorProcess.start('replica', 'r1', server.url),
      ActorProcess.start('replica', 'r2', server.url),
      Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS }),
    ]);
    actors = [router, r1, r2];
    engine = local;
    nc = await connectNats({ servers: server.url });
    // Enough resends to outlast the routers' own reconnect (a few hundred ms): with the default
    // three, a client that reconnects first hears `unavailable` (typed, nothing lost) instead.
    client = await SwitchyardClient.connect({ nats: { servers: server.url }, maxAttempts: 6 });
    await waitForAliveReplicas(`http://127.0.0.1:${port}/metrics`, 'rt', 2);
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await engine?.stop();
    await killAll(actors);
    await server?.stop();
  });

  it('fails streams over on reconnect, and every stream completes exactly', async () => {
    // Slow the replicas so that the streams are mid-way when the server goes.
    await Promise.all(['r1', 'r2'].map((id) => injectFault(nc, id, { step_delay_ms: 20 })));
    const streams = PROMPTS.map((prompt) =>
      client.stream({ model: 'tiny-gpt2', prompt, maxTokens: TOKENS, temperature: 0, ignoreEos: true }),
    );
    const seen = streams.map(() => 0);
    const texts = streams.map(async (stream, i) => {
      let text = '';
      const tokenIds: number[] = [];
      for await (const delta of stream) {
        text += delta.text;
        tokenIds.push(...delta.tokenIds);
        seen[i]! += delta.tokenIds.length;
      }
      return { text, tokenIds, result: await stream.result };
    });
    await waitFor('every stream under way', () => seen.every((n) => n >= 5), 30_000);
    await server.restart(300);
    const got = await Promise.all(texts);
    for (const [i, prompt] of PROMPTS.entries()) {
      const ref = await engine.generate({ prompt, maxTokens: TOKENS, temperature: 0, ignoreEos: true });
      assert.deepEqual(
        got[i]!.tokenIds,
        ref.tokenIds,
        `stream ${i}: tokens differ from the uninterrupted run`,
      );
      assert.equal(got[i]!.text, ref.text, `stream ${i}: text differs`);
      assert.equal(got[i]!.result.finishReason, 'length');
    }
    // Each actor noticed its own reconnect (the mechanism, not only the outcome).
    await waitFor('the router to log its reconnect', () => /NATS reconnected/.test(actors[0]!.log), 10_000);
    await waitFor(
      'a replica to log its reconnect',
      () => actors.slice(1).some((a) => /NATS reconnected/.test(a.log)),
      10_000,
    );
  });
});
