/**
 * One choice of a response, whatever produced it: a live generation through the cluster, or a
 * replay of a cached one. Both look the same to the response writers — text deltas in order,
 * then an outcome — so a cache hit streams exactly like a generation.
 */
import type { SwitchyardClient } from '../client/client.ts';
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import type { Usage } from '../cluster/messages/stream.ts';
import { CancelledError } from '../errors/errors.ts';
import type { OpenAiFinishReason } from './openai-response.ts';
import type { CachedGeneration } from './policy.ts';

/** How a choice ended. */
export interface ChoiceOutcome {
  finishReason: OpenAiFinishReason;
  usage: Usage;
  /** The model version that produced it (live generations, when the cluster reports it). */
  modelVersion?: string;
  /** Token ids of the whole choice (for the cache). */
  tokenIds: number[];
  /** Came from the cache: costs no tokens. */
  cached: boolean;
}

/** A choice being produced: iterate `deltas` once, then await `outcome`. */
export interface ChoiceRun {
  deltas: AsyncIterable<string>;
  /** Settles after the deltas end; rejects with the generation's `SwitchyardError`. Never unhandled. */
  outcome: Promise<ChoiceOutcome>;
  /** Completion tokens the cluster delivered so far (a cache replay: 0, it costs none). */
  delivered(): number;
  /**
   * The model version the cluster pinned the choice to, once a router's ack or the first chunk
   * said (before the first delta); undefined for a cache replay and before the ack.
   */
  modelVersion(): string | undefined;
}

/** How a live choice is sent. */
export interface LiveChoiceOptions {
  requestId: string;
  timeoutMs: number;
  signal: AbortSignal;
  /** The caller's API key id, where keys are configured (`Sy-Key-Id`). */
  keyId?: string;
}

/** Sends `request` through the cluster now. */
export function liveChoice(
  client: SwitchyardClient,
  request: GenerateRequest,
  opts: LiveChoiceOptions,
): ChoiceRun {
  const stream = client.stream(request, opts);
  const tokenIds: number[] = [];
  async function* texts(): AsyncGenerator<string> {
    for await (const delta of stream) {
      tokenIds.push(...delta.tokenIds);
      yield delta.text;
    }
  }
  const outcome = stream.result.then((r): ChoiceOutcome => {
    // Only a cancel ends a stream as 'cancelled'; OpenAI has no such finish reason.
    if (r.finishReason === 'cancelled') throw new CancelledError('the generation was cancelled');
    const out: ChoiceOutcome = { finishReason: r.finishReason, usage: r.usage, tokenIds, cached: false };
    if (r.modelVersion !== undefined) out.modelVersion = r.modelVersion;
    return out;
  });
  outcome.catch(() => undefined);
  return {
    deltas: texts(),
    outcome,
    delivered: () => tokenIds.length,
    modelVersion: () => stream.modelVersion,
  };
}

/** Replays a cached generation as one delta. */
export function cachedChoice(hit: CachedGeneration): ChoiceRun {
  async function* texts(): AsyncGenerator<string> {
    if (hit.text !== '') yield await Promise.resolve(hit.text);
  }
  return {
    deltas: texts(),
    outcome: Promise.resolve({
      finishReason: hit.finishReason,
      usage: { promptTokens: hit.promptTokens, completionTokens: hit.completionTokens },
      tokenIds: hit.tokenIds,
      cached: true,
    }),
    delivered: () => 0,
    modelVersion: () => undefined,
  };
}

/**
 * Runs `work` on every choice at once. The first failure aborts `abort` (so the siblings'
 * generations are cancelled at the replicas) and is what this rejects with.
 */
export async function allChoices<T>(
  runs: readonly ChoiceRun[],
  abort: AbortController,
  work: (run: ChoiceRun, index: number) => Promise<T>,
): Promise<T[]> {
  let failure: { err: unknown } | undefined;
  const results = await Promise.all(
    runs.map((run, index) =>
      work(run, index).catch((err: unknown) => {
        failure ??= { err };
        abort.abort();
        return undefined;
      }),
    ),
  );
  if (failure !== undefined) throw failure.err;
  return results as T[];
}
