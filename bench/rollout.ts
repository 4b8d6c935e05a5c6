/**
 * `npm run bench:rollout` — a hot swap under load, measured side by side in one run on one real
 * cluster (nats-server with JetStream, one router and two replica processes through the CLI):
 *   - the registry holds `models/tiny-gpt2` as version 1 (alias `stable`) and
 *     `models/tiny-gpt2-v2` as version 2; both replicas start from `registry://tiny-gpt2@stable`,
 *     each with its own `--model-cache`;
 *   - closed-loop load at concurrency 8 through the client library (the same prompts, greedy and
 *     seeded, the same max_tokens, ignoreEos) for a steady window; then the alias moves to 2 and
 *     the load goes on through the swap and for a while after;
 *   - tokens/s in the steady window against the swap window, which runs from the moment the alias
 *     write returns to the last replica's heartbeat that no longer lists a retiring version (the
 *     old session stopped): the whole time the swap costs anything, the load and warm-up of the
 *     second session, the retire grace with two sessions loaded, and the old one's release. The
 *     alias move → converge sub-window (the load and warm-up alone) is printed beside it;
 *   - requests failed (every error, and every stream cut short of max_tokens), requests per
 *     version, and whether each completed request's modelVersion is the version it was pinned to
 *     at its ack;
 *   - alias move → every replica's heartbeat reporting version 2;
 *   - each replica's VmRSS (sampled from /proc every 50 ms): steady, peak during the swap, and
 *     after the old version was released (is the memory returned?), and idle after a full GC;
 *   - each replica's CPU (/proc/<pid>/stat) and the machine's (/proc/stat) in each window: what
 *     loading and warming the second version takes from serving on a machine with few cores;
 *   - after the load: how long a rollout weight change takes to reach every router
 *     (`weight_apply_ms`): two more routers (in this process, for their onRolloutApplied hook)
 *     watch the rollouts bucket; from just before each KV put of a new weight to the moment the
 *     last of them applied that revision, median and worst of WEIGHT_CHANGES changes.
 * Prints a table and one JSON line; targets are reported as met or missed, never asserted.
 *
 *   npm run bench:rollout [-- --steady 20 --after 10 --concurrency 8 --tokens 32]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { SwitchyardClient } from '../src/client/client.ts';
import { connectNats } from '../src/cluster/connection.ts';
import type { GenerateRequest } from '../src/cluster/messages/generate.ts';
import { decodeReplicaHeartbeat } from '../src/cluster/messages/heartbeat.ts';
import { ALL_REPLICA_HEARTBEATS, ROLLOUTS_BUCKET } from '../src/cluster/subjects.ts';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { DEFAULT_POLICY } from '../src/rollout/policy.ts';
import { encodeRolloutRecord } from '../src/rollout/record.ts';
import { ROLLOUT_FORMAT_VERSION, type RolloutRecord } from '../src/rollout/types.ts';
import { startRouter, type Router } from '../src/router/router.ts';
import { freePort } from '../src/cli/nats-server.ts';
import { Registry } from '../src/registry/registry.ts';
import { ActorProcess, killAll, waitFor } from '../test/helpers/cluster.ts';
import { waitForAliveReplicas } from '../test/helpers/metrics.ts';
import { TINY_MODEL, TINY_MODEL_V2, requireModel } from '../test/helpers/models.ts';
import { NatsServer } from '../test/helpers/nats-server.ts';
import { ProcSampler } from './proc-sampler.ts';
import { checkRequests, type Done } from './rollout-requests.ts';
import { median, table } from './util.ts';

const { values: args } = parseArgs({
  options: {
    warmup: { type: 'string', default: '5' },
    steady: { type: 'string', default: '20' },
    after: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '32' },
    threads: { type: 'string', default: '1' },
    /** Print tokens/s by quarter second around the swap (stderr). */
    timeline: { type: 'boolean', default: false },
  },
});
/** Load before anything is measured (JIT, pools, the replicas' first batches), seconds. */
const WARMUP_S = Number(args.warmup);
/** The steady window before the alias moves, seconds. */
const STEADY_S = Number(args.steady);
/** Load kept on after the last replica released its old version, seconds. */
const AFTER_S = Number(args.after);
const CONCURRENCY = Number(args.concurrency);
const MAX_TOKENS = Number(args.tokens);
/** Intra-op threads per replica (two replicas share the 2 cores). */
const THREADS = Number(args.threads);

const MODEL = 'tiny-gpt2';
const ALIAS = 'stable';
const REPLICAS = ['roll-a', 'roll-b'] as const;
/** The longest a swap may take (alias move → both replicas released their old version). */
const SWAP_TIMEOUT_MS = 120_000;
/** Time after the release before "RSS after release" is read: the stop's frees land. */
const RELEASE_SETTLE_MS = 2_000;
/** The phase after the release that the old engine's stop may slow, ms. */
const RELEASE_PHASE_MS = 1_000;
/** Bin of the --timeline print. */
const TIMELINE_BIN_MS = 250;
/** Targets of the issue (reported, not asserted). */
const TARGET_TPS_RATIO = 0.8;
const TARGET_CONVERGE_MS = 5_000;
/** Routers that time a weight change, and the changes timed. */
const WEIGHT_ROUTERS = 2;
const WEIGHT_CHANGES = 7;
/** The longest a weight change may take to reach every router before the bench gives up. */
const WEIGHT_APPLY_TIMEOUT_MS = 10_000;

/** Distinct requests the load cycles through: each recurs, so its tokens can be compared per version. */
const DISTINCT_REQUESTS = 16;
/** Seeded requests' sampling (as the hot-swap tests use: moderate, so batching does not flip tokens). */
const SEEDED = { temperature: 0.5, topK: 8 } as const;

/** Request `k` of the cycle: even ones greedy, odd ones seeded; all run to max_tokens. */
function requestOf(k: number): GenerateRequest {
  const prompt = `Rollout bench prompt ${k >> 1}: the yard at night`;
  return k % 2 === 0
    ? { model: MODEL, prompt, maxTokens: MAX_TOKENS, temperature: 0, ignoreEos: true }
    : { model: MODEL, prompt, maxTokens: MAX_TOKENS, ...SEEDED, seed: 1000 + k, ignoreEos: true };
}

/** What the bench saw of one replica's heartbeats, by time (performance.now() at receipt). */
interface ReplicaTimeline {
  /** First beat naming a swap in progress. */
  swapping?: number;
  /** First beat reporting version 2. */
  serving2?: number;
  /** First beat reporting version 2 with no retiring version left. */
  released?: number;
  /** The first swap error a beat reported. */
  swapError?: string;
}

/** Delivered tokens by arrival time: (ms, count) pairs. */
const deliveries: Array<[number, number]> = [];

function tokensBetween(from: number, to: number): number {
  let n = 0;
  for (const [at, count] of deliveries) if (at >= from && at < to) n += count;
  return n;
}

function tpsBetween(from: number, to: number): number {
  return tokensBetween(from, to) / ((to - from) / 1_000);
}

async function main(): Promise<void> {
  requireModel(TINY_MODEL);
  requireModel(TINY_MODEL_V2);
  const work = mkdtempSync(join(tmpdir(), 'sy-bench-rollout-'));
  const server = await NatsServer.start({ jetstream: true });
  const nc = await connectNats({ servers: server.url });
  const actors: ActorProcess[] = [];
  const samplers: ProcSampler[] = [];
  let client: SwitchyardClient | undefined;
  try {
    const registry = await Registry.open(nc, { create: true });
    const v1 = await registry.push(TINY_MODEL, { by: 'bench' });
    const v2 = await registry.push(TINY_MODEL_V2, { by: 'bench' });
    if (v1.manifest.version !== '1' || v2.manifest.version !== '2') {
      throw new Error(`expected versions 1 and 2, got ${v1.manifest.version} and ${v2.manifest.version}`);
    }
    await registry.alias(MODEL, ALIAS, '1', { by: 'bench', reason: 'bench:rollout start' });

    const port = await freePort();
    const router = await ActorProcess.start('router', 'roll-rt', server.url, [
      '--metrics-port',
      String(port),
    ]);
    actors.push(router);
    const replicas = await Promise.all(
      REPLICAS.map((id) =>
        ActorProcess.start('replica', id, server.url, [
          '--model',
          `registry://${MODEL}@${ALIAS}`,
          '--model-cache',
          join(work, id),
          '--threads',
          String(THREADS),
        ]),
      ),
    );
    actors.push(...replicas);
    await waitForAliveReplicas(`http://127.0.0.1:${port}/metrics`, 'roll-rt', REPLICAS.length);

    const timelines = new Map<string, ReplicaTimeline>(REPLICAS.map((id) => [id, {}]));
    let swapAt = Infinity;
    const heartbeats = nc.subscribe(ALL_REPLICA_HEARTBEATS, {
      callback: (err, msg) => {
        if (err) return;
        const hb = decodeReplicaHeartbeat(msg.data);
        const t = timelines.get(hb.id);
        const now = performance.now();
        if (t === undefined || now < swapAt) return;
        if (hb.swappingTo !== undefined) t.swapping ??= now;
        if (hb.swapError !== undefined && t.swapError === undefined) {
          t.swapError = hb.swapError;
          process.stderr.write(`${hb.id}: ${hb.swapError}\n`);
        }
        if (hb.modelVersion === '2') {
          t.serving2 ??= now;
          if ((hb.retiringVersions ?? []).length === 0) t.released ??= now;
        }
      },
    });
    for (const r of replicas) samplers.push(new ProcSampler(r.child.pid!));

    client = await SwitchyardClient.connect({ nc });
    const done: Done[] = [];
    let stopAt = Infinity;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (performance.now() < stopAt) {
        const key = next++ % DISTINCT_REQUESTS;
        const record: Done = { key, startedAt: performance.now(), endedAt: 0, tokens: [] };
        const stream = client!.stream(requestOf(key));
        // The seed settles on the ack (its version is read in the same turn).
        void stream.seed.then(() => (record.pinnedAtAck ??= stream.modelVersion));
        try {
          for await (const delta of stream) {
            record.pinnedAtAck ??= stream.modelVersion;
            deliveries.push([performance.now(), delta.tokenIds.length]);
            record.tokens.push(...delta.tokenIds);
          }
          record.endVersion = (await stream.result).modelVersion;
        } catch (err) {
          const e = err as { code?: string; message?: string };
          record.error = `${e.code ?? 'error'}: ${e.message ?? String(err)}`;
        }
        record.endedAt = performance.now();
        done.push(record);
      }
    };
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

    const loadStart = performance.now();
    const load = Promise.all(Array.from({ length: CONCURRENCY }, worker));
    process.stderr.write(`warming up for ${WARMUP_S} s…\n`);
    await sleep(WARMUP_S * 1_000);
    const steadyFrom = performance.now();
    process.stderr.write(`steady window, ${STEADY_S} s…\n`);
    await sleep(STEADY_S * 1_000);
    await registry.alias(MODEL, ALIAS, '2', { by: 'bench', reason: 'bench:rollout swap' });
    swapAt = performance.now();
    const steadyTo = swapAt;
    process.stderr.write('alias moved to 2; waiting for every replica to release version 1…\n');
    await waitFor(
      'every replica serving version 2 with version 1 released',
      () => [...timelines.values()].every((t) => t.released !== undefined),
      SWAP_TIMEOUT_MS,
    );
    const convergedAt = Math.max(...[...timelines.values()].map((t) => t.serving2!));
    const releasedAt = Math.max(...[...timelines.values()].map((t) => t.released!));
    process.stderr.write(`released; ${AFTER_S} s more load…\n`);
    await sleep(AFTER_S * 1_000);
    stopAt = performance.now();
    const afterTo = stopAt;
    await load;
    heartbeats.unsubscribe();
    for (const s of samplers) s.stop();
    // With the load stopped: a full GC in each replica, to tell garbage from memory held natively.
    const gcd = await Promise.all(replicas.map((r) => r.memory({ gc: true })));
    const weightApply = await measureWeightApply(server.url, nc);

    if (args.timeline) {
      for (
        let at = swapAt - TIMELINE_BIN_MS * 8;
        at < releasedAt + TIMELINE_BIN_MS * 8;
        at += TIMELINE_BIN_MS
      ) {
        const marks = [...timelines.entries()]
          .flatMap(([id, t]) =>
            Object.entries(t)
              .filter(([, v]) => typeof v === 'number' && v >= at && v < at + TIMELINE_BIN_MS)
              .map(([k]) => `${id} ${k}`),
          )
          .join(', ');
        const tps = Math.round(tpsBetween(at, at + TIMELINE_BIN_MS));
        process.stderr.write(
          `${String(Math.round(at - swapAt)).padStart(6)} ms ${String(tps).padStart(5)} tok/s ${marks}\n`,
        );
      }
    }
    // Throughput by window.
    const steadyTps = tpsBetween(steadyFrom, steadyTo);
    const swapTps = tpsBetween(swapAt, releasedAt);
    const convergeTps = tpsBetween(swapAt, convergedAt);
    const afterTps = tpsBetween(releasedAt, afterTo);
    // The swap's phases, each ending where the last replica's heartbeat marked it.
    const fetchedAt = Math.max(...[...timelines.values()].map((t) => t.swapping ?? swapAt));
    const phases = {
      fetch: tpsBetween(swapAt, fetchedAt) / steadyTps,
      load_warm: tpsBetween(fetchedAt, convergedAt) / steadyTps,
      grace: tpsBetween(convergedAt, releasedAt) / steadyTps,
      release_1s: tpsBetween(releasedAt, releasedAt + RELEASE_PHASE_MS) / steadyTps,
    };

    const { failed, failures, perVersion, pinMismatches, tokenMismatches, versionsDiffer, versionsCompared } =
      checkRequests(done, MAX_TOKENS);

    const t = (id: string): ReplicaTimeline => timelines.get(id)!;
    // Memory per replica: steady median, peak in the swap window, median after the release.
    const memory = REPLICAS.map((id, i) => {
      const s = samplers[i]!;
      const steady = median(s.rssBetween(steadyFrom, steadyTo));
      const peak = Math.max(...s.rssBetween(swapAt, releasedAt));
      const released = t(id).released!;
      const after = median(s.rssBetween(released + RELEASE_SETTLE_MS, afterTo));
      return {
        id,
        steadyKiB: steady,
        peakKiB: peak,
        afterKiB: after,
        cpuSteady: s.cpuBetween(steadyFrom, steadyTo),
        cpuSwap: s.cpuBetween(swapAt, releasedAt),
        cpuConverge: s.cpuBetween(swapAt, t(id).serving2!),
        cpuAfter: s.cpuBetween(released + RELEASE_SETTLE_MS, afterTo),
      };
    });
    const peakRatio = Math.max(...memory.map((m) => m.peakKiB / m.steadyKiB));
    const afterRatio = Math.max(...memory.map((m) => m.afterKiB / m.steadyKiB));
    const machineSteady = memory[0]!.cpuSteady.machineBusy;
    const machineSwap = memory[0]!.cpuSwap.machineBusy;
    const cores = availableParallelism();
    const mib = (kib: number): number => +(kib / 1024).toFixed(1);
    const msFromSwap = (t: number | undefined): number => (t === undefined ? NaN : Math.round(t - swapAt));

    const summary = {
      swap_tps_ratio: +(swapTps / steadyTps).toFixed(3),
      swap_failed_requests: failed.length,
      swap_converge_ms: Math.round(convergedAt - swapAt),
      swap_peak_rss_ratio: +peakRatio.toFixed(3),
      rss_after_release_ratio: +afterRatio.toFixed(3),
      swap_window: 'alias write returned -> last replica heartbeat with no retiring version',
      swap_window_ms: Math.round(releasedAt - swapAt),
      converge_window_tps_ratio: +(convergeTps / steadyTps).toFixed(3),
      after_tps_ratio: +(afterTps / steadyTps).toFixed(3),
      phase_tps_ratio: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, +v.toFixed(3)])),
      // Against the mean of the windows on either side: less sensitive to a drift in what else
      // runs on the machine (the steady window is 20 s before, the after window 10 s later).
      swap_vs_steady_and_after_ratio: +((2 * swapTps) / (steadyTps + afterTps)).toFixed(3),
      machine_cpu_busy_steady: +machineSteady.toFixed(3),
      machine_cpu_busy_swap: +machineSwap.toFixed(3),
      machine_cores: cores,
      tokens_per_s_steady: Math.round(steadyTps),
      tokens_per_s_swap: Math.round(swapTps),
      tokens_per_s_converge_window: Math.round(convergeTps),
      tokens_per_s_after: Math.round(afterTps),
      requests: done.length,
      requests_per_version: perVersion,
      failures,
      pin_mismatches: pinMismatches,
      token_mismatches: tokenMismatches,
      versions_differ: `${versionsDiffer}/${versionsCompared}`,
      replicas: Object.fromEntries(
        REPLICAS.map((id, i) => {
          const t = timelines.get(id)!;
          const m = memory[i]!;
          return [
            id,
            {
              swapping_ms: msFromSwap(t.swapping),
              serving_2_ms: msFromSwap(t.serving2),
              released_ms: msFromSwap(t.released),
              rss_steady_mib: mib(m.steadyKiB),
              rss_peak_mib: mib(m.peakKiB),
              rss_after_release_mib: mib(m.afterKiB),
              rss_idle_after_gc_mib: mib(gcd[i]!.after.rss),
              heap_used_after_gc_mib: mib(gcd[i]!.after.heapUsed),
              external_after_gc_mib: mib(gcd[i]!.after.external),
              cpu_cores_steady: +m.cpuSteady.cores.toFixed(2),
              cpu_cores_converge_window: +m.cpuConverge.cores.toFixed(2),
              cpu_cores_swap: +m.cpuSwap.cores.toFixed(2),
              cpu_cores_after: +m.cpuAfter.cores.toFixed(2),
            },
          ];
        }),
      ),
      target_swap_tps_ratio: TARGET_TPS_RATIO,
      target_swap_converge_ms: TARGET_CONVERGE_MS,
      steady_s: STEADY_S,
      after_s: AFTER_S,
      concurrency: CONCURRENCY,
      max_tokens: MAX_TOKENS,
      replica_threads: THREADS,
      load_s: +((afterTo - loadStart) / 1_000).toFixed(1),
      weight_apply_ms: weightApply.median,
      weight_apply_ms_max: weightApply.max,
      weight_apply_routers: WEIGHT_ROUTERS,
      weight_apply_changes: WEIGHT_CHANGES,
    };
    const row = (name: string, value: number, unit: string): [string, number, string] => [
      name,
      Math.round(value * 1000) / 1000,
      unit,
    ];
    const mem = memory.flatMap((m, i): Array<[string, number, string]> => {
      const t = timelines.get(m.id)!;
      return [
        row(`${m.id} alias move -> fetched, loading`, msFromSwap(t.swapping), 'ms (download, sha256)'),
        row(`${m.id} alias move -> serving 2`, msFromSwap(t.serving2), 'ms (+ session load, warm-up)'),
        row(`${m.id} alias move -> 1 released`, msFromSwap(t.released), 'ms (+ retire grace, drain)'),
        row(`${m.id} RSS steady (median)`, m.steadyKiB / 1024, 'MiB'),
        row(`${m.id} RSS peak in the swap window`, m.peakKiB / 1024, 'MiB'),
        row(`${m.id} RSS after release (median)`, m.afterKiB / 1024, 'MiB'),
        row(`${m.id} RSS idle, after a full GC`, gcd[i]!.after.rss / 1024, 'MiB'),
        row(`${m.id} CPU, steady`, m.cpuSteady.cores, 'cores'),
        row(`${m.id} CPU, alias move -> converged`, m.cpuConverge.cores, 'cores'),
        row(`${m.id} CPU, swap window`, m.cpuSwap.cores, 'cores'),
      ];
    });
    process.stdout.write(
      `${table([
        row('tokens/s, steady window', steadyTps, `tok/s (${STEADY_S} s)`),
        row(
          'tokens/s, swap window',
          swapTps,
          `tok/s (alias move -> old released, ${summary.swap_window_ms} ms)`,
        ),
        row('swap / steady', summary.swap_tps_ratio, `(target >= ${TARGET_TPS_RATIO})`),
        row('tokens/s, alias move -> converged', convergeTps, 'tok/s (load and warm-up only)'),
        row('  that / steady', summary.converge_window_tps_ratio, ''),
        row('  phase: fetch (-> last replica swapping)', phases.fetch, 'x steady (download, sha256)'),
        row('  phase: load and warm (-> converged)', phases.load_warm, 'x steady'),
        row('  phase: retire grace (-> released)', phases.grace, 'x steady (new worker still cold)'),
        row('  phase: the first second after release', phases.release_1s, 'x steady (old workers stop)'),
        row('tokens/s, after the swap', afterTps, `tok/s (${AFTER_S} s, version 2)`),
        row('  that / steady', summary.after_tps_ratio, ''),
        row('swap / mean(steady, after)', summary.swap_vs_steady_and_after_ratio, '(drift-robust)'),
        row(
          'alias move -> all replicas on 2',
          summary.swap_converge_ms,
          `ms (target < ${TARGET_CONVERGE_MS})`,
        ),
        row('requests', done.length, `(v1 ${perVersion['1'] ?? 0}, v2 ${perVersion['2'] ?? 0})`),
        row('requests failed or cut', failed.length, '(target 0)'),
        row('end version != version pinned at ack', pinMismatches, 'requests'),
        row('tokens unlike the same request on its version', tokenMismatches, 'requests'),
        ...mem,
        row('machine CPU busy, steady', machineSteady * 100, `% of ${cores} cores (every process)`),
        row('machine CPU busy, swap window', machineSwap * 100, `% of ${cores} cores`),
        row('peak RSS / steady (worst replica)', peakRatio, ''),
        row('RSS after release / steady (worst)', afterRatio, ''),
        row(
          'rollout weight put -> last router applied',
          weightApply.median,
          `ms (median of ${WEIGHT_CHANGES}, worst ${weightApply.max}; ${WEIGHT_ROUTERS} routers)`,
        ),
      ])}\n`,
    );
    const targets: Array<[string, boolean]> = [
      [`swap tokens/s >= ${TARGET_TPS_RATIO} x steady`, summary.swap_tps_ratio >= TARGET_TPS_RATIO],
      ['no request failed', summary.swap_failed_requests === 0],
      [`converged < ${TARGET_CONVERGE_MS} ms`, summary.swap_converge_ms < TARGET_CONVERGE_MS],
      ['every request ended on its pinned version', pinMismatches === 0],
    ];
    for (const [name, met] of targets) process.stdout.write(`${met ? 'met   ' : 'MISSED'}  ${name}\n`);
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    for (const s of samplers) s.stop();
    await client?.close();
    await nc.close();
    await killAll(actors);
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Times rollout weight changes: WEIGHT_ROUTERS routers watch the rollouts bucket; each change is
 * timed from just before its put to the last router's onRolloutApplied of its revision.
 */
async function measureWeightApply(
  natsUrl: string,
  nc: Awaited<ReturnType<typeof connectNats>>,
): Promise<{ median: number; max: number }> {
  const kv = await new Kvm(jetstream(nc)).create(ROLLOUTS_BUCKET, { history: 1 });
  const appliedAt = new Map<number, number[]>();
  const routers: Router[] = [];
  try {
    for (let i = 0; i < WEIGHT_ROUTERS; i++) {
      routers.push(
        await startRouter({
          id: `roll-w${i}`,
          nats: { servers: natsUrl },
          onRolloutApplied: (_model, revision) => {
            const at = performance.now();
            appliedAt.set(revision, [...(appliedAt.get(revision) ?? []), at]);
          },
        }),
      );
    }
    const at = new Date().toISOString();
    const record = (weight: number): RolloutRecord => ({
      v: ROLLOUT_FORMAT_VERSION,
      id: 'bench-weight',
      model: 'bench-weight-model',
      stable: '1',
      canary: '2',
      alias: ALIAS,
      steps: [10, 25, 50, 100],
      step: 0,
      weight,
      state: 'running',
      canary_replicas_min: 1,
      canary_replicas: [],
      policy: DEFAULT_POLICY,
      by: 'bench',
      started_at: at,
      step_started_at: at,
      updated_at: at,
      reason: 'bench:rollout weight_apply_ms',
      decisions: [],
    });
    const applied = (revision: number): Promise<void> =>
      waitFor(
        `${WEIGHT_ROUTERS} routers applying revision ${revision}`,
        () => (appliedAt.get(revision)?.length ?? 0) >= WEIGHT_ROUTERS,
        WEIGHT_APPLY_TIMEOUT_MS,
      );
    // A first put that both routers see before anything is timed (their watches are running).
    await applied(await kv.put('bench-weight-model', encodeRolloutRecord(record(5))));
    const times: number[] = [];
    for (let i = 0; i < WEIGHT_CHANGES; i++) {
      const weight = [10, 25, 50, 75, 30, 60, 90][i % 7]!;
      const from = performance.now();
      const revision = await kv.put('bench-weight-model', encodeRolloutRecord(record(weight)));
      await applied(revision);
      times.push(Math.max(...appliedAt.get(revision)!) - from);
    }
    const round = (ms: number): number => Math.round(ms * 10) / 10;
    return { median: round(median(times)), max: round(Math.max(...times)) };
  } finally {
    await Promise.all(routers.map((r) => r.stop()));
  }
}

await main();
