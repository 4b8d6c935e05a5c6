/**
 * Single flight: while one request computes the value of a key, identical requests wait for it
 * instead of computing it again. Within one process only: bridges do not coordinate, so N
 * bridges may each compute the same key once (the shared cache then holds the last one stored).
 */

/** What a leader settles its key with: the value, or undefined when it has none to share. */
export type Settle<T> = (value: T | undefined) => void;

/** Keys being computed, each with the promise its followers wait on. */
export class SingleFlight<T> {
  readonly #flights = new Map<string, Promise<T | undefined>>();

  /** Keys in flight now. */
  get size(): number {
    return this.#flights.size;
  }

  /**
   * Joins `key`: `{ follow }` with the leader's promise when one computes it, else `{ settle }`:
   * the caller leads now and must call `settle` exactly once (later calls do nothing).
   */
  join(key: string): { follow: Promise<T | undefined> } | { settle: Settle<T> } {
    const running = this.#flights.get(key);
    if (running !== undefined) return { follow: running };
    let resolve!: (value: T | undefined) => void;
    const flight = new Promise<T | undefined>((r) => (resolve = r));
    this.#flights.set(key, flight);
    let settled = false;
    return {
      settle: (value) => {
        if (settled) return;
        settled = true;
        if (this.#flights.get(key) === flight) this.#flights.delete(key);
        resolve(value);
      },
    };
  }
}
