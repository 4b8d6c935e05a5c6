/**
 * What an actor started by `up` tells its parent over the IPC channel that `child_process.fork`
 * opens: that it is ready (and serving what), or why it failed to start.
 */

/** A child's report to `up`. */
export type ChildMessage =
  | {
      type: 'ready';
      role: string;
      id: string;
      /** e.g. `tiny-gpt2@1, cpu`, for the summary */ detail?: string;
      /** Where it serves HTTP (the bridge: the real port when it was asked for port 0). */
      url?: string;
    }
  | { type: 'failed'; message: string };

/** True when this process was forked by `up` (it has an IPC channel to a parent). */
export function hasParent(): boolean {
  return typeof process.send === 'function' && process.connected;
}

let readySent = false;

/** True once this process told `up` it is ready: a later failure is no start-up failure. */
export function reportedReady(): boolean {
  return readySent;
}

/**
 * Sends a report to `up`; resolves once it is handed to the channel, so that a process may exit
 * right after a `failed` report without losing it. Does nothing without a parent.
 */
export function tellParent(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!hasParent() || process.send === undefined) {
      resolve();
      return;
    }
    if (message.type === 'ready') readySent = true;
    process.send(message, undefined, {}, () => resolve());
  });
}

/** Decodes a message from a child; anything else on the channel is ignored. */
export function decodeChildMessage(value: unknown): ChildMessage | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  if (m.type === 'ready' && typeof m.role === 'string' && typeof m.id === 'string') {
    return {
      type: 'ready',
      role: m.role,
      id: m.id,
      detail: typeof m.detail === 'string' ? m.detail : undefined,
      url: typeof m.url === 'string' ? m.url : undefined,
    };
  }
  if (m.type === 'failed' && typeof m.message === 'string') return { type: 'failed', message: m.message };
  return undefined;
}
