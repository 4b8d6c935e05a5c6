/** The engine's view of a request's parameters (the schema itself is in cluster/messages/params.ts). */
import type { GenerateParams } from '../cluster/messages/params.ts';
import type { SamplingParams } from './sampling.ts';

/** Sampling parameters with defaults filled in; `seed` must already be settled. */
export function samplingOf(p: GenerateParams, seed: number): SamplingParams {
  return {
    temperature: p.temperature ?? 1,
    topK: p.topK ?? 0,
    topP: p.topP ?? 1,
    presencePenalty: p.presencePenalty ?? 0,
    frequencyPenalty: p.frequencyPenalty ?? 0,
    seed,
  };
}
