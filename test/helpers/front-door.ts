/**
 * A bare protocol client for the cluster tests: sends one request to the routers' front door and
 * records exactly what came back (ack, every chunk, the end or the error), so tests can check the
 * stream itself — contiguous seq, attempts, seeds — not only a client library's view of it.
 */
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/nats-core';
import { writeRequestMeta, type RequestMeta } from '../../src/cluster/headers.ts';
import { encodeGenerateRequest, type GenerateRequest } from '../../src/cluster/messages/generate.ts';
import type { Ack, Chunk, End } from '../../src/cluster/messages/stream.ts';
import { openStream, type StreamHandle } from '../../src/cluster/stream-requester.ts';
import { GENERATE_SUBJECT } from '../../src/cluster/subjects.ts';
import type { SwitchyardError } from '../../src/errors/errors.ts';

/** What one request got. */
export interface Recorded {
  requestId: string;
  ack?: Ack;
  chunks: Chunk[];
  end?: End;
  error?: SwitchyardError;
  tokenIds: number[];
  text: string;
}

/** A request in flight, with its record filling in as messages arrive. */
export interface Sent {
  record: Recorded;
  done: Promise<Recorded>;
  /** The stream itself: its `inbox` is the reply subject a cancel names. */
  handle: StreamHandle;
}

/**
 * Sends `req` to the front door (or to `subject`, e.g. one replica's generate subject); `done`
 * resolves when the stream ends (never rejects).
 */
export function send(
  nc: NatsConnection,
  req: GenerateRequest,
  timeoutMs = 60_000,
  subject = GENERATE_SUBJECT,
): Sent {
  return sendRecorded(nc, subject, req, { requestId: `t-${randomUUID()}`, deadline: Date.now() + timeoutMs });
}

/** Sends `req` to `subject` with `meta` (its request id required) and records what came back. */
export function sendRecorded(
  nc: NatsConnection,
  subject: string,
  req: GenerateRequest,
  meta: RequestMeta & { requestId: string },
): Sent {
  const record: Recorded = { requestId: meta.requestId, chunks: [], tokenIds: [], text: '' };
  const handle = openStream(nc, subject, encodeGenerateRequest(req), writeRequestMeta(meta), {
    onMessage: (event) => {
      if (event.kind === 'ack') record.ack = event.ack;
      else if (event.kind === 'chunk') {
        record.chunks.push(event.chunk);
        record.tokenIds.push(...event.chunk.tokenIds);
        record.text += event.chunk.text;
      } else if (event.kind === 'end') record.end = event.end;
      else record.error = event.error;
    },
  });
  return { record, done: handle.done.then(() => record), handle };
}

/** Sends and waits. */
export function request(
  nc: NatsConnection,
  req: GenerateRequest,
  timeoutMs?: number,
  subject?: string,
): Promise<Recorded> {
  return send(nc, req, timeoutMs, subject).done;
}
