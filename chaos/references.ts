/**
 * The load's requests and their reference outputs, computed before the cluster starts with an
 * in-process Engine on the bundled model and the replicas' engine settings: greedy and seeded
 * requests at temperature ≤ 0.7 are exact (README, "Exactness, measured"), so a request that
 * completes under faults must match its reference token for token.
 */
import { Engine } from '../src/engine/engine.ts';
import { requireChaosModel } from './paths.ts';
import type { OperationRequest } from './history/types.ts';
import type { LoadItem } from './load-protocol.ts';

/** The hottest temperature whose seeded output is still exact. */
const MAX_EXACT_TEMPERATURE = 0.7;

const PROMPTS = ['The yard at night', 'Weather report:', 'Bread needs', 'A switch in the rails'];

/** Fixed requests, half greedy and half seeded at 0.5; `ignoreEos` keeps every stream long. */
export function loadRequests(maxTokens: number): OperationRequest[] {
  return PROMPTS.flatMap((prompt, i): OperationRequest[] => [
    { model: 'tiny-gpt2', prompt, maxTokens, temperature: 0, ignoreEos: true },
    { model: 'tiny-gpt2', prompt, maxTokens, temperature: 0.5, topP: 0.9, seed: 100 + i, ignoreEos: true },
  ]);
}

/** Each request with its reference (when exact), from one in-process engine. */
export async function withReferences(requests: OperationRequest[]): Promise<LoadItem[]> {
  const engine = await Engine.start({
    modelDir: requireChaosModel(),
    intraOpThreads: 1,
    interOpThreads: 1,
  });
  try {
    const items: LoadItem[] = [];
    for (const request of requests) {
      if (
        (request.temperature ?? 1) > MAX_EXACT_TEMPERATURE ||
        (request.temperature !== 0 && request.seed === undefined)
      ) {
        items.push({ request });
        continue;
      }
      const { model: _model, ...params } = request;
      const got = await engine.generate(params);
      items.push({
        request,
        reference: { tokenIds: got.tokenIds, text: got.text, finishReason: got.finishReason },
      });
    }
    return items;
  } finally {
    await engine.stop();
  }
}
