/**
 * The load's requests and their reference outputs, computed before the cluster starts with an
 * in-process Engine on each version of the bundled model and the replicas' engine settings: greedy and seeded
 * requests at temperature ≤ 0.7 are exact (README, "Exactness, measured"), so a request that
 * completes under faults must match its reference token for token.
 */
import { Engine } from '../src/engine/engine.ts';
import { CHAOS_MODEL_VERSION_DIRS, requireChaosModel } from './paths.ts';
import type { OperationRequest, Reference, Via } from './history/types.ts';
import type { LoadItem } from './load-protocol.ts';

/** The hottest temperature whose seeded output is still exact. */
const MAX_EXACT_TEMPERATURE = 0.7;

const PROMPTS = ['The yard at night', 'Weather report:', 'Bread needs', 'A switch in the rails'];

/** Chat conversations; the replica renders them with the model's chat template, as the engine here does. */
const CHATS: ReadonlyArray<Array<{ role: string; content: string }>> = [
  [
    { role: 'system', content: 'You answer in one line.' },
    { role: 'user', content: 'Describe the yard at night.' },
  ],
  [{ role: 'user', content: 'What do bread and rails share?' }],
];

/** The temperature of the hot requests: not exact, checked for gaps and duplicates only. */
const HOT_TEMPERATURE = 1.0;

/**
 * Fixed requests: completions and chats, greedy and seeded at 0.5 (exact), plus a few hot ones
 * (seeded at 1.0, and unseeded) that the checker marks unchecked; `ignoreEos` keeps every stream
 * long.
 */
export function loadRequests(maxTokens: number): OperationRequest[] {
  const base = { model: 'tiny-gpt2', maxTokens, ignoreEos: true };
  const completions = PROMPTS.flatMap((prompt, i): OperationRequest[] => [
    { ...base, prompt, temperature: 0 },
    { ...base, prompt, temperature: 0.5, topP: 0.9, seed: 100 + i },
  ]);
  const chats = CHATS.flatMap((messages, i): OperationRequest[] => [
    { ...base, messages, temperature: 0 },
    { ...base, messages, temperature: 0.5, topP: 0.9, seed: 200 + i },
  ]);
  const hot: OperationRequest[] = [
    { ...base, prompt: PROMPTS[0], temperature: HOT_TEMPERATURE, seed: 300 },
    { ...base, prompt: PROMPTS[1], temperature: HOT_TEMPERATURE },
    { ...base, messages: CHATS[1], temperature: HOT_TEMPERATURE },
  ];
  return [...completions, ...chats, ...hot];
}

/** Which door a load client uses: the NATS client library, or one bridge's HTTP API. */
export type Door = 'nats' | 'http';

/**
 * The items a client of `door` sends: every item over NATS; over HTTP, each completion both
 * unstreamed (`http`) and streamed (`http-stream`), each chat streamed (`http-chat`).
 */
export function itemsFor(items: readonly LoadItem[], door: Door): LoadItem[] {
  if (door === 'nats') return items.map((item) => ({ ...item, via: 'nats' }));
  return items.flatMap((item): LoadItem[] => {
    const vias: Via[] = item.request.messages !== undefined ? ['http-chat'] : ['http-stream', 'http'];
    return vias.map((via) => ({ ...item, via }));
  });
}

/**
 * Each request with its reference (when exact) on every model version in `modelDirs`, from one
 * in-process engine per version: `reference` is the first version's (the bundled model the
 * replicas serve unless a scenario swaps), `references` every version's by the version its
 * manifest names, so that a request is judged against the version it completed on.
 */
export async function withReferences(
  requests: OperationRequest[],
  modelDirs: readonly string[] = CHAOS_MODEL_VERSION_DIRS,
): Promise<LoadItem[]> {
  const exact = (r: OperationRequest): boolean =>
    (r.temperature ?? 1) <= MAX_EXACT_TEMPERATURE && (r.temperature === 0 || r.seed !== undefined);
  const byVersion: Array<{ version: string; refs: Array<Reference | undefined> }> = [];
  for (const dir of modelDirs) {
    const engine = await Engine.start({
      modelDir: requireChaosModel(dir),
      intraOpThreads: 1,
      interOpThreads: 1,
    });
    try {
      const refs: Array<Reference | undefined> = [];
      for (const request of requests) {
        if (!exact(request)) {
          refs.push(undefined);
          continue;
        }
        const { model: _model, ...params } = request;
        const got = await engine.generate(params);
        refs.push({ tokenIds: got.tokenIds, text: got.text, finishReason: got.finishReason });
      }
      byVersion.push({ version: engine.info.version, refs });
    } finally {
      await engine.stop();
    }
  }
  return requests.map((request, i): LoadItem => {
    const first = byVersion[0]?.refs[i];
    if (first === undefined) return { request };
    const references: Record<string, Reference> = {};
    for (const { version, refs } of byVersion) {
      const ref = refs[i];
      if (ref !== undefined) references[version] = ref;
    }
    return { request, reference: first, references };
  });
}
