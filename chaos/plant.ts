/**
 * The runner's self-test (`--plant duplicate|drop-end|change-token`): corrupts one recorded
 * operation of the real history before it is checked, so that a run proves, end to end, that
 * the checker and the report catch each kind of fault. A planted run must fail. The capture
 * kinds (`--plant duplicate-event|drop-event`) corrupt the live capture instead (chaos/capture.ts).
 */
import type { History, Operation, Verdict } from './history/types.ts';

/** The kinds of planted fault and the verdict each must get. */
export const PLANTS = {
  /** A chunk delivered twice (same seq, same tokens). */
  duplicate: 'duplicated',
  /** The stream's end dropped: the client never hears how the request ended. */
  'drop-end': 'lost',
  /** One token changed. */
  'change-token': 'completed_different',
} as const satisfies Record<string, Verdict>;

export type PlantKind = keyof typeof PLANTS;

/** The kinds of planted capture fault and what the capture check must find. */
export const CAPTURE_PLANTS = {
  /** A second final event of one completed request, under another message id. */
  'duplicate-event': 'a duplicate',
  /** One completed request's record deleted from the records bucket. */
  'drop-event': 'a record lost by the collector',
} as const;

export type CapturePlantKind = keyof typeof CAPTURE_PLANTS;

/** True when `s` names a capture plant kind. */
export function isCapturePlantKind(s: string): s is CapturePlantKind {
  return Object.hasOwn(CAPTURE_PLANTS, s);
}

/** True when `s` names a plant kind. */
export function isPlantKind(s: string): s is PlantKind {
  return Object.hasOwn(PLANTS, s);
}

/** Why a plant could not be made: the history has no operation fit to corrupt. */
export class NothingToPlantError extends Error {
  constructor(kind: PlantKind, scenario: string) {
    super(
      `--plant ${kind}: ${scenario} has no operation that completed with at least 2 chunks and a reference`,
    );
    this.name = 'NothingToPlantError';
  }
}

/**
 * Corrupts the first operation that completed ok with a reference and at least 2 chunks, in place;
 * returns its id. The history records what was planted (`history.planted`).
 */
export function plant(history: History, kind: PlantKind): string {
  const op = history.operations.find(
    (o: Operation) => o.outcome.kind === 'ok' && o.reference !== undefined && o.chunks.length >= 2,
  );
  if (op === undefined) throw new NothingToPlantError(kind, history.scenario);
  const chunk = op.chunks[1]!;
  if (kind === 'duplicate') op.chunks.splice(2, 0, { ...chunk, tokenIds: [...chunk.tokenIds] });
  else if (kind === 'drop-end') op.outcome = { kind: 'unknown', at: op.chunks[op.chunks.length - 1]!.at };
  else {
    // Token and text both: HTTP operations are compared by text (they carry no token ids).
    chunk.tokenIds = chunk.tokenIds.map((t, i) => (i === 0 ? t + 1 : t));
    chunk.text = `${chunk.text}\u2042`;
  }
  history.planted = { kind, operation: op.id, expectedVerdict: PLANTS[kind] };
  return op.id;
}
