/**
 * One wildcard subscription per connection for every streamed reply, as nats.js muxes its
 * request/reply: `<prefix>.<nuid>.*`, dispatched on the last token. A subscription per stream
 * would cost a SUB and an UNSUB round of server interest for every request on every hop, which
 * is most of a router's per-request work at high rates.
 */
import { createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';

/** Receives the messages of one stream, or the subscription's failure. */
export type ReplyHandler = (err: Error | null, msg: Msg | undefined) => void;

class ReplyMux {
  private readonly handlers = new Map<string, ReplyHandler>();
  private readonly sub: Subscription;
  private next = 0;
  readonly prefix: string;

  constructor(nc: NatsConnection, inboxPrefix: string | undefined) {
    this.prefix = createInbox(inboxPrefix);
    this.sub = nc.subscribe(`${this.prefix}.*`, {
      callback: (err, msg) => {
        if (err) {
          // The server refused the wildcard (permissions): every stream learns it.
          for (const handler of [...this.handlers.values()]) handler(err, undefined);
          return;
        }
        const token = msg.subject.slice(this.prefix.length + 1);
        this.handlers.get(token)?.(null, msg);
      },
    });
  }

  /** A fresh reply subject whose messages go to `handler` until `release()`. */
  register(handler: ReplyHandler): { subject: string; release: () => void } {
    const token = (this.next++).toString(36);
    this.handlers.set(token, handler);
    return { subject: `${this.prefix}.${token}`, release: () => this.handlers.delete(token) };
  }

  get closed(): boolean {
    return this.sub.isClosed();
  }
}

const muxes = new WeakMap<NatsConnection, Map<string, ReplyMux>>();

/**
 * The requester identity of a connection's streamed requests: its reply mux's subject prefix,
 * which is what routers key requests by (all but the last token of the reply subject).
 */
export function replyRequester(nc: NatsConnection, inboxPrefix?: string): string {
  return replyMux(nc, inboxPrefix).prefix;
}

/** The reply mux of a connection (one per inbox prefix), created on first use. */
export function replyMux(nc: NatsConnection, inboxPrefix?: string): ReplyMux {
  let byPrefix = muxes.get(nc);
  if (!byPrefix) muxes.set(nc, (byPrefix = new Map<string, ReplyMux>()));
  const key = inboxPrefix ?? '';
  let mux = byPrefix.get(key);
  if (!mux || mux.closed) byPrefix.set(key, (mux = new ReplyMux(nc, inboxPrefix)));
  return mux;
}
