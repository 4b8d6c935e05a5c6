/**
 * A scripted stand-in for a router, for unit tests of the client's logic: it serves the real
 * front door (queue group included), heartbeats on the real subject and records the cancels it
 * receives, but what it answers is up to each test. The real router is tested end to end elsewhere.
 */
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { readRequestMeta, type RequestMeta } from '../../src/cluster/headers.ts';
import { decodeGenerateRequest, type GenerateRequest } from '../../src/cluster/messages/generate.ts';
import { encodeRouterHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { decodeCancel, type Cancel } from '../../src/cluster/messages/stream.ts';
import { StreamResponder } from '../../src/cluster/stream-responder.ts';
import {
  GENERATE_SUBJECT,
  ROUTER_QUEUE_GROUP,
  routerCancelSubject,
  routerHeartbeatSubject,
} from '../../src/cluster/subjects.ts';

/** How often fakes beat: well inside the short silence windows the tests use. */
export const FAKE_HEARTBEAT_MS = 50;

/** One request as the fake received it. */
export interface Received {
  request: GenerateRequest;
  meta: RequestMeta;
  responder: StreamResponder;
  /** The how-many-th request this fake received (1-based). */
  n: number;
}

/** What a fake does with a request; may be async (await sleeps between messages). */
export type Script = (rx: Received, router: FakeRouter) => void | Promise<void>;

/** A router that follows a script. */
export class FakeRouter {
  readonly id: string;
  readonly received: Received[] = [];
  readonly cancels: Cancel[] = [];
  private readonly nc: NatsConnection;
  private readonly script: Script;
  private frontDoor: Subscription | undefined;
  private cancelSub: Subscription | undefined;
  private beat: NodeJS.Timeout | undefined;
  private cancelWaiters: Array<() => void> = [];

  private constructor(nc: NatsConnection, id: string, script: Script) {
    this.nc = nc;
    this.id = id;
    this.script = script;
  }

  /** Subscribes and starts beating; resolves once the server has the subscriptions. */
  static async start(nc: NatsConnection, id: string, script: Script): Promise<FakeRouter> {
    const router = new FakeRouter(nc, id, script);
    router.cancelSub = nc.subscribe(routerCancelSubject(id), {
      callback: (_err, msg) => {
        router.cancels.push(decodeCancel(msg.data));
        for (const wake of router.cancelWaiters.splice(0)) wake();
      },
    });
    router.frontDoor = nc.subscribe(GENERATE_SUBJECT, {
      queue: ROUTER_QUEUE_GROUP,
      callback: (_err, msg) => router.onRequest(msg.data, msg.headers, msg.reply ?? ''),
    });
    router.sendBeat();
    router.beat = setInterval(() => router.sendBeat(), FAKE_HEARTBEAT_MS);
    await nc.flush();
    return router;
  }

  /** Leaves the front door and stops beating, but still hears cancels: alive yet cut off. */
  async freeze(): Promise<void> {
    clearInterval(this.beat);
    this.frontDoor?.unsubscribe();
    await this.nc.flush();
  }

  /** Stops everything. */
  async stop(): Promise<void> {
    await this.freeze();
    this.cancelSub?.unsubscribe();
    await this.nc.flush();
  }

  /** Resolves when a cancel for `requestId` has arrived (or rejects after `timeoutMs`). */
  async waitForCancel(requestId: string, timeoutMs = 2_000): Promise<Cancel> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = this.cancels.find((c) => c.requestId === requestId);
      if (found !== undefined) return found;
      const left = until - Date.now();
      if (left <= 0) throw new Error(`router ${this.id} got no cancel for ${requestId}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.cancelWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private onRequest(data: Uint8Array, headers: Parameters<typeof readRequestMeta>[0], reply: string): void {
    const meta = readRequestMeta(headers);
    const rx: Received = {
      request: decodeGenerateRequest(data),
      meta,
      responder: new StreamResponder(this.nc, reply, { requestId: meta.requestId }),
      n: this.received.length + 1,
    };
    this.received.push(rx);
    void Promise.resolve(this.script(rx, this)).catch((err: unknown) => {
      process.emitWarning(`fake router ${this.id} script failed: ${String(err)}`);
    });
  }

  private sendBeat(): void {
    this.nc.publish(
      routerHeartbeatSubject(this.id),
      encodeRouterHeartbeat({
        id: this.id,
        state: 'ready',
        inFlight: 0,
        sentAt: Date.now(),
        intervalMs: FAKE_HEARTBEAT_MS,
      }),
    );
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
