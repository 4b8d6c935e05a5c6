/**
 * The actors' Prometheus metrics, on their real registries: the exposition parses, counters and
 * histograms move with what happened, every metric the issue names is exported by some actor,
 * and every metric the Grafana dashboard queries is one of them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { BridgeMetrics } from '../../src/bridge/metrics.ts';
import { EchoEngine } from '../../src/engine/echo.ts';
import { VersionedEngine } from '../../src/replica/versions.ts';
import { ReplicaMetrics } from '../../src/replica/metrics.ts';
import { Membership } from '../../src/router/membership.ts';
import { encodeReplicaHeartbeat } from '../../src/cluster/messages/heartbeat.ts';
import { replicaHeartbeatSubject } from '../../src/cluster/subjects.ts';
import { MAX_MODEL_LABELS, OTHER_MODEL_LABEL, RouterMetrics } from '../../src/router/metrics.ts';
import { ROOT } from '../helpers/models.ts';

/** Metric names declared by `# TYPE` lines, after checking each sample line's shape. */
function parseExposition(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ')) continue;
    const type = /^# TYPE ([a-z_:][a-z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type !== null) {
      names.add(type[1] as string);
      continue;
    }
    assert.match(
      line,
      /^[a-z_:][a-z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?[0-9.e+-]+|\+Inf|NaN)$/,
      line,
    );
  }
  return names;
}

/** A series as `name{a="1",b="2"}` with its labels sorted, so label order does not matter. */
function canonical(series: string): string {
  const m = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})?$/.exec(series);
  assert.ok(m, `not a series: ${series}`);
  const labels = (m[2] ?? '').match(/[a-z_]+="[^"]*"/g) ?? [];
  return `${m[1]}{${labels.sort().join(',')}}`;
}

/** The value of the sample of `series` (labels in any order). */
function value(text: string, series: string): number {
  const wanted = canonical(series);
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    if (canonical(line.slice(0, cut)) === wanted) return Number(line.slice(cut + 1));
  }
  assert.fail(`no ${series} in:\n${text}`);
}

const MEMBERSHIP_RULES = { suspectAfterMissed: 2, deadAfterMissed: 3, stuckTimeoutMs: 1_500 };

async function actorTexts(): Promise<string[]> {
  const engine = new VersionedEngine(await EchoEngine.start({ modelDir: '' }), '', 0);
  const replica = new ReplicaMetrics({ id: 'r1', engine, heartbeatsSent: () => 3 });
  const router = new RouterMetrics({
    id: 'rt',
    membership: new Membership(MEMBERSHIP_RULES),
    inFlight: () => 0,
  });
  const bridge = new BridgeMetrics('b1', { inFlight: () => 0, liveReplicas: () => 0 });
  const texts = [await replica.registry.metrics(), await router.registry.metrics(), await bridge.render()];
  await engine.stop();
  return texts;
}

/** The metrics the observability issue asks for, by name. */
const REQUIRED = [
  'switchyard_requests_total',
  'switchyard_request_duration_seconds',
  'switchyard_time_to_first_token_seconds',
  'switchyard_inter_token_latency_seconds',
  'switchyard_prompt_tokens_total',
  'switchyard_generation_tokens_total',
  'switchyard_queue_depth',
  'switchyard_batch_size',
  'switchyard_active_sequences',
  'switchyard_token_budget_used_ratio',
  'switchyard_replicas',
  'switchyard_heartbeats_missed_total',
  'switchyard_failovers_total',
  'switchyard_cache_requests_total',
  'switchyard_rate_limited_total',
  'switchyard_event_loop_delay_seconds',
  'switchyard_model_version_info',
  'switchyard_model_swaps_total',
];

describe('metrics exposition', () => {
  it('every actor exposition parses, and together they export every required metric', async () => {
    const exported = new Set<string>();
    for (const text of await actorTexts()) for (const name of parseExposition(text)) exported.add(name);
    const missing = REQUIRED.filter((name) => !exported.has(name));
    assert.deepEqual(missing, [], `not exported: ${missing.join(', ')}`);
  });

  it('the event-loop delay gauge carries the actor label and a plausible value', async () => {
    const engine = new VersionedEngine(await EchoEngine.start({ modelDir: '' }), '', 0);
    const text = await new ReplicaMetrics({ id: 'r1', engine, heartbeatsSent: () => 0 }).registry.metrics();
    await engine.stop();
    const delay = value(text, 'switchyard_event_loop_delay_seconds{replica="r1",model="echo"}');
    assert.ok(delay >= 0 && delay < 60, `delay ${delay}`);
  });

  it('the bridge counters move: statuses, cache results, rate limiting', async () => {
    const metrics = new BridgeMetrics('b1', { inFlight: () => 1, liveReplicas: () => 2 });
    metrics.countRequest('/v1/completions', 200);
    metrics.countRequest('/v1/completions', 200);
    metrics.countCache('hit');
    metrics.countRateLimited();
    const text = await metrics.render();
    assert.equal(
      value(text, 'switchyard_bridge_requests_total{route="/v1/completions",status="200",bridge="b1"}'),
      2,
    );
    assert.equal(value(text, 'switchyard_cache_requests_total{result="hit",bridge="b1"}'), 1);
    assert.equal(value(text, 'switchyard_cache_requests_total{result="miss",bridge="b1"}'), 0);
    assert.equal(value(text, 'switchyard_rate_limited_total{bridge="b1"}'), 1);
    assert.equal(value(text, 'switchyard_bridge_live_replicas{bridge="b1"}'), 2);
  });

  it('the router records outcomes, latencies and tokens per model, and missed heartbeats', async () => {
    const membership = new Membership(MEMBERSHIP_RULES);
    const metrics = new RouterMetrics({ id: 'rt', membership, inFlight: () => 5 });
    const m = metrics.forModel('tiny-gpt2');
    m.firstToken(0.02);
    m.interToken(0.004);
    m.interToken(0.006);
    m.finished('ok', 0.5, 7, 30);
    m.finished('deadline_exceeded', 2, 0, 3);
    metrics.refused('unknown', 'model_not_found');
    metrics.failedOver('replica_dead');
    const text = await metrics.registry.metrics();
    const rt = 'router="rt"';
    assert.equal(value(text, `switchyard_requests_total{model="tiny-gpt2",code="ok",${rt}}`), 1);
    assert.equal(
      value(text, `switchyard_requests_total{model="tiny-gpt2",code="deadline_exceeded",${rt}}`),
      1,
    );
    assert.equal(value(text, `switchyard_requests_total{model="unknown",code="model_not_found",${rt}}`), 1);
    assert.equal(value(text, `switchyard_prompt_tokens_total{model="tiny-gpt2",${rt}}`), 7);
    assert.equal(value(text, `switchyard_generation_tokens_total{model="tiny-gpt2",${rt}}`), 33);
    assert.equal(value(text, `switchyard_inter_token_latency_seconds_count{model="tiny-gpt2",${rt}}`), 2);
    assert.equal(
      value(text, `switchyard_inter_token_latency_seconds_bucket{le="0.005",model="tiny-gpt2",${rt}}`),
      1,
    );
    assert.equal(value(text, `switchyard_time_to_first_token_seconds_count{model="tiny-gpt2",${rt}}`), 1);
    assert.equal(
      value(text, `switchyard_request_duration_seconds_sum{model="tiny-gpt2",code="ok",${rt}}`),
      0.5,
    );
    assert.equal(value(text, `switchyard_failovers_total{reason="replica_dead",${rt}}`), 1);
    assert.equal(value(text, `switchyard_router_in_flight{${rt}}`), 5);
    assert.equal(value(text, `switchyard_heartbeats_missed_total{${rt}}`), 0);
  });

  it('every metric the Grafana dashboard queries is one an actor exports', async () => {
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/switchyard.json'), 'utf8')) as {
      panels: { targets?: { expr: string }[] }[];
    };
    const queried = new Set<string>();
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        for (const m of target.expr.matchAll(/switchyard_[a-z_]+/g)) {
          queried.add(m[0].replace(/_(bucket|sum|count)$/, ''));
        }
      }
    }
    assert.ok(queried.size >= REQUIRED.length, `dashboard queries only ${queried.size} metrics`);
    const exported = new Set<string>();
    for (const text of await actorTexts()) for (const name of parseExposition(text)) exported.add(name);
    const missing = [...queried].filter((name) => !exported.has(name));
    assert.deepEqual(missing, [], `dashboard queries metrics no actor exports: ${missing.join(', ')}`);
  });

  it(`the router mints at most ${MAX_MODEL_LABELS} model labels, and counts dropped heartbeats`, async () => {
    const membership = new Membership(MEMBERSHIP_RULES);
    const metrics = new RouterMetrics({ id: 'rt', membership, inFlight: () => 0 });
    for (let i = 0; i < MAX_MODEL_LABELS + 20; i++) metrics.forModel(`forged-${i}`).finished('ok', 0.1, 1, 1);
    metrics.refused('forged-late', 'busy');
    const forged = encodeReplicaHeartbeat({
      id: 'a',
      model: 'm',
      modelVersion: '1',
      device: 'cpu',
      state: 'ready',
      queueDepth: 0,
      activeSequences: 0,
      maxBatchSize: 1,
      maxQueue: 0,
      freeTokenBudget: 1,
      tokenBudget: 1,
      progress: 0,
      sentAt: 0,
      intervalMs: 100,
    });
    membership.receive(replicaHeartbeatSubject('b'), forged, 0);
    const text = await metrics.registry.metrics();
    const models = new Set(
      [...text.matchAll(/switchyard_requests_total\{model="([^"]*)"/g)].map((m) => m[1]),
    );
    assert.equal(models.size, MAX_MODEL_LABELS + 1);
    assert.ok(models.has(OTHER_MODEL_LABEL));
    assert.equal(
      value(text, `switchyard_requests_total{model="${OTHER_MODEL_LABEL}",code="ok",router="rt"}`),
      20,
    );
    assert.equal(value(text, `switchyard_heartbeats_dropped_total{reason="mismatched",router="rt"}`), 1);
  });
});
