/**
 * Messages between the engine's main-thread handle and its worker thread. Structured-cloned by
 * `postMessage`; one `events` message per forward pass carries every request's output of that
 * pass, so the main thread wakes once per step, not once per token.
 */
import type { SessionSettings } from './onnx-decoder.ts';
import type { ModelInfo } from './model-info.ts';
import type { ScheduledRequest, SchedulerLimits, SchedulerStats, StepEvent, StepInfo } from './step.ts';
import type { StartupFailure } from '../errors/errors.ts';

/** Faults the chaos suite can inject into a live engine (refused unless enabled). */
export interface FaultSettings {
  /** While true the engine takes no step: the process answers, the inference path is stuck. */
  stall?: boolean;
  /** Extra delay before every step, in ms. */
  stepDelayMs?: number;
  /** The next N forward passes fail as if onnxruntime had thrown. */
  failSteps?: number;
  /**
   * The engine's inference worker (`worker`) or tokenizer worker (`tokenizer`) throws an uncaught
   * error and dies: the engine fails, its requests end with engine_failed, a replica restarts.
   */
  crash?: 'worker' | 'tokenizer';
}

/** What the worker is started with (`workerData`). */
export interface WorkerInit {
  info: ModelInfo;
  settings: SessionSettings;
  limits: SchedulerLimits;
  tokenBytes: Uint8Array[];
}

/** Main thread → worker. */
export type ToWorker =
  | { type: 'submit'; req: ScheduledRequest }
  | { type: 'cancel'; id: number }
  | { type: 'fault'; fault: FaultSettings }
  | { type: 'stop' };

/** Worker → main thread. */
export type FromWorker =
  /** `pace`: forward passes of the device warm-up, `[tokens, ms]` (empty on the CPU). */
  | { type: 'ready'; info: ModelInfo; pace: Array<[number, number]> }
  /** Sent just before a forward pass: its start (epoch ms) and size (rows × new positions). */
  | { type: 'step-start'; startedAt: number; tokens: number }
  /** `stepEnded`: the forward pass announced by the last `step-start` is over (done or failed). */
  | { type: 'events'; events: StepEvent[]; stats: SchedulerStats; step?: StepInfo; stepEnded: boolean }
  | { type: 'failed'; reason: StartupFailure; message: string }
  | { type: 'stopped' };
