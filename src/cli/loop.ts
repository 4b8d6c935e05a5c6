/**
 * `switchyard loop`: one round is export (the model's SFT records) → train (`runTraining`, the
 * trainer interface) → push (the registry, with lineage) → rollout start (the candidate on a
 * canary, judged by the collector). Without `--every-feedback` it runs one round and exits; with
 * it, it runs a round each time the model's feedback count has grown by N since the last round.
 * A time schedule is left to cron: run `switchyard loop` from it.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../cluster/connection.ts';
import { assertId } from '../cluster/subjects.ts';
import { resolveLoopConfig } from '../config/actors.ts';
import { subcommandHelp } from '../config/help.ts';
import { LOOP_TABLE, type LoopSettings } from '../config/loop-table.ts';
import { StartupError } from '../errors/errors.ts';
import { Registry } from '../registry/registry.ts';
import { registryUrl } from '../registry/source.ts';
import type { VersionLineage } from '../registry/version-manifest.ts';
import { startRollout, type StartRolloutOptions } from '../rollout/start.ts';
import { parseSteps, readPolicyFile } from '../rollout/policy.ts';
import { collectorStats, exportDataset } from './dataset.ts';
import { operatorConnection } from './local-up.ts';
import { resolveBase, runTraining } from './train.ts';

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** `--steps`, read as `rollout start` reads it; a bad list is a usage error. */
function stepsOf(text: string): number[] {
  try {
    return parseSteps(text);
  } catch (err) {
    throw new StartupError('config', (err as Error).message, { cause: err });
  }
}

/** The feedback items the collector holds for one model, over all its versions. */
export async function feedbackCount(nc: NatsConnection, model: string, timeoutMs: number): Promise<number> {
  const stats = await collectorStats(nc, timeoutMs);
  return stats.versions.filter((v) => v.model === model).reduce((n, v) => n + v.feedback.count, 0);
}

/** The lineage a trained folder's manifest records (the reference trainer writes it), else what the run knows. */
async function lineageOf(
  out: string,
  parent: string,
  datasetSha: string,
  trainer: string,
): Promise<VersionLineage> {
  const fallback: VersionLineage = { parent, dataset: datasetSha, trainer };
  try {
    const m = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as { lineage?: VersionLineage };
    return { ...fallback, ...m.lineage };
  } catch {
    return fallback;
  }
}

/** One round; returns the version it started a rollout of. */
async function round(nc: NatsConnection, s: LoopSettings, model: string, workDir: string): Promise<string> {
  const dir = join(workDir, new Date().toISOString().replaceAll(':', '-'));
  const datasetDir = join(dir, 'dataset');
  const out = join(dir, 'model');
  await mkdir(dir, { recursive: true });
  say(`loop: exporting ${model}'s ${s.format} records into ${datasetDir}`);
  await exportDataset(
    nc,
    { format: s.format, out: datasetDir, filters: { model }, timeoutMs: s.timeoutMs },
    say,
  );
  const base = await resolveBase(s.base ?? registryUrl(model, 'stable'), s.nats, s.timeoutMs, say);
  const outcome = await runTraining({
    dataset: join(datasetDir, 'manifest.json'),
    base,
    out,
    ...(s.trainer !== undefined ? { trainer: s.trainer } : {}),
  });
  const datasetSha = createHash('sha256')
    .update(await readFile(join(datasetDir, 'manifest.json')))
    .digest('hex');
  const lineage = await lineageOf(
    out,
    outcome.baseManifest.version,
    datasetSha,
    s.trainer ?? 'switchyard train-reference',
  );
  const registry = await Registry.open(nc, { create: true, timeoutMs: s.timeoutMs });
  const { manifest: pushed } = await registry.push(out, { id: model, lineage });
  say(`loop: pushed ${pushed.id}@${pushed.version} (digest ${pushed.digest.slice(0, 12)})`);
  const opts: StartRolloutOptions = { model, version: pushed.version };
  if (s.steps !== undefined) opts.steps = stepsOf(s.steps);
  if (s.canaryReplicas !== undefined) opts.canaryReplicas = s.canaryReplicas;
  if (s.policy !== undefined) opts.policy = await readPolicyFile(s.policy);
  const rollout = await startRollout(nc, opts);
  say(`loop: rollout of ${model}@${pushed.version} started (${rollout.state})`);
  return pushed.version;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `switchyard loop`; resolves to the exit status. */
export async function loopCommand(argv: readonly string[]): Promise<number> {
  const resolved = resolveLoopConfig({ argv });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(LOOP_TABLE));
    return 0;
  }
  const s = resolved.settings;
  if (s.model === undefined) throw new StartupError('config', 'loop needs --model ID');
  if (s.workDir === undefined) throw new StartupError('config', 'loop needs --work-dir DIR');
  assertId('model id', s.model);
  if (s.steps !== undefined) stepsOf(s.steps); // refuse a bad list before the first round
  const nc = await connectNats({ name: 'switchyard-loop', ...operatorConnection('loop', s.nats, say) });
  try {
    const workDir = resolve(s.workDir);
    if (s.everyFeedback === undefined) {
      await round(nc, s, s.model, workDir);
      return 0;
    }
    let last = await feedbackCount(nc, s.model, s.timeoutMs);
    say(
      `loop: ${last} feedback item(s) on ${s.model} now; a round starts after every ${s.everyFeedback} more`,
    );
    for (;;) {
      await sleep(s.pollMs);
      const now = await feedbackCount(nc, s.model, s.timeoutMs);
      if (now - last < s.everyFeedback) continue;
      last = now;
      await round(nc, s, s.model, workDir);
    }
  } finally {
    await nc.close();
  }
}
