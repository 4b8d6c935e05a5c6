/**
 * `npm run bench:cluster` — what the cluster layer costs, side by side in one run:
 *   - hop: a direct NATS request to an echo replica (1 token) vs the same through a router;
 *   - request rate with 64 in flight, direct vs through the router;
 *   - generation through the router (one real replica) at concurrency 8 and 32 vs the engine
 *     alone in-process, same model, prompts, token counts and threads;
 *   - failover: SIGKILL of a replica mid-stream → the resumed stream's next token.
 * Prints a table and one JSON line. Targets are reported as met or missed, never asserted.
 *
 *   npm run bench:cluster [-- --threads N --seconds 3 --rounds 2]
 */
import { performance } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../src/cluster/connection.ts';
import { writeRequestMeta } from '../src/cluster/headers.ts';
import { encodeGenerateRequest, type GenerateRequest } from '../src/cluster/messages/generate.ts';
import { openStream } from '../src/cluster/stream-requester.ts';
import { GENERATE_SUBJECT, replicaGenerateSubject } from '../src/cluster/subjects.ts';
import { Engine } from '../src/engine/engine.ts';
import { ModelTokenizer } from '../src/engine/tokenizer.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../test/helpers/cluster.ts';
import { send } from '../test/helpers/front-door.ts';
import { TINY_MODEL } from '../test/helpers/models.ts';
import { NatsServer } from '../test/helpers/nats-server.ts';
import { benchPrompts, median, table } from './util.ts';

const { values: args } = parseArgs({
  options: {
    threads: { type: 'string', default: String(availableParallelism()) },
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    'hop-samples': { type: 'string', default: '2000' },
  },
});
const THREADS = Number(args.threads);
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const HOP_SAMPLES = Number(args['hop-samples']);
const NEW_TOKENS = 64;
const ECHO: GenerateRequest = { model: 'echo', promptTokenIds: [65], maxTokens: 1 };

let counter = 0;
/** One streamed request to `subject`, resolving with its latency in ms (rejects on error). */
function once(nc: NatsConnection, subject: string, req: GenerateRequest): Promise<number> {
  const t0 = performance.now();
  const handle = openStream(
    nc,
    subject,
    encodeGenerateRequest(req),
    writeRequestMeta({ requestId: `b-${counter++}` }),
    {
      onMessage: () => undefined,
    },
  );
  return handle.done.then((outcome) => {
    if (!outcome.ok) throw outcome.error;
    return performance.now() - t0;
  });
}

async function latencyP50(nc: NatsConnection, subject: string): Promise<number> {
  for (let i = 0; i < 200; i++) await once(nc, subject, ECHO); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < HOP_SAMPLES; i++) samples.push(await once(nc, subject, ECHO));
  return median(samples);
}

/** Lets heartbeats catch up between phases, so one phase's load does not look like the next's. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 600));

let refused = 0;
async function rate(nc: NatsConnection, subject: string, inFlight: number): Promise<number> {
  await settle();
  let done = 0;
  const until = performance.now() + SECONDS * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      try {
        await once(nc, subject, ECHO);
        done++;
      } catch {
        refused++; // reported: a benchmark shows its misses
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return done / ((performance.now() - t0) / 1000);
}

/** Tokens/s for `prompts` submitted `concurrency` at a time through `run`. */
async function generation(
  prompts: number[][],
  concurrency: number,
  run: (p: number[]) => Promise<number>,
): Promise<number> {
  let next = 0;
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < prompts.length) {
        const produced = await run(prompts[next++]!); // not `tokens += await …`: that loses updates
        tokens += produced;
      }
    }),
  );
  return tokens / ((performance.now() - t0) / 1000);
}

async function viaRouter(nc: NatsConnection, p: number[]): Promise<number> {
  const got = await send(nc, {
    model: 'tiny-gpt2',
    promptTokenIds: p,
    maxTokens: NEW_TOKENS,
    temperature: 0,
    ignoreEos: true,
  }).done;
  if (got.error) throw got.error;
  return got.tokenIds.length;
}

async function failoverResumeMs(nc: NatsConnection, server: NatsServer): Promise<number> {
  const [victim, standby] = await Promise.all([
    ActorProcess.start('replica', 'fo-victim', server.url),
    ActorProcess.start('replica', 'fo-standby', server.url),
  ]);
  try {
    await injectFault(nc, 'fo-standby', { drop_heartbeats: true });
    await new Promise((r) => setTimeout(r, 1_500));
    await injectFault(nc, 'fo-victim', { step_delay_ms: 10 });
    const sent = send(nc, {
      model: 'tiny-gpt2',
      prompt: 'failover',
      maxTokens: 400,
      temperature: 0,
      ignoreEos: true,
    });
    await waitFor('chunks', () => sent.record.chunks.length >= 5);
    await injectFault(nc, 'fo-standby', { drop_heartbeats: false });
    await new Promise((r) => setTimeout(r, 800));
    const before = sent.record.chunks.length;
    let resumedAt = 0;
    const killedAt = performance.now();
    victim.signal('SIGKILL');
    // Chunks already in flight when the process died do not count: wait for a chunk of attempt 2.
    await waitFor('a resumed chunk', () => {
      const resumed = sent.record.chunks.slice(before).find((c) => c.attempt >= 2);
      if (resumed && resumedAt === 0) resumedAt = performance.now();
      return resumed !== undefined;
    });
    await sent.done;
    return resumedAt - killedAt;
  } finally {
    await killAll([victim, standby]);
  }
}

async function main(): Promise<void> {
  const server = await NatsServer.start();
  const nc = await connectNats({ servers: server.url });
  const result: Record<string, number | string> = { threads: THREADS, new_tokens: NEW_TOKENS };
  const actors: ActorProcess[] = [];
  try {
    actors.push(
      await ActorProcess.start('router', 'bench-router', server.url),
      await ActorProcess.start('replica', 'echo-1', server.url, ['--echo']),
    );
    result.hop_p50_ms = +(await latencyP50(nc, replicaGenerateSubject('echo-1'))).toFixed(3);
    result.router_p50_ms = +(await latencyP50(nc, GENERATE_SUBJECT)).toFixed(3);
    result.router_added_p50_ms = +(result.router_p50_ms - result.hop_p50_ms).toFixed(3);
    result.direct_rps_c64 = Math.round(await rate(nc, replicaGenerateSubject('echo-1'), 64));
    result.router_rps_c64 = Math.round(await rate(nc, GENERATE_SUBJECT, 64));
    result.router_rps_vs_direct = +(result.router_rps_c64 / result.direct_rps_c64).toFixed(3);
    result.refused_requests = refused;
    await actors.pop()!.kill();

    const replica = await ActorProcess.start('replica', 'gen-1', server.url, [
      '--threads',
      String(THREADS),
      '--max-batch-size',
      '32',
    ]);
    actors.push(replica);
    const engine = await Engine.start({ modelDir: TINY_MODEL, intraOpThreads: THREADS, maxBatchSize: 32 });
    const prompts = benchPrompts(await ModelTokenizer.load(TINY_MODEL), 32);
    const alone = async (p: number[]): Promise<number> =>
      (await engine.generate({ promptTokenIds: p, maxTokens: NEW_TOKENS, temperature: 0, ignoreEos: true }))
        .tokenIds.length;
    const samples = new Map<string, number[]>();
    const add = (k: string, v: number): void => void samples.set(k, [...(samples.get(k) ?? []), v]);
    await generation(prompts.slice(0, 8), 8, alone); // warm-up
    await generation(prompts.slice(0, 8), 8, (p) => viaRouter(nc, p));
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of [8, 32]) {
        add(`engine_c${c}_tps`, await generation(prompts.slice(0, c === 8 ? 16 : 32), c, alone));
        add(
          `cluster_c${c}_tps`,
          await generation(prompts.slice(0, c === 8 ? 16 : 32), c, (p) => viaRouter(nc, p)),
        );
      }
    }
    await engine.stop();
    await actors.pop()!.kill();
    for (const [k, v] of samples) result[k] = Math.round(median(v));
    result.cluster_vs_engine_c8 = +(
      (result.cluster_c8_tps as number) / (result.engine_c8_tps as number)
    ).toFixed(3);
    result.cluster_vs_engine_c32 = +(
      (result.cluster_c32_tps as number) / (result.engine_c32_tps as number)
    ).toFixed(3);

    const failovers: number[] = [];
    for (let r = 0; r < ROUNDS; r++) failovers.push(await failoverResumeMs(nc, server));
    result.failover_resume_ms = Math.round(median(failovers));
  } finally {
    await killAll(actors);
    await nc.close();
    await server.stop();
  }

  const n = (k: string): number => result[k] as number;
  const targets: Array<[string, boolean]> = [
    ['router adds <= 1.5 x hop p50', n('router_added_p50_ms') <= 1.5 * n('hop_p50_ms')],
    ['router rps >= 0.6 x direct (64 in flight)', n('router_rps_vs_direct') >= 0.6],
    ['cluster c8 >= 0.9 x engine alone', n('cluster_vs_engine_c8') >= 0.9],
    ['cluster c32 >= 0.9 x engine alone', n('cluster_vs_engine_c32') >= 0.9],
    ['failover resume < 1000 ms', n('failover_resume_ms') < 1000],
  ];
  console.log(
    table([
      ['hop p50 (direct to echo replica)', n('hop_p50_ms'), 'ms'],
      ['through router p50', n('router_p50_ms'), 'ms'],
      ['router added p50', n('router_added_p50_ms'), 'ms'],
      ['direct, 64 in flight', n('direct_rps_c64'), 'req/s'],
      ['through router, 64 in flight', n('router_rps_c64'), 'req/s'],
      ['engine alone c8', n('engine_c8_tps'), 'tokens/s'],
      ['cluster c8', n('cluster_c8_tps'), 'tokens/s'],
      ['engine alone c32', n('engine_c32_tps'), 'tokens/s'],
      ['cluster c32', n('cluster_c32_tps'), 'tokens/s'],
      ['failover: kill -> resumed token', n('failover_resume_ms'), 'ms'],
    ]),
  );
  for (const [name, met] of targets) console.log(`${met ? 'met   ' : 'MISSED'}  ${name}`);
  result.targets_met = targets.filter(([, met]) => met).length;
  result.targets_total = targets.length;
  console.log(JSON.stringify(result));
}

await main();
