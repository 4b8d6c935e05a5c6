/**
 * Counts what crosses between the host and onnxruntime, from the outside: a wrapper over
 * `session.run` and over the tensors it returns, not the KV cache's own belief. Used by the
 * device tests (no KV tensor read back, every GPU buffer released) and by `bench:gpu` (host
 * bytes per step).
 *
 * Host bytes are the bytes of every tensor that lives in JS memory (`location === 'cpu'`) and is
 * fed to a run or returned by one. On the CPU provider that is everything, the KV cache included
 * (what a GPU provider without device-resident outputs copies each step); on WebGPU with
 * `gpu-buffer` outputs it is the ids, the mask and the logits sampling needs.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';

/** What one meter has seen so far. */
export interface OrtCounts {
  runs: number;
  /** Bytes of host tensors fed to runs. */
  hostBytesIn: number;
  /** Bytes of host tensors returned by runs. */
  hostBytesOut: number;
  /** `gpu-buffer` tensors returned by runs. */
  gpuCreated: number;
  /** Of those, disposed. */
  gpuDisposed: number;
  /** Past KV feeds with at least one position, by where they lived. */
  pastFedOnGpu: number;
  pastFedOnHost: number;
  /** Host-resident KV tensors (past fed or present returned) with at least one position. */
  kvOnHost: number;
  /** Reads of a `gpu-buffer` tensor's contents (`getData`, `data`): refused, never performed. */
  gpuReads: number;
}

const PAST = /^past_key_values\./;
const KV = /^(past_key_values|present)\./;

function bytesOf(t: Tensor): number {
  const size = t.dims.reduce((a, b) => a * b, 1);
  switch (t.type) {
    case 'int64':
    case 'uint64':
    case 'float64':
      return size * 8;
    case 'bool':
    case 'int8':
    case 'uint8':
      return size;
    case 'float16':
    case 'int16':
    case 'uint16':
      return size * 2;
    default:
      return size * 4;
  }
}

/** A KV tensor [B, H, L, D] with L > 0. */
function holdsPositions(t: Tensor): boolean {
  return t.dims.length === 4 && (t.dims[2] ?? 0) > 0;
}

export class OrtMeter {
  private readonly c: OrtCounts = {
    runs: 0,
    hostBytesIn: 0,
    hostBytesOut: 0,
    gpuCreated: 0,
    gpuDisposed: 0,
    pastFedOnGpu: 0,
    pastFedOnHost: 0,
    kvOnHost: 0,
    gpuReads: 0,
  };

  /** A copy of the counts. */
  counts(): OrtCounts {
    return { ...this.c };
  }

  /** `gpu-buffer` tensors returned and not yet disposed. */
  get liveGpuBuffers(): number {
    return this.c.gpuCreated - this.c.gpuDisposed;
  }

  /** Host bytes in and out so far. */
  get hostBytes(): number {
    return this.c.hostBytesIn + this.c.hostBytesOut;
  }

  /** Wraps `session.run` in place; returns the same session. */
  attach<S extends InferenceSession>(session: S): S {
    const run: (feeds: InferenceSession.FeedsType) => Promise<InferenceSession.ReturnType> =
      session.run.bind(session);
    const wrapped = async (feeds: InferenceSession.FeedsType): Promise<InferenceSession.ReturnType> => {
      this.c.runs++;
      for (const [name, t] of Object.entries(feeds)) {
        const onHost = t.location === 'cpu';
        if (onHost) this.c.hostBytesIn += bytesOf(t);
        if (PAST.test(name) && holdsPositions(t)) {
          if (onHost) this.c.pastFedOnHost++;
          else this.c.pastFedOnGpu++;
        }
        if (onHost && KV.test(name) && holdsPositions(t)) this.c.kvOnHost++;
      }
      const out = await run(feeds);
      for (const [name, t] of Object.entries(out)) this.adoptOutput(name, t);
      return out;
    };
    (session as { run: unknown }).run = wrapped;
    return session;
  }

  private adoptOutput(name: string, t: Tensor): void {
    if (t.location === 'cpu') {
      this.c.hostBytesOut += bytesOf(t);
      if (KV.test(name) && holdsPositions(t)) this.c.kvOnHost++;
      return;
    }
    if (t.location !== 'gpu-buffer') return;
    this.c.gpuCreated++;
    const dispose = t.dispose.bind(t);
    let disposed = false;
    const counts = this.c;
    Object.defineProperty(t, 'dispose', {
      value: () => {
        if (!disposed) {
          disposed = true;
          counts.gpuDisposed++;
        }
        dispose();
      },
    });
    // getData() on a gpu-buffer tensor kills onnxruntime-node's process (DESIGN.md): refuse it here.
    Object.defineProperty(t, 'getData', {
      value: () => {
        counts.gpuReads++;
        return Promise.reject(new Error(`refused: reading gpu-buffer tensor ${name} back to the host`));
      },
    });
    Object.defineProperty(t, 'data', {
      get: () => {
        counts.gpuReads++;
        throw new Error(`refused: reading gpu-buffer tensor ${name} back to the host`);
      },
    });
  }
}
