/**
 * Capture for real: a nats-server with JetStream, router, replica and collector processes, the
 * bundled model. Every request of a mixed run (plain, streamed with a stop sequence, chat,
 * cancelled, failed over with its replica SIGKILLed, refused as busy at admission) is recorded
 * exactly once, with its outcome, version and text; a request that ended at a draining router
 * and completed at the next one is recorded as completed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats } from '../../src/cluster/connection.ts';
import { collectorSubject, COMPLETIONS_STREAM } from '../../src/cluster/subjects.ts';
import { SwitchyardClient } from '../../src/client/client.ts';
import { freePort } from '../../src/cli/nats-server.ts';
import type { CollectedRecord } from '../../src/collector/record.ts';
import { RecordStore } from '../../src/collector/records.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { scrape, waitForAliveReplicas } from '../helpers/metrics.ts';
import { NatsServer } from '../helpers/nats-server.ts';
import { ECHO_MODEL_ID } from '../../src/engine/echo.ts';

const MODEL = 'tiny-gpt2';

describe('capture: every request that reaches a router is recorded once', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let client: SwitchyardClient;
  let store: RecordStore;
  const actors: ActorProcess[] = [];
  let routerMetrics: string;

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    const port = await freePort();
    routerMetrics = `http://127.0.0.1:${port}/metrics`;
    actors.push(
      ...(await Promise.all([
        ActorProcess.start('collector', 'col-1', server.url),
        ActorProcess.start('router', 'rt-1', server.url, [
          '--metrics-port',
          String(port),
          '--drain-grace-ms',
          '300',
          // Two requests in flight at most: a third is refused as busy at admission.
          '--max-in-flight',
          '2',
        ]),
        ActorProcess.start('replica', 'rep-1', server.url),
        // Echoes the prompt's bytes: an output that holds what the prompt held, to redact.
        ActorProcess.start('replica', 'rep-echo', server.url, ['--echo']),
      ])),
    );
    nc = await connectNats({ servers: server.url });
    client = await SwitchyardClient.connect({ nc });
    store = await RecordStore.open(
      nc,
      { replicas: 1, maxAgeMs: 3_600_000, maxBytes: 1 << 26 },
      createLogger({ role: 'test', id: 'capture-test' }),
    );
    await waitForAliveReplicas(routerMetrics, 'rt-1', 2);
  });

  after(async () => {
    store?.close();
    await client?.close();
    await nc?.close();
    await killAll(actors);
    await server?.stop();
  });

  // One requester in this test (its client's connection): a request id names one record.
  const record = (id: string): CollectedRecord | undefined =>
    [...store.records()].find((r) => r.request_id === id);

  it('plain, streamed, chat and cancelled requests: one record each, with outcome and text', async () => {
    const plain = await client.generate(
      { model: MODEL, prompt: 'The yard at night', maxTokens: 12, temperature: 0 },
      { requestId: 'cap-plain' },
    );
    const chat = await client.generate(
      {
        model: MODEL,
        messages: [{ role: 'user', content: 'Hello there' }],
        maxTokens: 8,
        temperature: 0,
        metadata: { team: 'a' },
      },
      { requestId: 'cap-chat' },
    );
    const abort = new AbortController();
    const cancelled = client.stream(
      { model: MODEL, prompt: 'Long story', maxTokens: 400, temperature: 0, ignoreEos: true },
      { requestId: 'cap-cancel', signal: abort.signal },
    );
    let got = 0;
    await assert.rejects(async () => {
      for await (const chunk of cancelled) {
        got += chunk.tokenIds.length;
        if (got >= 3) abort.abort();
      }
    });
    await waitFor('three records', () =>
      ['cap-plain', 'cap-chat', 'cap-cancel'].every((id) => record(id)?.completion),
    );
    const p = record('cap-plain')!.completion!;
    assert.equal(p.final, true);
    assert.equal(p.finish_reason, plain.finishReason);
    assert.equal(p.output_text, plain.text);
    assert.deepEqual(p.output_token_ids, plain.tokenIds);
    assert.equal(p.prompt, 'The yard at night');
    assert.equal(p.model, MODEL);
    assert.match(p.model_sha256 ?? '', /^[0-9a-f]{64}$/);
    assert.ok(p.model_version);
    assert.equal(p.text_complete, true);
    assert.ok(p.ttft_ms !== undefined && p.duration_ms >= p.ttft_ms);
    const c = record('cap-chat')!.completion!;
    assert.deepEqual(c.messages, [{ role: 'user', content: 'Hello there' }]);
    assert.deepEqual(c.metadata, { team: 'a' });
    assert.equal(c.output_text, chat.text);
    const x = record('cap-cancel')!.completion!;
    assert.equal(x.finish_reason, 'cancelled');
    assert.equal(x.final, true);
  });

  it('a request whose replica is SIGKILLed mid-stream is recorded once, completed, with its failover', async () => {
    const victim = await ActorProcess.start('replica', 'victim', server.url);
    actors.push(victim);
    await waitForAliveReplicas(routerMetrics, 'rt-1', 3);
    await injectFault(nc, 'rep-1', { drop_heartbeats: true });
    await waitForAliveReplicas(routerMetrics, 'rt-1', 2);
    await injectFault(nc, 'victim', { step_delay_ms: 15 });
    const stream = client.stream(
      { model: MODEL, prompt: 'Failover', maxTokens: 120, temperature: 0, ignoreEos: true },
      { requestId: 'cap-failover' },
    );
    const tokens: number[] = [];
    let killed = false;
    for await (const chunk of stream) {
      tokens.push(...chunk.tokenIds);
      if (!killed && tokens.length >= 5) {
        killed = true;
        await injectFault(nc, 'rep-1', { drop_heartbeats: false });
        await victim.kill();
      }
    }
    await waitFor('the failover record', () => record('cap-failover')?.completion !== undefined);
    const f = record('cap-failover')!.completion!;
    assert.equal(f.final, true);
    assert.equal(f.finish_reason, 'length');
    assert.deepEqual(f.output_token_ids, tokens);
    assert.ok(f.attempts >= 2, `attempts ${f.attempts}`);
    assert.ok(f.failovers.length >= 1);
    assert.equal(f.failovers[0]!.replica, 'victim');
  });

  it('redaction: nothing redacted reaches the stream or an export, as text or as token ids', async () => {
    const secret = 'mail bob@example.com, card 4111 1111 1111 1111, key sk-live-abcdefghijklmnopqrstuvwx1234';
    const echoed = await client.generate(
      { model: ECHO_MODEL_ID, prompt: secret, maxTokens: secret.length },
      { requestId: 'cap-redact' },
    );
    assert.ok(echoed.text.includes('bob@example.com'), 'the caller gets its answer unredacted');
    await waitFor('the redacted record', () => record('cap-redact')?.completion !== undefined);
    const r = record('cap-redact')!;
    const c = r.completion!;
    assert.ok(
      c.prompt?.includes('<EMAIL>') && c.prompt.includes('<CARD>') && c.prompt.includes('<SECRET>'),
      c.prompt,
    );
    assert.ok(c.output_text?.includes('<EMAIL>'), c.output_text);
    assert.equal(c.output_token_ids, undefined, 'token ids that decode to the redacted text are dropped');
    assert.deepEqual(c.redacted, ['CARD', 'EMAIL', 'SECRET']);
    // The stored bytes themselves, not only the record.
    const jsm = await jetstreamManager(nc);
    const stored = await jsm.streams.getMessage(COMPLETIONS_STREAM, { seq: r.completion_seq! });
    const raw = new TextDecoder().decode(stored!.data);
    for (const leak of ['bob@example.com', '4111 1111 1111 1111', 'sk-live-abcdefghij']) {
      assert.ok(!raw.includes(leak), `the stream holds ${leak}`);
    }
  });

  it('a client cannot claim an API key: Sy-Key-Id from outside a bridge inbox is not recorded', async () => {
    await client.generate(
      { model: MODEL, prompt: 'forged key', maxTokens: 2, temperature: 0 },
      { requestId: 'cap-forged-key', keyId: 'someone-else' },
    );
    await waitFor('the record', () => record('cap-forged-key')?.completion !== undefined);
    assert.equal(record('cap-forged-key')!.completion!.api_key_id, undefined);
  });

  it('a request refused as busy at admission is recorded once, with its code', async () => {
    await injectFault(nc, 'rep-1', { step_delay_ms: 20 });
    const long = ['cap-hold-1', 'cap-hold-2'].map((requestId) =>
      client.stream(
        { model: MODEL, prompt: requestId, maxTokens: 60, temperature: 0, ignoreEos: true },
        { requestId },
      ),
    );
    await waitFor(
      'both held at the router',
      async () => (await scrape(routerMetrics, 'switchyard_router_in_flight{router="rt-1"}')) === 2,
    );
    await assert.rejects(
      client.generate({ model: MODEL, prompt: 'one too many', maxTokens: 4 }, { requestId: 'cap-busy' }),
      (err: { code?: string }) => err.code === 'busy',
    );
    await injectFault(nc, 'rep-1', { step_delay_ms: 0 });
    await Promise.all(long.map((s) => s.result.catch(() => undefined)));
    await waitFor('the busy record', () => record('cap-busy')?.completion !== undefined);
    const b = record('cap-busy')!.completion!;
    assert.equal(b.error?.code, 'busy');
    assert.equal(
      b.final,
      false,
      'busy is the client’s to resend: provisional, and the record while no resend came',
    );
  });

  it('a refusal at admission is recorded (provisional), a resend that completes replaces it', async () => {
    // model_not_found is final: nobody resends it.
    await assert.rejects(
      client.generate({ model: 'no-such-model', prompt: 'x', maxTokens: 2 }, { requestId: 'cap-404' }),
    );
    await waitFor('the refusal record', () => record('cap-404')?.completion !== undefined);
    const r = record('cap-404')!.completion!;
    assert.equal(r.error?.code, 'model_not_found');
    assert.equal(r.final, true);
  });

  it('the completions stream holds one final event per request id, and stats count each once', async () => {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(COMPLETIONS_STREAM);
    assert.ok(info.state.messages >= 5);
    const ids = [
      'cap-plain',
      'cap-chat',
      'cap-cancel',
      'cap-failover',
      'cap-forged-key',
      'cap-hold-1',
      'cap-hold-2',
      'cap-busy',
    ];
    const tinyRequests = async (): Promise<number> => {
      const answer = await nc.request(collectorSubject('stats'), '{}', { timeout: 5_000 });
      const stats = answer.json<{ versions: Array<{ model: string; requests: number }> }>();
      // Per version: the busy refusal never reached a replica, so its version is `unknown`.
      return stats.versions.filter((v) => v.model === MODEL).reduce((n, v) => n + v.requests, 0);
    };
    await waitFor('every request of the model recorded', () => ids.every((id) => record(id)?.completion));
    assert.equal(await tinyRequests(), ids.length, 'stats count each request once');
  });

  it('a request that ends at a draining router and completes at the next is recorded as completed', async () => {
    const port = await freePort();
    await injectFault(nc, 'rep-1', { step_delay_ms: 20 });
    const stream = client.stream(
      { model: MODEL, prompt: 'Drain me', maxTokens: 150, temperature: 0, ignoreEos: true },
      { requestId: 'cap-drain' },
    );
    const tokens: number[] = [];
    let text = '';
    let handedOver = false;
    for await (const chunk of stream) {
      tokens.push(...chunk.tokenIds);
      text += chunk.text;
      if (!handedOver && tokens.length >= 5) {
        handedOver = true;
        // The next router joins, then the first drains: its 300 ms grace runs out mid-stream.
        const next = await ActorProcess.start('router', 'rt-2', server.url, ['--metrics-port', String(port)]);
        actors.push(next);
        await waitForAliveReplicas(`http://127.0.0.1:${port}/metrics`, 'rt-2', 2);
        const first = actors.find((a) => a.id === 'rt-1')!;
        void first.terminate();
      }
    }
    await injectFault(nc, 'rep-1', { step_delay_ms: 0 });
    const result = await stream.result;
    assert.equal(result.finishReason, 'length');
    await waitFor('the drained request recorded as completed', () => {
      const c = record('cap-drain')?.completion;
      return c !== undefined && c.final && c.router === 'rt-2';
    });
    const c = record('cap-drain')!.completion!;
    assert.equal(c.finish_reason, 'length');
    assert.deepEqual(c.output_token_ids, tokens);
    assert.equal(c.text_complete, true, 'the resumed text came back from the replica');
    assert.equal(c.output_text, text);
    // The draining router's provisional event is in the stream too, and lost to the final one.
    const jsm = await jetstreamManager(nc);
    const byId = await jsm.streams.info(COMPLETIONS_STREAM);
    assert.ok(byId.state.messages >= 7);
  });
});
