/**
 * The load's requests and their reference outputs, computed before the cluster starts with an
 * in-process Engine on the bundled model and the replicas' engine settings: greedy and seeded
 * requests at temperature ≤ 0.7 are exact (README, "Exactness, measured"), so a request that
 * completes under faults must match its reference token for token.
 */
import { Engine } from '../src/engine/engine.ts';
import { requireChaosModel } from './paths.ts';
import type { OperationRequest, Via } from './history/types.ts';
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
