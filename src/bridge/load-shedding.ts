/**
 * The bridge's own bound on generations in flight. Under overload a refusal must cost less than
 * the work it refuses: a request the routers will refuse anyway still costs a NATS round trip and
 * a router's turn, and at 10× capacity on a small machine the routers' inboxes then grow until a
 * refusal takes seconds (chaos `overload`: p50 11 s, some requests hung). So a bridge refuses with
 * `busy` (429 + Retry-After), before any NATS traffic, a generation beyond what the live replicas
 * of its model can hold at all: their batches plus their queues, as their heartbeats say. The
 * routers' own admission still decides what fits; with several bridges each is bounded alone, so
 * together they may send the routers a few times the cluster's slots, never an unbounded number.
 */
import { BusyError } from '../errors/errors.ts';
import type { ReplicaView } from './cluster-view.ts';

/** Slots of the live replicas of `model`: each one's batch plus queue (what its `busy` guards). */
export function clusterSlots(replicas: readonly ReplicaView[], model: string): number {
  let slots = 0;
  for (const r of replicas) if (r.live && r.model === model) slots += r.maxBatchSize + r.maxQueue;
  return slots;
}

/** Counts this bridge's generations in flight per model and refuses those past the cluster's slots. */
export class LoadShedder {
  private readonly inFlight = new Map<string, number>();

  /** @param replicas the cluster view's replicas now (read on every admission: soft state). */
  constructor(private readonly replicas: () => readonly ReplicaView[]) {}

  /** Generations of `model` in flight on this bridge. */
  count(model: string): number {
    return this.inFlight.get(model) ?? 0;
  }

  /**
   * Takes `n` slots for `model` and returns their release (idempotent), or throws `BusyError`.
   * With no live replica of the model known there is no bound here: the routers answer
   * `unavailable` or `model_not_found`, which a bridge must not guess. A bridge with nothing in
   * flight admits any request, however many choices it has: the routers judge it.
   */
  admit(model: string, n: number): () => void {
    const slots = clusterSlots(this.replicas(), model);
    const now = this.count(model);
    if (slots > 0 && now > 0 && now + n > slots) {
      throw new BusyError(
        `this bridge has ${now} generations of ${model} in flight, as many as its live replicas hold (${slots}: batches plus queues); retry later`,
      );
    }
    this.inFlight.set(model, now + n);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = this.count(model) - n;
      if (left <= 0) this.inFlight.delete(model);
      else this.inFlight.set(model, left);
    };
  }
}
