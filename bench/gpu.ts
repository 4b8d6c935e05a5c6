/**
 * `npm run bench:gpu` — the WebGPU provider against the CPU provider, side by side in one run, on
 * the same model, prompts, token counts and threads, through the engine's own scheduler and
 * decoder (the KV cache on the device for WebGPU, in JS memory for the CPU):
 *   - decode tokens/s at each batch × context, and the webgpu/cpu ratio;
 *   - decode step time against context length;
 *   - host bytes per decode step, counted by a wrapper over onnxruntime's calls (OrtMeter): the
 *     bytes of every host tensor fed to or returned by a run;
 *   - greedy agreement (token-identical streams), and how often seeded streams at temperature 1
 *     differ between the providers (measured, not asserted: float rounding differs per kernel);
 *   - what compacting out a row and joining one cost against a decode step (the cache reshapes).
 * Context c means c positions in the KV cache at the last step: prompts of c − new tokens.
 *
 * Profiles: `small` (batch 1 and 8, context 128 and 512, 16 new tokens) ends in minutes on
 * SwiftShader, whose numbers prove nothing about speed (a software Vulkan driver on the CPU);
 * `full` (batch 1, 8, 32, 64; context 128, 512, 2048; 64 new tokens) is for a real GPU; `smoke`
 * only checks that it runs. `auto` picks small on SwiftShader or without nvidia-smi.
 *
 *   npm run bench:gpu [-- --profile auto|small|full --threads N --out result.json]
 *
 * The last line printed is one JSON object with at least webgpu_vs_cpu_b8_c512,
 * host_bytes_per_step_webgpu, host_bytes_per_step_cpu and ran_on. `scripts/gpu-bundle.mjs` packs
 * this script, Node, onnxruntime and a prebuilt model for a GPU machine without Node or network.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { swiftShaderEnv } from '../src/engine/device.ts';
import { loadModelInfo, type ModelInfo } from '../src/engine/model-info.ts';
import { OnnxDecoder } from '../src/engine/onnx-decoder.ts';
import { OrtMeter } from '../src/engine/ort-meter.ts';
import { GREEDY, type SamplingParams } from '../src/engine/sampling.ts';
import { Scheduler } from '../src/engine/scheduler.ts';
import type { ScheduledRequest } from '../src/engine/step.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The repository's models when run from bench/, the bundle's when run from a GPU bundle. */
const MODELS = process.env.SWITCHYARD_BENCH_MODELS ?? join(HERE, '..', 'models');

const { values: args } = parseArgs({
  options: {
    profile: { type: 'string', default: 'auto' },
    threads: { type: 'string', default: String(availableParallelism()) },
    model: { type: 'string', default: join(MODELS, 'tiny-gpt2') },
    'model-2048': { type: 'string', default: join(MODELS, 'tiny-gpt2-ctx2048') },
    providers: { type: 'string', default: 'cpu,webgpu' },
    'deadline-s': { type: 'string', default: '480' },
    out: { type: 'string' },
  },
});

interface Profile {
  batches: number[];
  contexts: number[];
  newTokens: number;
  /** Seeded streams at temperature 1 compared between the providers, and their length. */
  disagreementStreams: number;
  disagreementTokens: number;
}
const PROFILES: Record<'smoke' | 'small' | 'full', Profile> = {
  /** Checks that a bundle runs at all (seconds, even on SwiftShader). */
  smoke: { batches: [1], contexts: [128], newTokens: 4, disagreementStreams: 2, disagreementTokens: 8 },
  small: {
    batches: [1, 8],
    contexts: [128, 512],
    newTokens: 16,
    disagreementStreams: 8,
    disagreementTokens: 24,
  },
  full: {
    batches: [1, 8, 32, 64],
    contexts: [128, 512, 2048],
    newTokens: 64,
    disagreementStreams: 64,
    disagreementTokens: 64,
  },
};

function nvidiaGpus(): string[] {
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0
    ? r.stdout
        .trim()
        .split('\n')
        .filter((l) => l !== '')
    : [];
}

const gpus = nvidiaGpus();
// No GPU and no driver named: run WebGPU on SwiftShader, and say so in ran_on (before the first
// WebGPU session: the Vulkan loader reads these when Dawn starts).
if (
  gpus.length === 0 &&
  process.env.VK_ICD_FILENAMES === undefined &&
  process.env.VK_DRIVER_FILES === undefined
) {
  const env = swiftShaderEnv();
  if (typeof env === 'string') console.error(`bench:gpu: no GPU found and ${env}; webgpu will fail`);
  else Object.assign(process.env, env);
}
const onSwiftShader = /swiftshader/i.test(process.env.VK_ICD_FILENAMES ?? process.env.VK_DRIVER_FILES ?? '');
const profileName =
  args.profile === 'auto' ? (onSwiftShader || gpus.length === 0 ? 'small' : 'full') : args.profile;
if (profileName !== 'smoke' && profileName !== 'small' && profileName !== 'full') {
  throw new Error(`--profile: smoke, small, full or auto, got '${args.profile}'`);
}
const profile = PROFILES[profileName];
const threads = Number(args.threads);
const providers = args.providers.split(',') as Array<'cpu' | 'webgpu'>;
const deadline = performance.now() + Number(args['deadline-s']) * 1000;

const ranOn = {
  webgpu: onSwiftShader
    ? 'SwiftShader (software Vulkan on the CPU): correctness only, its speed proves nothing'
    : gpus.length > 0
      ? `first Vulkan adapter; nvidia-smi: ${gpus.join('; ')}`
      : 'first Vulkan adapter (no nvidia-smi)',
  cpu: `${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}, ${threads} intra-op thread(s)`,
  host: hostname(),
  node: process.version,
};

/** A fixed prompt of `n` token ids, different per row. */
function prompt(n: number, row: number): number[] {
  return Array.from({ length: n }, (_, i) => 3 + ((i * 131 + row * 977) % 1000));
}

interface Decoders {
  decoder: OnnxDecoder;
  meter: OrtMeter;
  info: ModelInfo;
}
const loaded = new Map<string, Decoders>();

async function decoderFor(provider: 'cpu' | 'webgpu', modelDir: string): Promise<Decoders> {
  const key = `${provider} ${modelDir}`;
  const have = loaded.get(key);
  if (have) return have;
  const info = await loadModelInfo(modelDir);
  const meter = new OrtMeter();
  const decoder = await OnnxDecoder.load(info, {
    device: provider === 'cpu' ? { kind: 'cpu' } : { kind: 'webgpu', id: 0 },
    intraOpThreads: threads,
    interOpThreads: 1,
    spinning: false,
    meter,
  });
  const d = { decoder, meter, info };
  loaded.set(key, d);
  // Warm-up: shader compilation and allocator growth happen outside the measured runs.
  await generate(d, [prompt(8, 0), prompt(5, 1)], 4, () => GREEDY);
  return d;
}

interface RunResult {
  tokens: number[][];
  prefillMs: number;
  stepMs: number[];
  hostBytesPerStep: number;
  liveGpuBuffersAfter: number;
}

/** Runs `prompts` as one batch to `newTokens` each; times the prefill and every decode step. */
async function generate(
  d: Decoders,
  prompts: number[][],
  newTokens: number,
  sampling: (row: number) => SamplingParams,
): Promise<RunResult> {
  const longest = Math.max(...prompts.map((p) => p.length));
  const scheduler = new Scheduler(d.decoder, [], {
    maxBatchSize: prompts.length,
    tokenBudget: prompts.length * (longest + newTokens),
    maxPrefillTokens: prompts.length * longest,
    padTokenId: d.info.padTokenId,
    eosTokenIds: d.info.eosTokenIds,
  });
  const tokens = prompts.map(() => [] as number[]);
  prompts.forEach((p, i) => {
    const req: ScheduledRequest = {
      id: i,
      promptIds: p,
      resumeIds: [],
      maxTokens: newTokens,
      sampling: sampling(i),
      stop: [],
      ignoreEos: true,
    };
    scheduler.submit(req);
  });
  const take = (events: Awaited<ReturnType<Scheduler['decode']>>): void => {
    for (const e of events) {
      if (e.finish?.error) throw new Error(`request ${e.id} failed: ${e.finish.error.message}`);
      tokens[e.id]!.push(...e.tokenIds);
    }
  };
  let t = performance.now();
  take(await scheduler.prefill());
  const prefillMs = performance.now() - t;
  const bytesBefore = d.meter.hostBytes;
  const stepMs: number[] = [];
  while (scheduler.hasWork) {
    t = performance.now();
    take(await scheduler.decode());
    stepMs.push(performance.now() - t);
  }
  const steps = Math.max(1, stepMs.length);
  return {
    tokens,
    prefillMs,
    stepMs,
    hostBytesPerStep: Math.round((d.meter.hostBytes - bytesBefore) / steps),
    liveGpuBuffersAfter: d.meter.liveGpuBuffers,
  };
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

interface Cell {
  provider: 'cpu' | 'webgpu';
  batch: number;
  context: number;
  model: string;
  decode_tokens_per_s: number;
  step_ms_mean: number;
  prefill_ms: number;
  host_bytes_per_step: number;
  live_gpu_buffers_after: number;
}

const cells: Cell[] = [];
const skipped: string[] = [];
const greedyMismatches: string[] = [];

for (const context of profile.contexts) {
  const modelDir = context > 512 ? args['model-2048'] : args.model;
  if (!existsSync(join(modelDir, 'manifest.json'))) {
    skipped.push(
      `context ${context}: ${modelDir} is not built (tsx models/build.ts --context 2048 --out ${modelDir})`,
    );
    continue;
  }
  for (const batch of profile.batches) {
    if (performance.now() > deadline) {
      skipped.push(`batch ${batch} context ${context}: past the deadline`);
      continue;
    }
    const prompts = Array.from({ length: batch }, (_, r) => prompt(context - profile.newTokens, r));
    const byProvider = new Map<string, RunResult>();
    for (const provider of providers) {
      const d = await decoderFor(provider, modelDir);
      const r = await generate(d, prompts, profile.newTokens, () => GREEDY);
      byProvider.set(provider, r);
      const decodeTokens = batch * r.stepMs.length;
      const cell: Cell = {
        provider,
        batch,
        context,
        model: modelDir,
        decode_tokens_per_s: round(decodeTokens / (sum(r.stepMs) / 1000), 1),
        step_ms_mean: round(sum(r.stepMs) / Math.max(1, r.stepMs.length)),
        prefill_ms: round(r.prefillMs, 1),
        host_bytes_per_step: r.hostBytesPerStep,
        live_gpu_buffers_after: r.liveGpuBuffersAfter,
      };
      cells.push(cell);
      console.log(
        `${provider.padEnd(7)} b${String(batch).padEnd(3)} c${String(context).padEnd(5)} ` +
          `${String(cell.decode_tokens_per_s).padStart(9)} tok/s  step ${String(cell.step_ms_mean).padStart(8)} ms  ` +
          `prefill ${String(cell.prefill_ms).padStart(9)} ms  host ${String(cell.host_bytes_per_step).padStart(10)} B/step`,
      );
    }
    const [a, b] = [byProvider.get('cpu'), byProvider.get('webgpu')];
    if (a && b && JSON.stringify(a.tokens) !== JSON.stringify(b.tokens)) {
      greedyMismatches.push(`b${batch} c${context}`);
    }
  }
}

/** Seeded streams at temperature 1: how many differ between the providers, and where. */
async function disagreement(): Promise<Record<string, number> | string> {
  if (!providers.includes('cpu') || !providers.includes('webgpu')) return 'needs both providers';
  if (performance.now() > deadline) return 'past the deadline';
  const n = profile.disagreementStreams;
  const prompts = Array.from({ length: n }, (_, r) => prompt(8 + (r % 24), r + 100));
  const hot = (row: number): SamplingParams => ({ ...GREEDY, temperature: 1, topP: 1, seed: 1000 + row });
  const [cpu, gpu] = [
    await generate(await decoderFor('cpu', args.model), prompts, profile.disagreementTokens, hot),
    await generate(await decoderFor('webgpu', args.model), prompts, profile.disagreementTokens, hot),
  ];
  let differ = 0;
  let firstDivergence = 0;
  cpu.tokens.forEach((t, i) => {
    const other = gpu.tokens[i]!;
    const at = t.findIndex((tok, k) => tok !== other[k]);
    if (at >= 0) {
      differ++;
      firstDivergence += at;
    }
  });
  return {
    streams: n,
    tokens_each: profile.disagreementTokens,
    differing_streams: differ,
    differing_fraction: round(differ / n, 3),
    mean_first_divergence: differ === 0 ? -1 : round(firstDivergence / differ, 1),
  };
}
const highTemperature = await disagreement();

/**
 * What continuous batching's cache reshapes cost against a decode step, at batch 8 and context
 * 512 (or the profile's largest below): compacting out one finished row (select) and joining one
 * newcomer (append). On webgpu these are the device graphs; on cpu, copies in JS memory.
 */
async function reshapeCost(): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  const batch = Math.min(8, Math.max(...profile.batches));
  const context = Math.min(512, Math.max(...profile.contexts));
  if (batch < 2 || performance.now() > deadline) return out;
  const S = context - profile.newTokens;
  for (const provider of providers) {
    const d = await decoderFor(provider, args.model);
    const rows = Array.from({ length: batch }, (_, r) => prompt(S, r));
    const forwardOf = (ids: number[][]): Parameters<OnnxDecoder['forward']>[0] => {
      const n = ids.length;
      const len = ids[0]!.length;
      return {
        batchSize: n,
        seqLen: len,
        inputIds: BigInt64Array.from(ids.flat(), BigInt),
        positionIds: BigInt64Array.from(ids.flat(), (_, i) => BigInt(i % len)),
        attentionMask: new BigInt64Array(n * len).fill(1n),
      };
    };
    const cache = d.decoder.newCache(batch);
    const newcomer = d.decoder.newCache(1);
    try {
      await d.decoder.forward(forwardOf(rows), cache);
      await d.decoder.forward(forwardOf([prompt(S / 2, 99)]), newcomer);
      let t = performance.now();
      await cache.select(
        Array.from({ length: batch - 1 }, (_, i) => i + 1),
        0,
      );
      const selectMs = performance.now() - t;
      t = performance.now();
      await cache.append(newcomer);
      const appendMs = performance.now() - t;
      const step = cell(provider, batch, context)?.step_ms_mean;
      out[`${provider}_b${batch}_c${context}`] = {
        select_ms: round(selectMs),
        append_ms: round(appendMs),
        ...(step === undefined ? {} : { decode_step_ms: step }),
      };
    } finally {
      cache.dispose();
      newcomer.dispose();
    }
  }
  return out;
}

const cell = (p: string, b: number, c: number): Cell | undefined =>
  cells.find((x) => x.provider === p && x.batch === b && x.context === c);
const reshapes = await reshapeCost();

for (const d of loaded.values()) await d.decoder.release();
const ratios: Record<string, number> = {};
for (const c of cells.filter((x) => x.provider === 'webgpu')) {
  const base = cell('cpu', c.batch, c.context);
  if (base)
    ratios[`webgpu_vs_cpu_b${c.batch}_c${c.context}`] = round(
      c.decode_tokens_per_s / base.decode_tokens_per_s,
      3,
    );
}
const stepVsContext: Record<string, Record<string, number>> = {};
for (const c of cells.filter((x) => x.batch === 8 || x.batch === Math.max(...profile.batches))) {
  (stepVsContext[`${c.provider}_b${c.batch}`] ??= {})[`c${c.context}`] = c.step_ms_mean;
}

const result = {
  bench: 'gpu',
  profile: profileName,
  speed_meaningful: !onSwiftShader,
  ran_on: ranOn,
  new_tokens: profile.newTokens,
  webgpu_vs_cpu_b8_c512: ratios.webgpu_vs_cpu_b8_c512 ?? null,
  host_bytes_per_step_webgpu: cell('webgpu', 8, 512)?.host_bytes_per_step ?? null,
  host_bytes_per_step_cpu: cell('cpu', 8, 512)?.host_bytes_per_step ?? null,
  ratios,
  step_ms_vs_context: stepVsContext,
  greedy_identical: greedyMismatches.length === 0,
  greedy_mismatches: greedyMismatches,
  high_temperature: highTemperature,
  cache_reshape: reshapes,
  live_gpu_buffers_after: Math.max(0, ...cells.map((c) => c.live_gpu_buffers_after)),
  skipped,
  cells,
};
if (args.out !== undefined) writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result));
