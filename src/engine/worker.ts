/**
 * The engine's worker thread: owns the onnxruntime session and the scheduler, and runs the step
 * loop. Inference is synchronous inside onnxruntime-node, so it runs here and never on the
 * actor's event loop (NATS I/O and heartbeats stay on time under full load).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setImmediate as yieldToMessages, setTimeout as sleep } from 'node:timers/promises';
import { StartupError } from '../errors/errors.ts';
import { OnnxDecoder } from './onnx-decoder.ts';
import { Scheduler, type StepEvent } from './scheduler.ts';
import type { FaultSettings, FromWorker, ToWorker, WorkerInit } from './worker-protocol.ts';

const port = parentPort;
if (!port) throw new Error('engine worker must run in a worker thread');
const init = workerData as WorkerInit;

function post(msg: FromWorker): void {
  port!.postMessage(msg);
}

let decoder: OnnxDecoder;
try {
  decoder = await OnnxDecoder.load(init.info, init.settings);
} catch (err) {
  const reason = err instanceof StartupError ? err.reason : 'model_corrupt';
  post({ type: 'failed', reason, message: (err as Error).message });
  process.exit(0);
}

const scheduler = new Scheduler(decoder, init.tokenBytes, init.limits);
const fault: Required<FaultSettings> = { stall: false, stepDelayMs: 0, failSteps: 0 };
let stopping = false;
let wake: (() => void) | undefined;

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'submit':
      scheduler.submit(msg.req);
      break;
    case 'cancel': {
      const ended = scheduler.cancel(msg.id);
      if (ended) flush([ended]);
      break;
    }
    case 'fault':
      Object.assign(fault, msg.fault);
      break;
    case 'stop':
      stopping = true;
      break;
  }
  wake?.();
});

function flush(events: StepEvent[]): void {
  const step = scheduler.takeStep();
  if (events.length > 0 || step !== undefined) {
    post({ type: 'events', events, stats: scheduler.stats(), ...(step === undefined ? {} : { step }) });
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

post({ type: 'ready', info: init.info });

while (!stopping) {
  if (!scheduler.hasWork || fault.stall) {
    await idle();
    continue;
  }
  if (fault.stepDelayMs > 0) await sleep(fault.stepDelayMs);
  if (fault.failSteps > 0) {
    fault.failSteps--;
    const events: StepEvent[] = [];
    scheduler.failAll(events, 'injected fault: forward pass failed');
    flush(events);
  }
  flush(await scheduler.prefill());
  flush(await scheduler.decode());
  await yieldToMessages();
}

await decoder.release();
post({ type: 'stopped' });
port.close(); // nothing else keeps the thread alive: it exits
