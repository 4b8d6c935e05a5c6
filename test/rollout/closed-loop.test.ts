/**
 * The closed loop, end to end, for real: a nats-server with JetStream, router, two replicas
 * served from the registry (`registry://tiny-gpt2@stable`) and a collector as CLI processes.
 * Traffic with feedback from a rule-based rater (it prefers outputs made of the words its
 * corrections demonstrate) → `switchyard loop` (export → the reference trainer → push → rollout
 * start) → the trained candidate is promoted step by step on evidence. Then a worse candidate
 * (the base model, by ratings) and one whose replica fails its forward passes (fault injection)
 * are rolled back automatically with no request lost (every request ends: completed, or — only
 * a canary request caught holding a canary token — with engine_failed), and an idle canary
 * stays inconclusive and is held, never promoted.
 *
 * Why the verdicts cannot flake: every check runs at one-sided confidence 1 − 1e-9, and the
 * union bound over every check, look and judged step of this file (falseVerdictBound) caps the
 * chance that equal arms (error rate and latencies of two versions with the same architecture)
 * are ever declared worse at about 1e-6, before the margins are counted (a margin makes a false
 * "worse beyond the margin" far rarer still). The arms that must differ differ by far more than
 * their bounds' widths: ratings near 0 against near 1, errors on every canary request against
 * none.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/nats-core';
import { SwitchyardClient } from '../../src/client/client.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { decodeReplicaHeartbeat, type ReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { ALL_REPLICA_HEARTBEATS } from '../../src/cluster/subjects.ts';
import { freePort } from '../../src/cli/nats-server.ts';
import { SWITCHYARD_BIN } from '../../chaos/paths.ts';
import { Registry } from '../../src/registry/registry.ts';
import { armOf } from '../../src/rollout/arm.ts';
import { falseVerdictBound } from '../../src/rollout/judge.ts';
import { readPolicy } from '../../src/rollout/policy.ts';
import { RolloutStore } from '../../src/rollout/store.ts';
import type { RolloutRecord, RolloutState } from '../../src/rollout/types.ts';
import { ActorProcess, injectFault, killAll, waitFor } from '../helpers/cluster.ts';
import { waitForAliveReplicas } from '../helpers/metrics.ts';
import { TINY_MODEL, TINY_MODEL_V2 } from '../helpers/models.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const run = promisify(execFile);
const MODEL = 'tiny-gpt2';
/** What the rater's corrections demonstrate, and the words it rewards. */
const DEMONSTRATION = ' the yard and the cars and the yard and the cars';
const GOOD_WORDS = new Set(['the', 'yard', 'and', 'cars']);
const PROMPTS = Array.from(
  { length: 40 },
  (_, i) => `Question ${i}: what is in the ${['yard', 'kitchen', 'sky', 'river'][i % 4]}?`,
);
const MAX_TOKENS = 10;
const CONFIDENCE = 0.999_999_999;

/** The rater: the share of the output's words that the demonstration uses. */
function rate(text: string): number {
  const words = text.toLowerCase().match(/[a-z]+/g) ?? [];
  if (words.length === 0) return 0;
  return words.filter((w) => GOOD_WORDS.has(w)).length / words.length;
}

const check = (margin: number, minSamples: number, extra: object = {}): object => ({
  margin,
  min_samples: minSamples,
  confidence: CONFIDENCE,
  ...extra,
});
/** Latency margins are wide: two replicas on two shared cores are not a latency lab. */
const SERVING_CHECKS = { error_rate: check(0.35, 40), ttft: check(1.5, 40), tpot: check(1.5, 40) };
const PACING = { interval_ms: 500, min_step_ms: 0, max_looks: 240, on_inconclusive: 'hold' };
const POLICY = {
  checks: { ...SERVING_CHECKS, rating: check(0.1, 25, { require_better: true }) },
  ...PACING,
};
const ERRORS_POLICY = { checks: SERVING_CHECKS, ...PACING };
const IDLE_POLICY = {
  checks: POLICY.checks,
  interval_ms: 200,
  min_step_ms: 0,
  max_looks: 4,
  on_inconclusive: 'hold',
};

describe('the closed loop: feedback → dataset → trainer → canary → promotion or rollback', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let client: SwitchyardClient;
  let registry: Registry;
  let store: RolloutStore;
  const actors: ActorProcess[] = [];
  const beats = new Map<string, ReplicaHeartbeat>();
  const dir = mkdtempSync(join(tmpdir(), 'sy-loop-'));
  const policyFile = (name: string, policy: object): string => {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify(policy));
    return file;
  };
  const cli = (...args: string[]): Promise<{ stdout: string; stderr: string }> =>
    run(process.execPath, [SWITCHYARD_BIN, ...args, '--nats', server.url], { timeout: 240_000 });
  const rollout = async (): Promise<RolloutRecord> => (await store.get(MODEL))!.record;
  const settled = (states: RolloutState[], ms = 180_000): Promise<void> =>
    waitFor(`rollout in ${states.join('|')}`, async () => states.includes((await rollout()).state), ms);

  /** What traffic got: every request ends, completed or with a typed error. */
  interface Outcome {
    id: string;
    version?: string;
    error?: string;
    code?: string;
    rating?: number;
  }

  let seq = 0;
  /** Sends requests (concurrency 3) with rated feedback until `done()`; returns every outcome. */
  async function traffic(done: () => boolean | Promise<boolean>, correct = false): Promise<Outcome[]> {
    const outcomes: Outcome[] = [];
    let stop = false;
    const worker = async (): Promise<void> => {
      while (!stop) {
        const i = seq++;
        const id = `loop-${i}`;
        const req = {
          model: MODEL,
          prompt: PROMPTS[i % PROMPTS.length]!,
          maxTokens: MAX_TOKENS,
          temperature: 0,
        };
        try {
          const r = await client.generate(req, { requestId: id });
          const rating = rate(r.text);
          await client.feedback(id, { rating, ...(correct ? { correction: DEMONSTRATION } : {}) });
          outcomes.push({ id, rating, ...(r.modelVersion !== undefined ? { version: r.modelVersion } : {}) });
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          outcomes.push({
            id,
            error: err instanceof Error ? err.message : String(err),
            ...(typeof code === 'string' ? { code } : {}),
          });
        }
      }
    };
    const workers = Array.from({ length: 3 }, worker);
    await waitFor('traffic to end', async () => await done(), 240_000);
    stop = true;
    await Promise.all(workers);
    return outcomes;
  }

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    nc = await connectNats({ servers: server.url });
    nc.subscribe(ALL_REPLICA_HEARTBEATS, {
      callback: (err, msg) => {
        if (err) return;
        const hb = decodeReplicaHeartbeat(msg.data);
        beats.set(hb.id, hb);
      },
    });
    registry = await Registry.open(nc, { create: true });
    await registry.push(TINY_MODEL, { version: '1' });
    await registry.push(TINY_MODEL_V2, { version: '2' });
    await registry.alias(MODEL, 'stable', '1', { by: 'test', reason: 'start' });
    const port = await freePort();
    const replicaArgs = ['--model', `registry://${MODEL}@stable`, '--model-cache', join(dir, 'cache')];
    actors.push(
      ...(await Promise.all([
        ActorProcess.start('router', 'lr', server.url, ['--metrics-port', String(port)]),
        ActorProcess.start('replica', 'la', server.url, replicaArgs),
        ActorProcess.start('replica', 'lb', server.url, replicaArgs),
        ActorProcess.start('collector', 'lc', server.url),
      ])),
    );
    await waitForAliveReplicas(`http://127.0.0.1:${port}/metrics`, 'lr', 2);
    client = await SwitchyardClient.connect({ nc });
    store = await RolloutStore.open(nc, { create: true });
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await killAll(actors);
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('states how improbable a false verdict on equal arms is', () => {
    // Judged steps: 2 (promotion) + 1 (worse ratings) + 1 (errors); the idle rollout never passes
    // min_samples, so it cannot err. Each bound counts every check at every look.
    const bounds = [
      falseVerdictBound(readPolicy('policy', POLICY), 2),
      falseVerdictBound(readPolicy('policy', POLICY), 1),
      falseVerdictBound(readPolicy('policy', ERRORS_POLICY), 1),
    ];
    // A false fail of equal arms, or (rating's require_better) a false pass of equal ratings.
    const bound = bounds.reduce((n, b) => n + b.total + b.falsePassTotal, 0);
    assert.ok(bound < 5e-6, `a false verdict bound of ${bound}`);
  });

  it('promotes the trained candidate step by step on evidence', async () => {
    // Traffic with corrections: the dataset the trainer learns from.
    const seeded = await traffic(() => seq >= 160, true);
    assert.deepEqual(
      seeded.filter((o) => o.error !== undefined),
      [],
      'no request failed',
    );
    const base = seeded.reduce((n, o) => n + (o.rating ?? 0), 0) / seeded.length;
    await waitFor('the feedback joined', async () => {
      const { stdout } = await cli('dataset', 'stats', '--json');
      const stats = JSON.parse(stdout) as { versions: Array<{ feedback?: { count?: number } }> };
      return stats.versions.reduce((n, v) => n + (v.feedback?.count ?? 0), 0) >= 160;
    });
    const loop = await cli(
      'loop',
      '--model',
      MODEL,
      '--work-dir',
      join(dir, 'loop'),
      '--steps',
      '25,50',
      '--policy',
      policyFile('policy', POLICY),
    );
    const started = await rollout();
    assert.equal(started.stable, '1', loop.stderr);
    assert.notEqual(started.canary, '1');
    const trained = started.canary;

    const during = await traffic(async () => {
      const state = (await rollout()).state;
      return state === 'promoted' || state === 'rolled_back' || state === 'held';
    });
    const r = await rollout();
    assert.equal(r.state, 'promoted', `${r.reason}\n${JSON.stringify(r.decisions.slice(-3), null, 1)}`);
    assert.deepEqual(
      during.filter((o) => o.error !== undefined),
      [],
      'no request failed during the rollout',
    );
    // Step by step: an advance from 25% to 50% and a promotion, each on a look where every check passed.
    const judged = r.decisions.filter((d) => d.action === 'advance' || d.action === 'promote');
    const passed = judged.filter((d) => d.checks.length > 0);
    assert.deepEqual(
      passed.map((d) => [d.action, d.weight]),
      [
        ['advance', 25],
        ['promote', 50],
      ],
    );
    for (const d of passed)
      assert.ok(
        d.checks.every((c) => c.verdict === 'pass'),
        d.reason,
      );
    const rating = passed[1]!.checks.find((c) => c.check === 'rating')!;
    assert.ok(rating.canary.mean > rating.stable.mean, rating.reason);
    await waitFor('every replica on the trained version', () =>
      ['la', 'lb'].every((id) => beats.get(id)?.modelVersion === trained),
    );
    assert.equal((await registry.getAlias(MODEL, 'stable'))?.version, trained);
    const canaryRatings = during.filter((o) => o.version === trained).map((o) => o.rating ?? 0);
    const mean = canaryRatings.reduce((a, b) => a + b, 0) / canaryRatings.length;
    assert.ok(mean > base, `the trained version rates ${mean}, the base ${base}`);
  });

  it('rolls back a candidate with worse ratings: no request lost, the alias and replicas restored', async () => {
    const stable = (await rollout()).canary;
    await cli('rollout', 'start', MODEL, '1', '--steps', '50', '--policy', policyFile('policy', POLICY));
    const outcomes = await traffic(async () =>
      ['rolled_back', 'promoted', 'held'].includes((await rollout()).state),
    );
    const r = await rollout();
    assert.equal(r.state, 'rolled_back', r.reason);
    const rollback = r.decisions.find((d) => d.action === 'rollback' && d.checks.length > 0)!;
    assert.equal(rollback.checks.find((c) => c.check === 'rating')?.verdict, 'fail', rollback.reason);
    assert.deepEqual(
      outcomes.filter((o) => o.error !== undefined),
      [],
      'no request failed',
    );
    await waitFor('every replica back on the stable version', () =>
      ['la', 'lb'].every((id) => beats.get(id)?.modelVersion === stable),
    );
    assert.equal((await registry.getAlias(MODEL, 'stable'))?.version, stable);
  });

  it('rolls back a candidate whose replica fails its forward passes, at once, and every request ends', async () => {
    const stable = (await registry.getAlias(MODEL, 'stable'))!.version;
    await cli(
      'rollout',
      'start',
      MODEL,
      '2',
      '--steps',
      '50',
      '--policy',
      policyFile('errors', ERRORS_POLICY),
    );
    await settled(['running']);
    const canaries = (await rollout()).canary_replicas;
    for (const id of canaries) await injectFault(nc, id, { fail_steps: 1_000_000 });
    const outcomes = await traffic(async () =>
      ['rolled_back', 'promoted', 'held'].includes((await rollout()).state),
    );
    for (const id of canaries) await injectFault(nc, id, { fail_steps: 0 });
    const r = await rollout();
    assert.equal(r.state, 'rolled_back', r.reason);
    const rollback = r.decisions.find((d) => d.action === 'rollback' && d.checks.length > 0)!;
    assert.equal(rollback.checks.find((c) => c.check === 'error_rate')?.verdict, 'fail', rollback.reason);
    // Nothing lost: every request ended. A canary attempt that failed before its first token was
    // retried on stable (the evidence counts the failover against the canary); one that failed
    // holding a canary token cannot continue exactly anywhere else and ends with engine_failed —
    // and only canary-arm requests may (the arm is a function of the request id).
    assert.ok(outcomes.length > 0);
    const failed = outcomes.filter((o) => o.error !== undefined);
    for (const o of failed) {
      assert.equal(o.code, 'engine_failed', o.error);
      assert.equal(armOf(r.id, o.id, 50), 'canary', `${o.id} failed on the stable arm: ${o.error}`);
    }
    assert.ok(failed.length < outcomes.length, 'some requests completed');
    await waitFor('every replica back on the stable version', () =>
      ['la', 'lb'].every((id) => beats.get(id)?.modelVersion === stable),
    );
  });

  it('an idle canary stays inconclusive: held for an operator, never promoted, then aborted', async () => {
    const stable = (await registry.getAlias(MODEL, 'stable'))!.version;
    await cli('rollout', 'start', MODEL, '2', '--steps', '50', '--policy', policyFile('idle', IDLE_POLICY));
    await settled(['held', 'promoted', 'rolled_back']);
    const r = await rollout();
    assert.equal(r.state, 'held', r.reason);
    const looks = r.decisions.filter((d) => d.look > 0);
    assert.equal(looks.length, IDLE_POLICY.max_looks);
    assert.ok(looks.every((d) => d.verdict === 'inconclusive'));
    assert.equal((await registry.getAlias(MODEL, 'stable'))?.version, stable);
    const status = await cli('rollout', 'status', MODEL);
    assert.match(status.stdout, /held/);
    await cli('rollout', 'abort', MODEL, '--reason', 'idle');
    await settled(['aborted']);
    await waitFor('every replica back on the stable version', () =>
      ['la', 'lb'].every((id) => beats.get(id)?.modelVersion === stable),
    );
  });
});
