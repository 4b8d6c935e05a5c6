/**
 * Router failure, for real: two router processes share the front door; one is SIGKILLed under
 * load. The client library resends its requests through the other router with the tokens it
 * holds, and every request completes exactly once, without a duplicate or a gap.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { SwitchyardClient } from '../../src/client/client.ts';
import type { ClientStream } from '../../src/client/stream.ts';
import { Engine } from '../../src/engine/engine.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const TOKENS = 200;

describe('killing one of two routers under load', () => {
  let server: NatsServer;
  let client: SwitchyardClient;
  let engine: Engine;
  let actors: ActorProcess[] = [];

  before(async () => {
    server = await NatsServer.start();
    const started = await Promise.all([
      ActorProcess.start('router', 'rt-a', server.url),
      ActorProcess.start('router', 'rt-b', server.url),
      ActorProcess.start('replica', 'ra', server.url),
      Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS }),
    ]);
    engine = started[3];
    actors = started.slice(0, 3) as ActorProcess[];
    client = await SwitchyardClient.connect({ nats: { servers: server.url } });
  });

  after(async () => {
    await client?.close();
    await engine?.stop();
    await killAll(actors);
    await server?.stop();
  });

  it('the client library completes every request through the surviving router', async () => {
    await injectFault(client.nc, 'ra', { step_delay_ms: 10 }); // requests last long enough to be cut
    const requests: GenerateRequest[] = Array.from({ length: 12 }, (_, i) => ({
      model: 'tiny-gpt2',
      prompt: `Request number ${i} goes`,
      maxTokens: TOKENS,
      ignoreEos: true,
      // Moderate sampling: see the note on STREAMS in failover.test.ts.
      ...(i % 2 === 0 ? { temperature: 0 } : { temperature: 0.5, topP: 0.9 }),
    }));
    const streams: ClientStream[] = requests.map((req) => client.stream(req, { timeoutMs: 60_000 }));
    const received = streams.map(() => ({ tokenIds: [] as number[], text: '' }));
    const consumed = streams.map(async (stream, i) => {
      for await (const delta of stream) {
        received[i]!.tokenIds.push(...delta.tokenIds);
        received[i]!.text += delta.text;
      }
      return stream.result;
    });
    await waitFor('every stream to have tokens', () => received.every((r) => r.tokenIds.length >= 2), 30_000);
    const onVictim = streams.filter((s) => s.routerId === 'rt-a').length;
    assert.ok(onVictim > 0, 'no request went through the router about to be killed');
    await actors[0]!.kill();

    const results = await Promise.all(consumed);
    for (const [i, result] of results.entries()) {
      const got = received[i]!;
      assert.equal(
        got.tokenIds.length,
        TOKENS,
        `request ${i}: ${got.tokenIds.length} tokens (gap or duplicate)`,
      );
      assert.equal(result.usage.completionTokens, TOKENS);
      const { model: _model, ...params } = requests[i]!;
      const ref = await engine.generate({
        ...params,
        ...(result.seed !== undefined ? { seed: result.seed } : {}),
      });
      assert.deepEqual(got.tokenIds, ref.tokenIds, `request ${i}: tokens differ from an uninterrupted run`);
      assert.equal(got.text, ref.text, `request ${i}: text differs from an uninterrupted run`);
    }
    const resent = results.filter((r) => r.attempts >= 2).length;
    assert.ok(resent >= onVictim, `${onVictim} requests were on the killed router, only ${resent} resent`);
  });
});
