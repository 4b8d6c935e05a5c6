/**
 * A scripted replica for router tests: it announces itself with heartbeats (ready, idle, the
 * model `fake`) and hands every generate request to a script, with a responder for its stream.
 * It speaks the real protocol over a real nats-server, so that it can misbehave on cue.
 */
import type { Msg, NatsConnection } from '@nats-io/nats-core';
import { readRequestMeta, type RequestMeta } from '../../src/cluster/headers.ts';
import { decodeGenerateRequest, type GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { encodeReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { StreamResponder } from '../../src/cluster/stream-responder.ts';
import { replicaGenerateSubject, replicaHeartbeatSubject } from '../../src/cluster/subjects.ts';

/** The fake's heartbeat period. */
export const FAKE_BEAT_MS = 100;

/** What a script gets for one request. */
export interface FakeCall {
  meta: RequestMeta;
  request: GenerateRequest;
  responder: StreamResponder;
  msg: Msg;
}

/** Starts a fake replica `id`; the returned function stops it (beats and subscription). */
export function fakeReplica(nc: NatsConnection, id: string, script: (call: FakeCall) => void): () => void {
  const beat = (): void =>
    nc.publish(
      replicaHeartbeatSubject(id),
      encodeReplicaHeartbeat({
        id,
        model: 'fake',
        modelVersion: '1',
        device: 'cpu',
        state: 'ready',
        queueDepth: 0,
        activeSequences: 0,
        maxBatchSize: 8,
        maxQueue: 8,
        freeTokenBudget: 4_096,
        tokenBudget: 4_096,
        progress: 0,
        sentAt: Date.now(),
        intervalMs: FAKE_BEAT_MS,
      }),
    );
  beat();
  const timer = setInterval(beat, FAKE_BEAT_MS);
  const sub = nc.subscribe(replicaGenerateSubject(id), {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      const meta = readRequestMeta(msg.headers);
      const responder = new StreamResponder(nc, msg.reply, {
        requestId: meta.requestId,
        attempt: meta.attempt ?? 1,
      });
      script({ meta, request: decodeGenerateRequest(msg.data), responder, msg });
    },
  });
  return () => {
    clearInterval(timer);
    sub.unsubscribe();
  };
}
