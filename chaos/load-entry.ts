/**
 * A load client process: sends the plan's requests through SwitchyardClient with the client
 * credential, or (an HTTP client) through one bridge's OpenAI API (chaos/load-http.ts), bounded
 * in count and time, records every chunk of every request as the history format says, and sends
 * the operations back over IPC. Started by chaos/load.ts.
 */
import { LOAD_INBOX_PREFIX } from './capture-requesters.ts';
import { SwitchyardClient } from '../src/client/client.ts';
import { SwitchyardError } from '../src/errors/errors.ts';
import type { ChunkRecord, Operation, Outcome } from './history/types.ts';
import { sendHttp } from './load-http.ts';
import type { FromLoad, LoadItem, LoadPlan, ToLoad } from './load-protocol.ts';

/** How long after a request's deadline the client gives up on it and records it unknown. */
const UNKNOWN_GRACE_MS = 5_000;

/** `fn`, called at most once. */
function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
}

function send(msg: FromLoad): void {
  process.send?.(msg);
}

async function runOne(
  client: SwitchyardClient | undefined,
  plan: LoadPlan,
  item: LoadItem,
  n: number,
  stopped: Promise<void>,
): Promise<Operation> {
  const id = `${plan.client}-${n}`;
  const invokedAt = Date.now();
  const deadline = invokedAt + plan.timeoutMs;
  const chunks: ChunkRecord[] = [];
  const op: Operation = {
    id,
    client: plan.client,
    via: item.via ?? 'nats',
    request: item.request,
    invokedAt,
    deadline,
    chunks,
    outcome: { kind: 'unknown', at: invokedAt },
    ...(item.reference === undefined ? {} : { reference: item.reference }),
    ...(item.references === undefined ? {} : { references: item.references }),
  };
  if (op.via !== 'nats') {
    if (plan.bridgeUrl === undefined) throw new Error(`${plan.client}: ${op.via} items need a bridgeUrl`);
    const abort = new AbortController();
    void stopped.then(() => abort.abort());
    op.outcome = await sendHttp(op, {
      baseUrl: plan.bridgeUrl,
      stopped: abort.signal,
      onStreaming: once(() => send({ type: 'streaming', id, client: plan.client, via: op.via })),
    });
    return op;
  }
  if (client === undefined) throw new Error(`${plan.client}: nats items need a NATS connection`);
  const run = (async (): Promise<Outcome> => {
    try {
      const stream = client.stream(item.request, { timeoutMs: plan.timeoutMs, requestId: id });
      for await (const delta of stream) {
        if (chunks.length === 0) send({ type: 'streaming', id, client: plan.client, via: 'nats' });
        // The version the stream is pinned to now (the ack's, then the first chunk's).
        const version = stream.modelVersion;
        chunks.push({
          seq: chunks.length,
          tokenIds: delta.tokenIds,
          text: delta.text,
          at: Date.now(),
          ...(version === undefined ? {} : { modelVersion: version }),
        });
      }
      const result = await stream.result;
      return {
        kind: 'ok',
        finishReason: result.finishReason,
        completionTokens: result.usage.completionTokens,
        at: Date.now(),
        attempts: result.attempts,
        ...(result.modelVersion === undefined ? {} : { modelVersion: result.modelVersion }),
      };
    } catch (err) {
      const code = err instanceof SwitchyardError ? err.code : 'client_exception';
      return {
        kind: 'error',
        code,
        message: err instanceof Error ? err.message : String(err),
        at: Date.now(),
      };
    }
  })();
  const giveUp = new Promise<Outcome>((resolve) => {
    const timer = setTimeout(
      () => resolve({ kind: 'unknown', at: Date.now() }),
      plan.timeoutMs + UNKNOWN_GRACE_MS,
    );
    timer.unref();
    void stopped.then(() => {
      clearTimeout(timer);
      resolve({ kind: 'unknown', at: Date.now() });
    });
  });
  op.outcome = await Promise.race([run, giveUp]);
  return op;
}

async function runPlan(plan: LoadPlan, stopped: Promise<void>): Promise<Operation[]> {
  const client =
    plan.bridgeUrl === undefined
      ? await SwitchyardClient.connect({
          nats: { servers: plan.servers, nkeySeedFile: plan.nkeySeedFile },
          // One requester for every load client: the capture check finds their records by it.
          inboxPrefix: LOAD_INBOX_PREFIX,
          defaultTimeoutMs: plan.timeoutMs,
        })
      : undefined;
  const operations: Operation[] = [];
  const until = Date.now() + plan.durationMs;
  let next = 0;
  let halted = false;
  void stopped.then(() => (halted = true));
  const worker = async (): Promise<void> => {
    while (!halted && next < plan.count && Date.now() < until) {
      const n = next++;
      const item = plan.items[n % plan.items.length]!;
      operations.push(await runOne(client, plan, item, n, stopped));
    }
  };
  try {
    await Promise.all(Array.from({ length: plan.concurrency }, worker));
  } finally {
    await client?.close();
  }
  return operations.sort((a, b) => a.invokedAt - b.invokedAt);
}

let stop: () => void = () => {};
const stopped = new Promise<void>((resolve) => (stop = resolve));
// The runner gone (killed, crashed) means nobody will read the report: stop rather than run on.
process.on('disconnect', () => process.exit(0));
process.on('message', (msg: ToLoad) => {
  if (msg.type === 'stop') stop();
  if (msg.type !== 'start') return;
  runPlan(msg.plan, stopped).then(
    (operations) => {
      // Disconnect only once the (large) report is written, or the runner may never read it.
      process.send?.({ type: 'done', operations } satisfies FromLoad, () => process.disconnect());
    },
    (err: unknown) => {
      const failed: FromLoad = { type: 'failed', message: err instanceof Error ? err.message : String(err) };
      process.send?.(failed, () => process.disconnect());
    },
  );
});
