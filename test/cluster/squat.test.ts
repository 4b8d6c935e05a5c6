/**
 * Request-id squatting, for real: router and replica processes, a real nats-server, the bundled
 * model. Request ids are chosen by callers and often guessable; a stranger who sends a live
 * request's id (before the owner's request, or before the owner's resend after its router died)
 * holds a request of its own, and neither that request nor the stranger's cancels may change
 * the owner's: it completes exactly as an uninterrupted run, and so does the stranger's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import { writeRequestMeta } from '../../src/cluster/headers.ts';
import { encodeGenerateRequest, type GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { encodeCancel, type Ack, type Cancel, type End } from '../../src/cluster/messages/stream.ts';
import { openStream, type StreamHandle } from '../../src/cluster/stream-requester.ts';
import { GENERATE_SUBJECT, routerCancelSubject } from '../../src/cluster/subjects.ts';
import { SwitchyardClient } from '../../src/client/client.ts';
import { Engine } from '../../src/engine/engine.ts';
import type { SwitchyardError } from '../../src/errors/errors.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { consume, referenceRun } from '../helpers/hardening.ts';
import { TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

/** Tokens per request; with STEP_DELAY_MS per step a stream lasts long enough to interfere with. */
const TOKENS = 120;
const STEP_DELAY_MS = 25;
const TIMEOUT_MS = 60_000;
/** How many sends the stranger may spend to land one on a given router of the queue group. */
const MAX_SQUAT_SENDS = 40;

const OWNERS: GenerateRequest = {
  model: 'tiny-gpt2',
  prompt: 'The owner of this request id asks',
  maxTokens: TOKENS,
  temperature: 0,
  ignoreEos: true,
};
const STRANGERS: GenerateRequest = { ...OWNERS, prompt: 'A stranger reuses the id and asks' };

/** A bare-protocol request of the stranger's, with its reply subject (needed to cancel it). */
interface Squat {
  handle: StreamHandle;
  ack?: Ack;
  tokenIds: number[];
  text: string;
  end?: End;
  error?: SwitchyardError;
  done: Promise<void>;
}

function squat(nc: NatsConnection, requestId: string): Squat {
  const s = { tokenIds: [] as number[], text: '' } as Partial<Squat> & { tokenIds: number[]; text: string };
  s.handle = openStream(
    nc,
    GENERATE_SUBJECT,
    encodeGenerateRequest(STRANGERS),
    writeRequestMeta({ requestId, deadline: Date.now() + TIMEOUT_MS }),
    {
      onMessage: (event) => {
        if (event.kind === 'ack') s.ack = event.ack;
        else if (event.kind === 'chunk') {
          s.tokenIds.push(...event.chunk.tokenIds);
          s.text += event.chunk.text;
        } else if (event.kind === 'end') s.end = event.end;
        else s.error = event.error;
      },
    },
  );
  s.done = s.handle.done.then(() => undefined);
  return s as Squat;
}

describe('a stranger reusing a live request id', () => {
  let server: NatsServer;
  let client: SwitchyardClient;
  let stranger: NatsConnection;
  let engine: Engine;
  let actors: ActorProcess[] = [];
  let ownersRef: { tokenIds: number[]; text: string };
  let strangersRef: { tokenIds: number[]; text: string };

  before(async () => {
    server = await NatsServer.start();
    const started = await Promise.all([
      ActorProcess.start('router', 'rt-a', server.url),
      ActorProcess.start('replica', 'ra', server.url),
      Engine.start({ modelDir: TINY_MODEL, ...TEST_THREADS }),
    ]);
    actors = started.slice(0, 2) as ActorProcess[];
    engine = started[2];
    [client, stranger] = await Promise.all([
      SwitchyardClient.connect({ nats: { servers: server.url } }),
      connectNats({ servers: server.url }),
    ]);
    ownersRef = await referenceRun(engine, OWNERS);
    strangersRef = await referenceRun(engine, STRANGERS);
    await injectFault(client.nc, 'ra', { step_delay_ms: STEP_DELAY_MS });
  });

  after(async () => {
    await client?.close();
    await stranger?.close();
    await engine?.stop();
    await killAll(actors);
    await server?.stop();
  });

  function assertExact(
    what: string,
    got: { tokenIds: number[]; text: string },
    ref: { tokenIds: number[]; text: string },
  ): void {
    assert.deepEqual(got.tokenIds, ref.tokenIds, `${what}: tokens differ from an uninterrupted run`);
    assert.equal(got.text, ref.text, `${what}: text differs from an uninterrupted run`);
  }

  it("sent first on the owner's router, it does not fail or change the owner's request; both complete", async () => {
    const theirs = squat(stranger, 'victim-1');
    await waitFor(
      "the stranger's first token",
      () => theirs.tokenIds.length > 0 || theirs.error !== undefined,
    );
    const mine = consume(client.stream(OWNERS, { requestId: 'victim-1', timeoutMs: TIMEOUT_MS }));
    const [got] = await Promise.all([mine.done, theirs.done]);
    assert.equal(got.error, undefined, `the owner's request failed: ${got.error?.message}`);
    assert.equal(got.result?.attempts, 1, "the owner's request needed a resend");
    assertExact("the owner's request", got, ownersRef);
    assert.equal(theirs.error, undefined, `the stranger's own request failed: ${theirs.error?.message}`);
    assert.equal(theirs.end?.finishReason, 'length');
    assertExact("the stranger's request", theirs, strangersRef);
  });

  it("the stranger's cancels with the id cut only the stranger's own request", async () => {
    const mine = consume(client.stream(OWNERS, { requestId: 'victim-2', timeoutMs: TIMEOUT_MS }));
    await waitFor(
      "the owner's first token",
      () => mine.got.tokenIds.length > 0 || mine.got.error !== undefined,
    );
    const theirs = squat(stranger, 'victim-2');
    await waitFor(
      "the stranger's first token",
      () => theirs.tokenIds.length > 0 || theirs.error !== undefined,
    );
    const cancel = (c: Cancel): Promise<unknown> =>
      stranger.request(routerCancelSubject('rt-a'), encodeCancel(c), { timeout: 5_000 });
    await cancel({ requestId: 'victim-2', reason: 'no proof' });
    await cancel({ requestId: 'victim-2', reason: 'a guess', reply: `${theirs.handle.inbox}0` });
    await cancel({ requestId: 'victim-2', reason: 'its own stream', reply: theirs.handle.inbox });
    await theirs.done;
    assert.equal(theirs.error, undefined, `the stranger's request failed: ${theirs.error?.message}`);
    assert.equal(theirs.end?.finishReason, 'cancelled', "the stranger's own cancel was not honoured");
    const got = await mine.done;
    assert.equal(got.error, undefined, `the owner's request failed: ${got.error?.message}`);
    assert.equal(got.result?.finishReason, 'length', "the stranger's cancel ended the owner's request");
    assert.equal(got.result?.attempts, 1, "the owner's request needed a resend");
    assertExact("the owner's request", got, ownersRef);
  });

  it('sent first on the router the owner resends to after its router died, it does not fail the resend', async () => {
    actors.push(await ActorProcess.start('router', 'rt-b', server.url));
    const stream = client.stream(OWNERS, { requestId: 'victim-3', timeoutMs: TIMEOUT_MS });
    const mine = consume(stream);
    await waitFor(
      "the owner's first token",
      () => mine.got.tokenIds.length > 0 || mine.got.error !== undefined,
    );
    const first = stream.routerId;
    assert.ok(first !== undefined, 'the owner has no router');
    const survivor = first === 'rt-a' ? 'rt-b' : 'rt-a';
    // The front door is a queue group: send until one of the stranger's requests lands on the survivor.
    let theirs: Squat | undefined;
    const elsewhere: Squat[] = [];
    for (let i = 0; i < MAX_SQUAT_SENDS && theirs === undefined; i++) {
      const s = squat(stranger, 'victim-3');
      await waitFor('an ack', () => s.ack !== undefined || s.error !== undefined);
      if (s.ack?.by === survivor) theirs = s;
      else elsewhere.push(s);
    }
    assert.ok(theirs !== undefined, `no squat landed on ${survivor} in ${MAX_SQUAT_SENDS} sends`);
    assert.ok(mine.got.result === undefined && mine.got.error === undefined, 'the owner finished too early');
    await actors.find((a) => a.id === first)!.kill();

    const got = await mine.done;
    assert.equal(got.error, undefined, `the owner's resend failed: ${got.error?.message}`);
    assert.ok((got.result?.attempts ?? 0) >= 2, 'the owner never resent');
    assertExact("the owner's request", got, ownersRef);
    await theirs.done;
    assert.equal(theirs.error, undefined, `the stranger's own request failed: ${theirs.error?.message}`);
    assertExact("the stranger's request", theirs, strangersRef);
    // Those on the killed router would wait out their deadline (a bare requester has no router watch).
    for (const s of elsewhere) s.handle.close();
  });
});
