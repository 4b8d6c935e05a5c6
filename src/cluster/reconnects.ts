/**
 * Reconnect notices. nats.js v3 drops publishes made while disconnected, so an actor whose own
 * connection reconnects cannot know which of its stream messages were lost: it fails its
 * in-flight streams over at once instead of waiting out their deadlines.
 */
import type { NatsConnection } from '@nats-io/nats-core';

/** Calls `onReconnect` after every reconnect of `nc` until the returned function is called. */
export function watchReconnects(nc: NatsConnection, onReconnect: () => void): () => void {
  const status = nc.status();
  void (async () => {
    for await (const s of status) {
      if (s.type === 'reconnect') onReconnect();
    }
  })().catch(() => undefined);
  // The iterable nats.js returns is a QueuedIterator; its stop() ends the loop above.
  return () => (status as { stop?: () => void }).stop?.();
}
