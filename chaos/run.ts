/**
 * `npm run chaos [-- <scenario>…] [--seed N] [--duration S] [--load N] [--profile short]`:
 * for each scenario, a fresh secured topology, a load client process, the scenario's fault while
 * the load runs, and the History written to chaos/reports/<timestamp>/<scenario>.json, with a
 * summary.md of the run. The history checker (chaos/history/checker.ts) judges the invariants.
 * `--plant duplicate|drop-end|change-token` is the runner's self-test: it corrupts one recorded
 * operation before checking (chaos/plant.ts), and the run must then fail naming that verdict;
 * `--plant duplicate-event|drop-event` corrupts the live capture instead (chaos/capture.ts).
 * After each scenario the capture (the collector's records, the completions stream) is read and
 * checked against the history (chaos/history/capture.ts);
 * `--reports DIR` puts the report folder under DIR instead of chaos/reports.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../models/onnx/gpt2-graph.ts';
import type { History, Operation } from './history/types.ts';
import { LoadClient } from './load.ts';
import { loadPlans } from './load-plans.ts';
import { loadRequests, withReferences } from './references.ts';
import { checkHistory, type CheckResult } from './history/checker.ts';
import { caughtMistarget } from './control.ts';
import { PROFILES, type Profile } from './profile.ts';
import { collectEvents } from './events.ts';
import {
  CAPTURE_PLANTS,
  isCapturePlantKind,
  isPlantKind,
  plant,
  PLANTS,
  type CapturePlantKind,
  type PlantKind,
} from './plant.ts';
import { CaptureWatch, readCapture } from './capture.ts';
import { reportDir, summary, writeHistory, writeScenarioReport, type ScenarioResult } from './report.ts';
import { SCENARIOS } from './scenarios/index.ts';
import type { Scenario } from './scenarios/scenario.ts';
import { Topology } from './topology.ts';

const REPORTS = join(dirname(fileURLToPath(import.meta.url)), 'reports');

function options(): {
  scenarios: Scenario[];
  seed: number;
  profile: Profile;
  plant?: PlantKind | CapturePlantKind;
  /** Where the run's report folder is made (tests use a temp dir). */
  reports: string;
} {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seed: { type: 'string' },
      duration: { type: 'string' },
      load: { type: 'string' },
      profile: { type: 'string', default: 'full' },
      plant: { type: 'string' },
      reports: { type: 'string' },
    },
  });
  const name = values.profile;
  if (name !== 'short' && name !== 'full') throw new Error(`--profile: expected short or full, got ${name}`);
  const profile: Profile = { ...PROFILES[name] };
  const positive = (flag: string, v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag}: expected a positive number, got ${v}`);
    return n;
  };
  if (values.duration !== undefined)
    profile.durationMs = positive('--duration (seconds)', values.duration) * 1000;
  if (values.load !== undefined) profile.count = Math.floor(positive('--load (requests)', values.load));
  const seed =
    values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : positive('--seed', values.seed);
  const known = new Map(SCENARIOS.map((s) => [s.name, s]));
  const scenarios = positionals.map((p) => {
    const s = known.get(p);
    if (s === undefined) throw new Error(`unknown scenario ${p}; known: ${[...known.keys()].join(', ')}`);
    return s;
  });
  // Without names: every scenario, or under the short profile the ones marked short.
  const all = name === 'short' ? SCENARIOS.filter((s) => s.short === true) : [...SCENARIOS];
  const planted = values.plant;
  if (planted !== undefined && !isPlantKind(planted) && !isCapturePlantKind(planted))
    throw new Error(
      `--plant: expected one of ${[...Object.keys(PLANTS), ...Object.keys(CAPTURE_PLANTS)].join(', ')}, got ${planted}`,
    );
  return {
    scenarios: scenarios.length > 0 ? scenarios : all,
    seed,
    profile,
    reports: values.reports ?? REPORTS,
    ...(planted === undefined ? {} : { plant: planted }),
  };
}

async function runScenario(
  scenario: Scenario,
  seed: number,
  profile: Profile,
  items: Awaited<ReturnType<typeof withReferences>>,
  capturePlant: CapturePlantKind | undefined,
): Promise<ScenarioResult> {
  const history: History = {
    scenario: scenario.name,
    seed,
    startedAt: Date.now(),
    endedAt: 0,
    faults: [],
    operations: [],
    checks: [],
  };
  let topology: Topology | undefined;
  let load: LoadClient | undefined;
  let watch: CaptureWatch | undefined;
  try {
    topology = await Topology.start({ ...profile.shape, ...scenario.shape });
    current = topology;
    // The routers' capture drops, read every second (a killed router keeps its last reading).
    watch = CaptureWatch.start(topology);
    // NATS clients on different nodes and an HTTP client per bridge (load-plans.ts).
    load = LoadClient.start(loadPlans(topology, profile, items));
    const random = mulberry32(seed);
    const running = load;
    // A window of load before the fault, for the report's before/during/after comparison.
    await Promise.race([
      new Promise((r) => setTimeout(r, Math.min(profile.beforeMs, profile.durationMs / 5))),
      running.done.catch(() => {}),
    ]);
    await scenario.run(topology, {
      random,
      profile,
      load: running,
      fault: (f) => (history.faults.push(f), f),
      check: (c) => history.checks?.push(c),
    });
    const operations: Operation[] = await running.done;
    history.operations = operations;
    try {
      history.capture = await readCapture(topology, watch, history, capturePlant);
    } catch (err) {
      history.checks?.push({
        name: 'capture read',
        ok: false,
        detail: `the capture could not be read: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
    return { history };
  } catch (err) {
    load?.stop();
    history.operations = (await load?.done.catch(() => [])) ?? [];
    return { history, failure: err instanceof Error ? err.message : String(err) };
  } finally {
    watch?.stop();
    load?.kill();
    if (topology !== undefined) {
      const t = topology;
      history.events = collectEvents([
        ...t.routers,
        ...t.replicas,
        ...t.bridges,
        ...t.collectors,
        ...t.retired,
      ]);
    }
    current = undefined;
    await topology?.stop();
    history.endedAt = Date.now();
  }
}

/** The topology of the scenario running now, stopped on Ctrl-C or SIGTERM before the runner exits. */
let current: Topology | undefined;

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`[chaos] ${signal}: stopping the cluster of the scenario running now`);
    const stopping = current?.stop() ?? Promise.resolve();
    void stopping.finally(() => process.exit(130));
  });
}

function emptyHistory(scenario: Scenario, seed: number): History {
  const now = Date.now();
  return {
    scenario: scenario.name,
    seed,
    startedAt: now,
    endedAt: now,
    faults: [],
    operations: [],
    checks: [],
  };
}

async function main(): Promise<number> {
  const { scenarios, seed, profile, plant: planting, reports } = options();
  const started = new Date();
  const items = await withReferences(loadRequests(profile.maxTokens));
  const dir = reportDir(reports, started);
  const results: ScenarioResult[] = [];
  const checks: CheckResult[] = [];
  const checkOf = new Map<string, CheckResult>();
  const controls: string[] = [];
  for (const scenario of scenarios) {
    const skip = scenario.skip?.();
    if (skip !== undefined) {
      console.log(`[chaos] ${scenario.name}: skipped (${skip})`);
      const skipped = { history: emptyHistory(scenario, seed), skipped: skip, invariant: scenario.invariant };
      results.push(skipped);
      writeScenarioReport(dir, skipped, undefined);
      continue;
    }
    console.log(`[chaos] ${scenario.name} (seed ${seed})`);
    const result: ScenarioResult = {
      ...(await runScenario(
        scenario,
        seed,
        profile,
        items,
        planting !== undefined && isCapturePlantKind(planting) ? planting : undefined,
      )),
      invariant: scenario.invariant,
    };
    if (planting !== undefined && isPlantKind(planting)) plant(result.history, planting);
    writeHistory(dir, result.history);
    results.push(result);
    const check = checkHistory(result.history, {
      allowedErrors: scenario.allowedErrors,
      captureMayMiss: scenario.disturbsCapture === true,
    });
    if (scenario.expectCaught === true) {
      // A control passes exactly when the checker caught its planted, unverifiable fault.
      const caught = caughtMistarget(check);
      controls.push(
        `- ${scenario.name}: ${caught ?? 'NOT caught: no fault left unverified, or something else failed (see its table)'}`,
      );
      check.ok = caught !== undefined && result.failure === undefined;
    }
    checks.push(check);
    checkOf.set(scenario.name, check);
    writeScenarioReport(dir, result, check);
  }
  const controlText = controls.length > 0 ? ['## Controls', '', ...controls, ''].join('\n') : '';
  const text = [summary(seed, results, checkOf), controlText].join('\n');
  writeFileSync(join(dir, 'summary.md'), text);
  console.log(text);
  console.log(`[chaos] report: ${dir} (${((Date.now() - started.getTime()) / 1000).toFixed(0)} s)`);
  // A run fails when a scenario broke, a fault is unverified, the checker finds a violation, or
  // every scenario was skipped (nothing was proven).
  const bad = results.some((r) => r.failure !== undefined) || checks.some((c) => !c.ok);
  if (checks.length === 0) console.error('[chaos] every scenario was skipped: nothing was checked');
  return bad || checks.length === 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
