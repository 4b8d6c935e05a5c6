/**
 * `npm run bench:tracing` — what tracing costs, side by side in one run: two identical clusters
 * (one nats-server, replica, router and bridge process each, the bundled model, 1 intra-op
 * thread per replica), one with tracing on (sampler always_on, every span exported as OTLP/JSON
 * to a receiver on loopback), one with tracing off (no OTEL_* configuration). The same
 * completions (8–64-token prompts from the project's corpus, 64 new tokens, greedy, EOS
 * ignored) are sent through each bridge with 8 in flight, in interleaved rounds so drift hits
 * both alike. Prints a table and one JSON line with `tracing_on_vs_off` (generated tokens/s with
 * tracing on ÷ off); the target (>= 0.95) is reported, never asserted.
 *
 *   npm run bench:tracing [-- --seconds 6 --rounds 4 --concurrency 8]
 */
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { ModelTokenizer } from '../src/engine/tokenizer.ts';
import { ActorProcess, killAll, waitFor } from '../test/helpers/cluster.ts';
import { envWithoutOtel } from '../test/helpers/env.ts';
import { TINY_MODEL } from '../test/helpers/models.ts';
import { NatsServer } from '../test/helpers/nats-server.ts';
import { OtlpReceiver } from '../test/telemetry/otlp-receiver.ts';
import { benchPrompts, table } from './util.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '8' },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const CONCURRENCY = Number(args.concurrency);
/** New tokens per request. */
const MAX_TOKENS = 64;
/** Seconds of load per stack before measuring: JIT, sessions, connection pools. */
const WARMUP_SECONDS = 3;
/** The target for tokens/s with tracing on ÷ off. */
const TARGET_RATIO = 0.95;

interface Stack {
  name: 'on' | 'off';
  nats: NatsServer;
  actors: ActorProcess[];
  url: string;
  agent: Agent;
}

async function startStack(name: Stack['name'], env: Record<string, string>): Promise<Stack> {
  const nats = await NatsServer.start();
  const actors: ActorProcess[] = [];
  try {
    actors.push(await ActorProcess.start('replica', `r-${name}`, nats.url, [], env));
    actors.push(await ActorProcess.start('router', `rt-${name}`, nats.url, [], env));
    const bridge = await ActorProcess.start('bridge', `b-${name}`, nats.url, [], env);
    actors.push(bridge);
    const url = bridge.url as string;
    await waitFor(`bridge ${name} ready`, async () => (await fetch(`${url}/readyz`)).ok);
    return { name, nats, actors, url, agent: new Agent({ keepAlive: true, maxSockets: CONCURRENCY }) };
  } catch (err) {
    await killAll(actors);
    await nats.stop();
    throw err;
  }
}

/** One completion; resolves with its completion tokens. */
function complete(stack: Stack, prompt: number[]): Promise<number> {
  const body = JSON.stringify({
    model: 'tiny-gpt2',
    prompt,
    max_tokens: MAX_TOKENS,
    temperature: 0,
    ignore_eos: true,
  });
  return new Promise((resolve, reject) => {
    const req = request(
      `${stack.url}/v1/completions`,
      { method: 'POST', agent: stack.agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text}`));
          resolve((JSON.parse(text) as { usage: { completion_tokens: number } }).usage.completion_tokens);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** `CONCURRENCY` loops sending prompts for `seconds`; generated tokens per second. */
async function measure(stack: Stack, prompts: number[][], seconds: number): Promise<number> {
  const started = performance.now();
  const until = started + seconds * 1_000;
  let tokens = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < until) {
        const got = await complete(stack, prompts[next++ % prompts.length] as number[]);
        tokens += got;
      }
    }),
  );
  return tokens / ((performance.now() - started) / 1_000);
}

async function main(): Promise<void> {
  const tokenizer = await ModelTokenizer.load(TINY_MODEL);
  const prompts = benchPrompts(tokenizer, 64);
  const receiver = await OtlpReceiver.start();
  const stacks: Stack[] = [];
  try {
    stacks.push(
      await startStack(
        'on',
        envWithoutOtel({
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_TRACES_SAMPLER: 'always_on',
        }),
      ),
      await startStack('off', envWithoutOtel({})),
    );
    for (const stack of stacks) await measure(stack, prompts, WARMUP_SECONDS);
    const rates: Record<Stack['name'], number[]> = { on: [], off: [] };
    const spansBefore = receiver.spans.length;
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate which goes first, so neither always runs on a machine the other just warmed.
      const order = round % 2 === 0 ? stacks : [...stacks].reverse();
      for (const stack of order) rates[stack.name].push(await measure(stack, prompts, SECONDS));
    }
    await new Promise((r) => setTimeout(r, 1_000)); // the last export batch
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    const on = sum(rates.on) / rates.on.length;
    const off = sum(rates.off) / rates.off.length;
    const ratio = on / off;
    const spans = receiver.spans.length - spansBefore;
    console.log(
      table([
        ['tokens/s, tracing off (mean of rounds)', Math.round(off), 'tok/s'],
        ['tokens/s, tracing on  (mean of rounds)', Math.round(on), 'tok/s'],
        ['on / off', +ratio.toFixed(3), `(target >= ${TARGET_RATIO})`],
        ['spans received while measuring', spans, 'spans'],
      ]),
    );
    console.log(`per round off: ${rates.off.map((r) => Math.round(r)).join(', ')}`);
    console.log(`per round on:  ${rates.on.map((r) => Math.round(r)).join(', ')}`);
    console.log(
      JSON.stringify({
        tracing_on_vs_off: +ratio.toFixed(4),
        tracing_on_tokens_per_s: Math.round(on),
        tracing_off_tokens_per_s: Math.round(off),
        target: TARGET_RATIO,
        met: ratio >= TARGET_RATIO,
        spans_received: spans,
        concurrency: CONCURRENCY,
        max_tokens: MAX_TOKENS,
        rounds: ROUNDS,
        seconds_per_round: SECONDS,
      }),
    );
  } finally {
    for (const stack of stacks) {
      stack.agent.destroy();
      await Promise.all(stack.actors.map((a) => a.terminate()));
      await stack.nats.stop();
    }
    await receiver.close();
  }
}

await main();
