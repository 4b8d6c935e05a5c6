/**
 * A request belongs to the identity that sent it (its reply subject's prefix): a router keys it
 * by (identity, request id), so the same id from another identity is another request, lets only
 * that identity supersede it with a resend, and honours a cancel only when it carries the
 * request's reply subject. Real router and nats-server, two requester connections (two
 * identities), and a scripted fake replica that streams slowly enough to be interfered with.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import { writeRequestMeta } from '../../src/cluster/headers.ts';
import { encodeGenerateRequest } from '../../src/cluster/messages/generate.ts';
import { encodeCancel, type Cancel, type End } from '../../src/cluster/messages/stream.ts';
import { openStream, type StreamHandle } from '../../src/cluster/stream-requester.ts';
import { GENERATE_SUBJECT, routerCancelSubject } from '../../src/cluster/subjects.ts';
import type { SwitchyardError } from '../../src/errors/errors.ts';
import { startRouter, type Router } from '../../src/router/router.ts';
import { waitFor } from '../helpers/cluster.ts';
import { fakeReplica } from '../helpers/fake-replica.ts';
import { NatsServer } from '../helpers/nats-server.ts';

/** The fake streams this many one-token chunks, one per CHUNK_MS: long enough to interfere with. */
const CHUNKS = 16;
const CHUNK_MS = 50;

/** A fake replica streaming CHUNKS tokens slowly; it ignores cancels (the router ends the stream itself). */
function slowReplica(nc: NatsConnection, id: string): () => void {
  const timers = new Set<NodeJS.Timeout>();
  const stop = fakeReplica(nc, id, ({ responder }) => {
    responder.ack({ by: id });
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < CHUNKS) {
        responder.chunk({ tokenIds: [sent], text: 'x', maxTokens: CHUNKS });
        sent++;
        return;
      }
      responder.end({ finishReason: 'length', usage: { promptTokens: 1, completionTokens: CHUNKS } });
      clearInterval(timer);
      timers.delete(timer);
    }, CHUNK_MS);
    timers.add(timer);
  });
  return () => {
    for (const t of timers) clearInterval(t);
    stop();
  };
}

interface Stream {
  handle: StreamHandle;
  tokens: number[];
  end?: End;
  error?: SwitchyardError;
  done: Promise<void>;
}

/** Sends a request with `requestId` on `nc` (one identity: the connection's inbox). */
function send(nc: NatsConnection, requestId: string): Stream {
  const stream: Partial<Stream> & { tokens: number[] } = { tokens: [] };
  const handle = openStream(
    nc,
    GENERATE_SUBJECT,
    encodeGenerateRequest({ model: 'fake', prompt: 'p', temperature: 0 }),
    writeRequestMeta({ requestId, deadline: Date.now() + 30_000 }),
    {
      onMessage: (event) => {
        if (event.kind === 'chunk') stream.tokens.push(...event.chunk.tokenIds);
        else if (event.kind === 'end') stream.end = event.end;
        else if (event.kind === 'error') stream.error = event.error;
      },
    },
  );
  stream.handle = handle;
  stream.done = handle.done.then(() => undefined);
  return stream as Stream;
}

describe('a request belongs to whoever sent it', () => {
  let server: NatsServer;
  let owner: NatsConnection;
  let stranger: NatsConnection;
  let replicaNc: NatsConnection;
  let router: Router;
  let stopReplica: () => void;

  before(async () => {
    server = await NatsServer.start();
    [owner, stranger, replicaNc] = await Promise.all([
      connectNats({ servers: server.url }),
      connectNats({ servers: server.url }),
      connectNats({ servers: server.url }),
    ]);
    stopReplica = slowReplica(replicaNc, 'slow');
    router = await startRouter({ id: 'rt', nats: { servers: server.url } });
  });

  after(async () => {
    stopReplica?.();
    await router?.stop();
    await Promise.all([owner?.close(), stranger?.close(), replicaNc?.close()]);
    await server?.stop();
  });

  it('takes the same id from another requester as another request: sent first, it hurts neither', async () => {
    const theirs = send(stranger, 'own-1');
    await waitFor("the stranger's first token", () => theirs.tokens.length > 0);
    const mine = send(owner, 'own-1');
    await waitFor("the owner's first token", () => mine.tokens.length > 0);
    await Promise.all([mine.done, theirs.done]);
    for (const [who, s] of [
      ['owner', mine],
      ['stranger', theirs],
    ] as const) {
      assert.equal(s.error, undefined, `${who}: ${String(s.error)}`);
      assert.equal(s.end?.finishReason, 'length', who);
      assert.deepEqual(
        s.tokens,
        Array.from({ length: CHUNKS }, (_, i) => i),
        `${who}: a gap or a duplicate`,
      );
    }
  });

  it("lets the owner's own resend supersede its stream", async () => {
    const first = send(owner, 'own-2');
    await waitFor('the first token', () => first.tokens.length > 0);
    const again = send(owner, 'own-2');
    await first.done;
    assert.equal(first.error?.code, 'unavailable');
    assert.match(first.error?.message ?? '', /superseded/);
    await again.done;
    assert.equal(again.end?.finishReason, 'length');
  });

  it("honours a cancel only with the request's reply subject", async () => {
    const mine = send(owner, 'own-3');
    await waitFor('the first token', () => mine.tokens.length > 0);
    const cancel = (c: Cancel): Promise<unknown> =>
      stranger.request(routerCancelSubject('rt'), encodeCancel(c), { timeout: 5_000 });
    await cancel({ requestId: 'own-3', reason: 'no proof' });
    await cancel({ requestId: 'own-3', reason: 'a guess', reply: `${mine.handle.inbox}x` });
    await cancel({ requestId: 'own-3', reason: 'another inbox', reply: '_INBOX.someone.1' });
    const streaming = (s: Stream): boolean => s.end === undefined && s.error === undefined;
    assert.ok(streaming(mine), 'still streaming');
    await mine.done;
    assert.equal(mine.end?.finishReason, 'length', 'none of those cancels cut it');
    assert.equal(mine.tokens.length, CHUNKS);

    // The stranger's own request with the id: its cancel with its own reply subject cuts only that.
    const cut = send(owner, 'own-4');
    const kept = send(stranger, 'own-4');
    await waitFor('the first tokens', () => cut.tokens.length > 0 && kept.tokens.length > 0);
    await cancel({ requestId: 'own-4', reason: 'the owner cancels', reply: cut.handle.inbox });
    await cut.done;
    assert.equal(cut.end?.finishReason, 'cancelled');
    assert.ok(cut.tokens.length < CHUNKS);
    await kept.done;
    assert.equal(kept.end?.finishReason, 'length', "the owner's cancel cut the stranger's request");
    assert.equal(kept.tokens.length, CHUNKS);
  });
});
