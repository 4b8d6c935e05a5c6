/**
 * A flood process: sends non-streamed completions to the bridges over keep-alive HTTP (and a
 * share over NATS with the client library), closed-loop to measure capacity or open-loop to
 * overload, and counts every answer by status or code. Its own process, so that thousands of
 * sockets do not share an event loop with the runner. Started by chaos/flood.ts.
 */
import { Agent, request as httpRequest } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { SwitchyardClient } from '../src/client/client.ts';
import { SwitchyardError } from '../src/errors/errors.ts';
import type { FloodPhase, FloodSetup, FloodStats, FromFlood, ToFlood } from './flood-protocol.ts';
import type { LoadItem } from './load-protocol.ts';

/** How often the open-loop scheduler starts the arrivals that fell due. */
const TICK_MS = 5;
/** Resolution of the flood's own event-loop delay histogram. */
const LOOP_RESOLUTION_MS = 10;
const NS_PER_MS = 1e6;
/**
 * Idle keep-alive sockets are closed after this, below the bridge's advertised `Keep-Alive:
 * timeout=5`, as a careful client does. node 20's Agent ignores that hint (its free sockets never
 * time out), so it reuses sockets the bridge is closing: the classic keep-alive race, a reset for
 * a request the bridge never saw. (The agent's timeout ends free sockets only; a request waiting
 * for its answer is not cut.)
 */
const AGENT_IDLE_MS = 4_000;

type Answer =
  | { kind: 'http'; status: number; retryAfter: string | undefined; body: string }
  | { kind: 'nats'; code: string; text?: string; tokens?: number }
  | { kind: 'transport'; message: string }
  | { kind: 'hung' };

function send(msg: FromFlood): void {
  process.send?.(msg);
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** Where a load item goes: chats (items with messages) to the chat API, the rest to completions. */
function pathOf(item: LoadItem): string {
  return item.request.messages === undefined ? '/v1/completions' : '/v1/chat/completions';
}

/** The OpenAI body of a load item, not streamed (a chat sent as a prompt would be a 400). */
function openAiBody(item: LoadItem): string {
  const r = item.request;
  return JSON.stringify({
    model: r.model,
    ...(r.messages === undefined ? { prompt: r.prompt } : { messages: r.messages }),
    max_tokens: r.maxTokens,
    temperature: r.temperature,
    top_p: r.topP,
    seed: r.seed,
    ignore_eos: r.ignoreEos,
    stream: false,
  });
}

function postHttp(
  agent: Agent,
  base: string,
  path: string,
  body: string,
  timeoutMs: number,
): Promise<Answer> {
  return new Promise((resolve) => {
    const url = new URL(path, base);
    const req = httpRequest(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          clearTimeout(timer);
          const ra = res.headers['retry-after'];
          resolve({ kind: 'http', status: res.statusCode ?? 0, retryAfter: ra, body: text });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          resolve({ kind: 'transport', message: err.message });
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ kind: 'hung' });
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      resolve({ kind: 'transport', message: (err as NodeJS.ErrnoException).code ?? err.message });
    });
    req.end(body);
  });
}

async function viaNats(client: SwitchyardClient, item: LoadItem, timeoutMs: number): Promise<Answer> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<Answer>((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'hung' }), timeoutMs);
  });
  const run = (async (): Promise<Answer> => {
    try {
      // The client's own deadline is shorter than the hang timer, so a deadline is an answer.
      const got = await client.generate(item.request, { timeoutMs: timeoutMs / 2 });
      return { kind: 'nats', code: 'ok', text: got.text, tokens: got.usage.completionTokens };
    } catch (err) {
      if (err instanceof SwitchyardError) return { kind: 'nats', code: err.code };
      return { kind: 'transport', message: err instanceof Error ? err.message : String(err) };
    }
  })();
  try {
    return await Promise.race([run, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether a completion is the item's reference output (every item sets ignoreEos: full length). */
function exact(item: LoadItem, text: string | undefined, tokens: number | undefined): boolean {
  if (tokens !== item.request.maxTokens) return false;
  return item.reference === undefined || item.reference.text === text;
}

function percentile(sorted: number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function record(stats: FloodStats, item: LoadItem, a: Answer, ms: number, refusals: number[]): void {
  if ((a.kind === 'http' && a.status === 429) || (a.kind === 'nats' && a.code === 'busy')) refusals.push(ms);
  switch (a.kind) {
    case 'hung':
      stats.hung++;
      return;
    case 'transport':
      bump(stats.transportErrors, a.message);
      return;
    case 'nats':
      bump(stats.natsCodes, a.code);
      if (a.code !== 'ok') return;
      stats.completed++;
      stats.completionTokens += a.tokens ?? 0;
      if (!exact(item, a.text, a.tokens)) stats.different++;
      return;
    case 'http': {
      bump(stats.httpStatus, String(a.status));
      if (a.status === 429 && !/^[1-9][0-9]*$/.test(a.retryAfter ?? '')) stats.missingRetryAfter++;
      if (a.status !== 200) return;
      try {
        const body = JSON.parse(a.body) as {
          choices?: Array<{ text?: string; message?: { content?: string } }>;
          usage?: { completion_tokens?: number };
        };
        const tokens = body.usage?.completion_tokens;
        stats.completed++;
        stats.completionTokens += tokens ?? 0;
        const choice = body.choices?.[0];
        if (!exact(item, choice?.text ?? choice?.message?.content, tokens)) stats.different++;
      } catch {
        bump(stats.transportErrors, 'a 200 whose body is not JSON');
      }
    }
  }
}

class Flood {
  private readonly agent: Agent;
  private n = 0;

  constructor(
    private readonly setup: FloodSetup,
    private readonly client: SwitchyardClient,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: setup.maxOutstanding, timeout: AGENT_IDLE_MS });
  }

  async run(phase: FloodPhase): Promise<FloodStats> {
    const stats: FloodStats = {
      phase: phase.name,
      elapsedMs: 0,
      sent: 0,
      notSent: 0,
      httpStatus: {},
      missingRetryAfter: 0,
      natsCodes: {},
      transportErrors: {},
      hung: 0,
      completed: 0,
      completionTokens: 0,
      different: 0,
      completedPerS: 0,
      tokensPerS: 0,
      refusalMs: { p50: 0, p99: 0, max: 0 },
      floodLoopDelayP99Ms: 0,
    };
    const refusals: number[] = [];
    const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    loop.enable();
    const started = Date.now();
    const until = started + phase.durationMs;
    const open = new Set<Promise<void>>();
    const one = (): Promise<void> => {
      const n = this.n++;
      const item = this.setup.items[n % this.setup.items.length]!;
      stats.sent++;
      // Spread NATS requests evenly among the HTTP ones (every k-th request).
      const nats = phase.natsShare > 0 && n % Math.round(1 / phase.natsShare) === 0;
      const answer = nats
        ? viaNats(this.client, item, this.setup.timeoutMs)
        : postHttp(
            this.agent,
            this.setup.bridges[n % this.setup.bridges.length]!,
            pathOf(item),
            openAiBody(item),
            this.setup.timeoutMs,
          );
      const at = Date.now();
      const p = answer.then((a) => record(stats, item, a, Date.now() - at, refusals));
      open.add(p);
      void p.finally(() => open.delete(p));
      return p;
    };
    if (phase.mode.kind === 'closed') {
      const worker = async (): Promise<void> => {
        while (Date.now() < until) await one();
      };
      await Promise.all(Array.from({ length: phase.mode.concurrency }, worker));
    } else {
      const rate = phase.mode.ratePerS;
      let due = 0;
      while (Date.now() < until) {
        const target = Math.floor(((Date.now() - started) * rate) / 1000);
        for (; due < target; due++) {
          if (open.size >= this.setup.maxOutstanding) stats.notSent++;
          else void one();
        }
        await new Promise((r) => setTimeout(r, TICK_MS));
      }
    }
    await Promise.all([...open]);
    stats.elapsedMs = Date.now() - started;
    stats.completedPerS = (stats.completed * 1000) / stats.elapsedMs;
    stats.tokensPerS = (stats.completionTokens * 1000) / stats.elapsedMs;
    loop.disable();
    stats.floodLoopDelayP99Ms = loop.count === 0 ? 0 : loop.percentile(99) / NS_PER_MS;
    refusals.sort((a, b) => a - b);
    stats.refusalMs = {
      p50: percentile(refusals, 0.5),
      p99: percentile(refusals, 0.99),
      max: refusals[refusals.length - 1] ?? 0,
    };
    return stats;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    await this.client.close();
  }
}

let flood: Flood | undefined;
let queue: Promise<void> = Promise.resolve();
process.on('message', (msg: ToFlood) => {
  queue = queue.then(async () => {
    try {
      if (msg.type === 'setup') {
        const client = await SwitchyardClient.connect({
          nats: msg.setup.nats,
          defaultTimeoutMs: msg.setup.timeoutMs,
        });
        flood = new Flood(msg.setup, client);
        send({ type: 'ready' });
      } else {
        if (flood === undefined) throw new Error('a phase came before the setup');
        send({ type: 'stats', stats: await flood.run(msg.phase) });
      }
    } catch (err) {
      send({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    }
  });
});
process.on('disconnect', () => {
  void (flood?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});
