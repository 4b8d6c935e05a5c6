/**
 * The engine's tokenizer thread: renders chat templates and encodes prompts, so that a prompt at
 * the size limit (about 0.56 s for 262,144 characters with the bundled tokenizer) never holds up
 * the actor's event loop (heartbeats, NATS I/O) nor the inference worker's steps. Requests are
 * served one at a time, in order; the engine bounds how many wait.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InvalidRequestError } from '../errors/errors.ts';
import { ModelTokenizer } from './tokenizer.ts';
import type { FromTokenizer, ToTokenizer } from './tokenizer-protocol.ts';

const port = parentPort;
if (!port) throw new Error('tokenizer worker must run in a worker thread');
const { dir } = workerData as { dir: string };

function post(msg: FromTokenizer, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

let tokenizer: ModelTokenizer;
try {
  tokenizer = await ModelTokenizer.load(dir);
} catch (err) {
  post({ type: 'failed', message: (err as Error).message });
  process.exit(0);
}

port.on('message', (msg: ToTokenizer) => {
  if (msg.type === 'crash') {
    setImmediate(() => {
      throw new Error('injected fault: tokenizer worker crashed');
    });
    return;
  }
  const { id, input } = msg;
  try {
    const text = 'text' in input ? input.text : tokenizer.applyChatTemplate(input.messages);
    const ids = Int32Array.from(tokenizer.encode(text));
    post({ type: 'encoded', id, ids }, [ids.buffer]);
  } catch (err) {
    const message = (err as Error).message;
    post(
      err instanceof InvalidRequestError ? { type: 'refused', id, message } : { type: 'error', id, message },
    );
  }
});

post({ type: 'ready' });
