/**
 * The engine's worker thread: owns the onnxruntime session and the scheduler, and runs the step
 * loop. Inference is synchronous inside onnxruntime-node, so it runs here and never on the
 * actor's event loop (NATS I/O and heartbeats stay on time under full load).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setImmediate as yieldToMessages, setTimeout as sleep } from 'node:timers/promises';
import { StartupError } from '../errors/errors.ts';
import { formatDevice } from './device.ts';
import { OnnxDecoder } from './onnx-decoder.ts';
import { Scheduler } from './scheduler.ts';
import type { StepEvent } from './step.ts';
import type { FaultSettings, FromWorker, ToWorker, WorkerInit } from './worker-protocol.ts';

const port = parentPort;
if (!port) throw new Error('engine worker must run in a worker thread');
const init = workerData as WorkerInit;

function post(msg: FromWorker): void {
  port!.postMessage(msg);
}

let decoder: OnnxDecoder;
let pace: Array<[number, number]>;
try {
  decoder = await OnnxDecoder.load(init.info, init.settings);
  try {
    pace = await decoder.warmUp();
  } catch (err) {
    throw new StartupError(
      'device_unavailable',
      `device ${formatDevice(init.settings.device)} failed its warm-up forward pass: ${(err as Error).message}`,
      { cause: err },
    );
  }
} catch (err) {
  const reason = err instanceof StartupError ? err.reason : 'model_corrupt';
  post({ type: 'failed', reason, message: (err as Error).message });
  process.exit(0);
}

const scheduler = new Scheduler(decoder, init.tokenBytes, init.limits);
let stepOpen = false;
scheduler.onStepStart = (startedAt, tokens) => {
  stepOpen = true;
  post({ type: 'step-start', startedAt, tokens });
};
const fault: Required<Omit<FaultSettings, 'crash'>> = { stall: false, stepDelayMs: 0, failSteps: 0 };
let stopping = false;
let wake: (() => void) | undefined;

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'submit':
      scheduler.submit(msg.req);
      break;
    case 'cancel': {
      const ended = scheduler.cancel(msg.id);
      // May arrive while a forward pass is under way: it ends no step.
      if (ended) post({ type: 'events', events: [ended], stats: scheduler.stats(), stepEnded: false });
      break;
    }
    case 'fault': {
      const { crash, ...settings } = msg.fault;
      Object.assign(fault, settings);
      if (crash === 'worker') {
        // Thrown outside the step loop's catch, as a bug in a callback would be: the thread dies.
        setImmediate(() => {
          throw new Error('injected fault: engine worker crashed');
        });
      }
      break;
    }
    case 'stop':
      stopping = true;
      break;
  }
  wake?.();
});

/** Sends a step's events, the step itself (metrics), and whether it closed a forward pass. */
function flush(events: StepEvent[]): void {
  const step = scheduler.takeStep();
  const stepEnded = stepOpen;
  stepOpen = false;
  if (events.length > 0 || step !== undefined || stepEnded) {
    post({
      type: 'events',
      events,
      stats: scheduler.stats(),
      stepEnded,
      ...(step === undefined ? {} : { step }),
    });
  }
}

function idle(): Promise<void> {
  return new Promise((resolve) => {
    wake = () => {
      wake = undefined;
      resolve();
    };
  });
}

post({ type: 'ready', info: init.info, pace });

while (!stopping) {
  if (!scheduler.hasWork || fault.stall) {
    await idle();
    continue;
  }
  try {
    if (fault.stepDelayMs > 0) await sleep(fault.stepDelayMs);
    if (fault.failSteps > 0) {
      fault.failSteps--;
      const events: StepEvent[] = [];
      scheduler.failAll(events, 'injected fault: forward pass failed');
      flush(events);
    }
    flush(await scheduler.prefill());
    flush(await scheduler.decode());
  } catch (err) {
    // Last resort: a bug outside the per-request and per-batch handling. What was admitted
    // fails (its state is not to be trusted); the worker lives on and serves the queue.
    const events: StepEvent[] = [];
    scheduler.recover(events, `engine step failed: ${(err as Error).message}`);
    flush(events);
  }
  await yieldToMessages();
}

await decoder.release();
post({ type: 'stopped' });
port.close(); // nothing else keeps the thread alive: it exits
