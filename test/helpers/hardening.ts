/**
 * Helpers for the hardening integration tests: talk to one replica directly as a router would
 * (request headers with an origin and an attempt), beat for routers that exist only in the test,
 * read an actor's Prometheus metrics, and compute reference runs on an in-process engine.
 */
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '@nats-io/nats-core';
import type { GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { encodeRouterHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { encodeCancel, type Cancel } from '../../src/cluster/messages/stream.ts';
import {
  replicaCancelSubject,
  replicaGenerateSubject,
  routerHeartbeatSubject,
} from '../../src/cluster/subjects.ts';
import type { ClientStream, StreamResult } from '../../src/client/stream.ts';
import type { Engine } from '../../src/engine/engine.ts';
import { sendRecorded, type Sent } from './front-door.ts';

/** How one test router addresses a replica: the headers a real router would send. */
export interface DirectMeta {
  requestId?: string;
  /** The router that owns the work (`Sy-Origin`). @default none */
  origin?: string;
  /** @default 1 */
  attempt?: number;
  /** @default 60 s from now */
  timeoutMs?: number;
}

/** Sends `req` straight to a replica's generate subject; `done` resolves when the stream ends. */
export function sendToReplica(
  nc: NatsConnection,
  replicaId: string,
  req: GenerateRequest,
  meta: DirectMeta = {},
): Sent {
  return sendRecorded(nc, replicaGenerateSubject(replicaId), req, {
    requestId: meta.requestId ?? `t-${randomUUID()}`,
    attempt: meta.attempt ?? 1,
    deadline: Date.now() + (meta.timeoutMs ?? 60_000),
    ...(meta.origin !== undefined ? { origin: meta.origin } : {}),
  });
}

/**
 * Publishes a cancel to a replica and resolves once the replica has handled it (it answers a
 * cancel that has a reply subject after acting on it), so a test needs no sleep to know.
 */
export async function cancelOnReplica(nc: NatsConnection, replicaId: string, cancel: Cancel): Promise<void> {
  await nc.request(replicaCancelSubject(replicaId), encodeCancel(cancel), { timeout: 5_000 });
}

/** Heartbeats for routers that exist only in a test, so a replica's orphan watch keeps their work. */
export class RouterBeats {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly nc: NatsConnection,
    private readonly ids: readonly string[],
    private readonly intervalMs = 100,
  ) {
    this.beat();
    this.timer = setInterval(() => this.beat(), intervalMs);
  }

  private beat(): void {
    for (const id of this.ids) {
      this.nc.publish(
        routerHeartbeatSubject(id),
        encodeRouterHeartbeat({
          id,
          state: 'ready',
          inFlight: 1,
          sentAt: Date.now(),
          intervalMs: this.intervalMs,
        }),
      );
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** The value of one series (`name{labels}` exactly as exposed) in Prometheus text; 0 when absent. */
export function seriesValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Reads an actor's metrics page and returns one series' value (0 while the series does not exist). */
export async function scrape(url: string, series: string): Promise<number> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return seriesValue(await res.text(), series);
}

/** The uninterrupted greedy run of `req` on the reference engine. */
export async function referenceRun(
  engine: Engine,
  req: GenerateRequest,
): Promise<{ tokenIds: number[]; text: string }> {
  const { model: _model, ...params } = req;
  return engine.generate(params);
}

/**
 * How many leading tokens of `tokenIds` it takes for their text to contain `stop`: the resume cut
 * right after the token that completes the stop string.
 */
export function tokensToComplete(engine: Engine, tokenIds: readonly number[], stop: string): number {
  const decoder = new TextDecoder();
  const bytes: number[] = [];
  for (let k = 0; k < tokenIds.length; k++) {
    bytes.push(...(engine.tokenizer.tokenBytes[tokenIds[k]!] ?? []));
    if (decoder.decode(new Uint8Array(bytes)).includes(stop)) return k + 1;
  }
  throw new Error(`the tokens never complete ${JSON.stringify(stop)}`);
}

/** What a client stream delivered so far, and how it ended once `done` settles. */
export interface Consumed {
  tokenIds: number[];
  text: string;
  /** Epoch ms of the first delta. */
  firstDeltaAt?: number;
  result?: StreamResult;
  error?: Error;
}

/**
 * Reads a client stream to its end; `done` never rejects (a failure lands in `error`), so a stream
 * that fails while the test awaits something else is no unhandled rejection.
 */
export function consume(stream: ClientStream): { got: Consumed; done: Promise<Consumed> } {
  const got: Consumed = { tokenIds: [], text: '' };
  const done = (async () => {
    try {
      for await (const delta of stream) {
        got.firstDeltaAt ??= Date.now();
        got.tokenIds.push(...delta.tokenIds);
        got.text += delta.text;
      }
      got.result = await stream.result;
    } catch (err) {
      got.error = err instanceof Error ? err : new Error(String(err));
    }
    return got;
  })();
  return { got, done };
}

/** The sum of every series of metric `name` (all label sets) in Prometheus text. */
export function metricTotal(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.split(' ').at(-1));
  }
  return total;
}

/** Reads an actor's metrics page and sums metric `name` over its label sets. */
export async function scrapeTotal(url: string, name: string): Promise<number> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return metricTotal(await res.text(), name);
}
