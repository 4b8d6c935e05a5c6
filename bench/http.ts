/**
 * `npm run bench:http` — what the HTTP bridge costs over the NATS client library, side by side
 * in one run: the same tiny request (1 token from an echo replica, through a router) sent
 *   - with SwitchyardClient straight over NATS, and
 *   - as `POST /v1/completions` (non-streaming, keep-alive agent) to a bridge, which sends it
 *     with its own SwitchyardClient;
 * one at a time (latency) and 64 in flight (requests/s and latency), in interleaved rounds.
 * The bridge runs in its own process, as in production, so that it does not share the load
 * generator's event loop. Auth, limits and cache are off. Prints a table and one JSON line;
 * the target (the bridge adds <= 0.5 ms p50 at 64 in flight) is reported, never asserted.
 *
 *   npm run bench:http [-- --seconds 3 --rounds 3 --samples 1000]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBridge } from '../src/bridge/bridge.ts';
import { SwitchyardClient } from '../src/client/client.ts';
import type { GenerateRequest } from '../src/cluster/messages/generate.ts';
import { ECHO_MODEL_ID } from '../src/engine/echo.ts';
import { startReplica } from '../src/replica/replica.ts';
import { ActorProcess, killAll } from '../test/helpers/cluster.ts';
import { TINY_MODEL } from '../test/helpers/models.ts';
import { NatsServer } from '../test/helpers/nats-server.ts';
import { median, percentile, table } from './util.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    samples: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '64' },
    child: { type: 'string' },
    nats: { type: 'string' },
  },
});
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const SAMPLES = Number(args.samples);
const CONCURRENCY = Number(args.concurrency);
/** Requests before measuring: JIT, connection pools, NATS subscriptions. */
const WARMUP_REQUESTS = 300;
/** Target of the issue: the bridge adds at most this much p50 latency at 64 in flight. */
const TARGET_ADDED_P50_MS = 0.5;
/** How long a child (bridge, fallback replica) may take to report ready. */
const CHILD_READY_TIMEOUT_MS = 60_000;

/** The one request both paths send: 1 token echoed back. */
const ECHO: GenerateRequest = { model: ECHO_MODEL_ID, promptTokenIds: [65], maxTokens: 1 };
const ECHO_BODY = JSON.stringify({ model: ECHO_MODEL_ID, prompt: [65], max_tokens: 1 });

/** A child process of this script: `--child bridge|replica --nats URL`. */
async function runChild(kind: string, nats: string): Promise<void> {
  const servers = nats;
  if (kind === 'bridge') {
    const bridge = await startBridge({ port: 0, nats: { servers } });
    process.send?.({ type: 'ready', url: bridge.url });
    // The parent asks for this process's CPU time around its measurements.
    process.on('message', () => {
      const { user, system } = process.cpuUsage();
      process.send?.({ type: 'cpu', us: user + system });
    });
    process.on('disconnect', () => void bridge.stop().then(() => process.exit(0)));
  } else {
    const replica = await startReplica({
      id: 'echo-1',
      echo: true,
      warmup: false,
      engine: { modelDir: TINY_MODEL },
      nats: { servers },
    });
    process.send?.({ type: 'ready' });
    process.on('disconnect', () => void replica.stop().then(() => process.exit(0)));
  }
}

/** Forks this script as a child and waits for its ready message. */
function forkChild(kind: string, nats: string): Promise<{ child: ChildProcess; url?: string }> {
  const child = fork(fileURLToPath(import.meta.url), ['--child', kind, '--nats', nats], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, SWITCHYARD_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} not ready in time`)), CHILD_READY_TIMEOUT_MS);
    child.once('message', (m: { url?: string }) => {
      clearTimeout(timer);
      resolve({ child, url: m.url });
    });
    child.once('exit', (code) => reject(new Error(`${kind} exited with ${code} before ready`)));
  });
}

/** An echo replica through the CLI (`replica --echo`), or in a forked child where the CLI lacks the flag. */
async function startEchoReplica(nats: string): Promise<{ stop(): Promise<void> }> {
  try {
    const actor = await ActorProcess.start('replica', 'echo-1', nats, ['--echo']);
    return { stop: () => killAll([actor]) };
  } catch {
    const { child } = await forkChild('replica', nats);
    return { stop: () => stopChild(child) };
  }
}

/** CPU time (µs) the child has used so far. */
function cpuOf(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (m: { us: number }) => resolve(m.us));
    child.send({ type: 'cpu' });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

type Send = () => Promise<void>;

function viaNats(client: SwitchyardClient): Send {
  return async () => {
    await client.generate(ECHO);
  };
}

function viaBridge(url: string, agent: Agent): Send {
  const target = new URL('/v1/completions', url);
  return () =>
    new Promise((resolve, reject) => {
      const req = request(
        target,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ECHO_BODY) },
        },
        (res) => {
          res.resume();
          res.once('end', () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`bridge answered ${res.statusCode}`)),
          );
        },
      );
      req.once('error', reject);
      req.end(ECHO_BODY);
    });
}

/** Latencies (ms) of `count` requests sent one at a time. */
async function serial(send: Send, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await send();
    out.push(performance.now() - t0);
  }
  return out;
}

/** Requests/s and latencies with `inFlight` requests outstanding for SECONDS. */
async function loaded(send: Send, inFlight: number): Promise<{ rps: number; latencies: number[] }> {
  const latencies: number[] = [];
  const until = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        await send();
        latencies.push(performance.now() - t);
      }
    }),
  );
  return { rps: latencies.length / ((performance.now() - t0) / 1000), latencies };
}

const round3 = (x: number): number => +x.toFixed(3);

async function main(): Promise<void> {
  const server = await NatsServer.start();
  const cleanups: Array<() => Promise<void>> = [];
  const result: Record<string, number | string> = {
    concurrency: CONCURRENCY,
    seconds: SECONDS,
    rounds: ROUNDS,
  };
  try {
    const router = await ActorProcess.start('router', 'bench-router', server.url);
    cleanups.push(() => killAll([router]));
    const replica = await startEchoReplica(server.url);
    cleanups.push(() => replica.stop());
    const { child, url } = await forkChild('bridge', server.url);
    cleanups.push(() => stopChild(child));
    const client = await SwitchyardClient.connect({ nats: { servers: server.url } });
    cleanups.push(() => client.close());
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    cleanups.push(() => Promise.resolve(agent.destroy()));
    const nats = viaNats(client);
    const bridge = viaBridge(url!, agent);

    await serial(nats, WARMUP_REQUESTS);
    await serial(bridge, WARMUP_REQUESTS);
    await loaded(nats, CONCURRENCY);
    await loaded(bridge, CONCURRENCY);

    const samples = new Map<string, number[]>();
    const add = (k: string, v: number): void => void samples.set(k, [...(samples.get(k) ?? []), v]);
    for (let r = 0; r < ROUNDS; r++) {
      add('nats_client_p50_ms_c1', median(await serial(nats, SAMPLES)));
      add('bridge_p50_ms_c1', median(await serial(bridge, SAMPLES)));
      for (const [name, send] of [
        ['nats_client', nats],
        ['bridge', bridge],
      ] as const) {
        const cpuBefore = name === 'bridge' ? await cpuOf(child) : 0;
        const { rps, latencies } = await loaded(send, CONCURRENCY);
        if (name === 'bridge') {
          add('bridge_cpu_ms_per_request', ((await cpuOf(child)) - cpuBefore) / 1000 / latencies.length);
        }
        add(`${name}_rps_c64`, rps);
        add(`${name}_p50_ms_c64`, median(latencies));
        add(`${name}_p99_ms_c64`, percentile(latencies, 99));
      }
    }
    for (const [k, v] of samples) result[k] = k.includes('rps') ? Math.round(median(v)) : round3(median(v));
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await server.stop();
  }
  const n = (k: string): number => result[k] as number;
  result.bridge_added_p50_ms = round3(n('bridge_p50_ms_c64') - n('nats_client_p50_ms_c64'));
  result.bridge_added_p50_ms_c1 = round3(n('bridge_p50_ms_c1') - n('nats_client_p50_ms_c1'));
  result.bridge_rps_vs_nats_client = round3(n('bridge_rps_c64') / n('nats_client_rps_c64'));
  const met = n('bridge_added_p50_ms') <= TARGET_ADDED_P50_MS;
  console.log(
    table([
      ['NATS client p50, one at a time', n('nats_client_p50_ms_c1'), 'ms'],
      ['bridge p50, one at a time', n('bridge_p50_ms_c1'), 'ms'],
      ['bridge added p50, one at a time', n('bridge_added_p50_ms_c1'), 'ms'],
      [`NATS client, ${CONCURRENCY} in flight`, n('nats_client_rps_c64'), 'req/s'],
      [`bridge, ${CONCURRENCY} in flight`, n('bridge_rps_c64'), 'req/s'],
      [
        `NATS client p50 / p99, ${CONCURRENCY} in flight`,
        n('nats_client_p50_ms_c64'),
        `ms / ${n('nats_client_p99_ms_c64')} ms`,
      ],
      [
        `bridge p50 / p99, ${CONCURRENCY} in flight`,
        n('bridge_p50_ms_c64'),
        `ms / ${n('bridge_p99_ms_c64')} ms`,
      ],
      [`bridge added p50, ${CONCURRENCY} in flight`, n('bridge_added_p50_ms'), 'ms'],
      ['bridge process CPU per request', n('bridge_cpu_ms_per_request'), 'ms'],
    ]),
  );
  console.log(
    `${met ? 'met   ' : 'MISSED'}  bridge adds <= ${TARGET_ADDED_P50_MS} ms p50 at ${CONCURRENCY} in flight`,
  );
  result.targets_met = met ? 1 : 0;
  result.targets_total = 1;
  console.log(JSON.stringify(result));
}

if (args.child !== undefined) await runChild(args.child, args.nats ?? '');
else await main();
