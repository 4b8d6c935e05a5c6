/**
 * The rollout driver, run by every collector: it carries each model's rollout from `starting`
 * to a final state. It swaps the canary replicas, gives the canary its step's weight, looks at
 * the evidence every `interval_ms` (src/rollout/judge.ts, on the collector's records of both
 * arms in the step's window), and advances, holds, promotes or rolls back.
 *
 * Several collectors may run: each looks, and each decision is a compare-and-set on the
 * record's revision, so exactly one records it; the others see the winner's record through the
 * watch. Actions are idempotent (swap replica R to version V; point the alias at V), so a driver
 * that dies between a decision and its actions leaves them to the next look of any collector:
 * a rollback swaps back every replica whose heartbeat says it serves the canary, not only the
 * ones the record names.
 *
 * Capacity: a step's weight may exceed the canary replicas' share of the model's replicas. The
 * driver swaps more replicas before it raises the weight, so that the canary holds at least
 * `ceil(weight × replicas)` of them (and at least `canary_replicas_min`), keeping one on stable
 * while the canary is judged: each arm is then served by about its share of the capacity, and
 * neither is judged on a queue the other does not have.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { SpanKind, type Span } from '@opentelemetry/api';
import { decodeSwapReply, encodeSwapCommand } from '../cluster/messages/swap.ts';
import { replicaSwapSubject } from '../cluster/subjects.ts';
import { toSwitchyardError } from '../errors/errors.ts';
import { Registry } from '../registry/registry.ts';
import { registryUrl } from '../registry/source.ts';
import type { Logger } from '../telemetry/logger.ts';
import { endSpan, tracer } from '../telemetry/propagation.ts';
import type { CollectedRecord } from '../collector/record.ts';
import { judge } from './judge.ts';
import type { RolloutMetrics } from './metrics.ts';
import { ReplicaView } from './replica-view.ts';
import { RolloutStore, isWrongRevision, type RolloutWatch, type StoredRollout } from './store.ts';
import {
  FINAL_ROLLOUT_STATES,
  MAX_DECISIONS,
  type RolloutAction,
  type RolloutDecision,
  type RolloutRecord,
  type Verdict,
} from './types.ts';

/** How long one replica's swap may take (loading and warming a version). */
export const DEFAULT_SWAP_TIMEOUT_MS = 120_000;
/** How soon a rollout that waits on something (replicas, a collector's swap) is looked at again. */
const RETRY_MS = 1_000;
/** How soon a watch that ended is opened again. */
const REWATCH_MS = 2_000;

export interface RolloutDriverOptions {
  nc: NatsConnection;
  /** The collector's id: decisions name it. */
  id: string;
  log: Logger;
  /** The collector's records (every collector keeps the whole bucket in view). */
  records: () => Iterable<CollectedRecord>;
  metrics: RolloutMetrics;
  swapTimeoutMs?: number;
}

/** How many replicas the canary needs for `weight` percent of `replicas`: see the module comment. */
export function canaryReplicaCount(weight: number, replicas: number, min: number): number {
  return Math.max(1, Math.min(replicas - 1, Math.max(min, Math.ceil((weight / 100) * replicas))));
}

/** A decision's window and evidence before it is recorded. */
type Look = Omit<RolloutDecision, 'action' | 'reason'>;

export class RolloutDriver {
  private store: RolloutStore | undefined;
  private registry: Registry | undefined;
  private watch: RolloutWatch | undefined;
  private readonly replicas = new ReplicaView();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Every model's record as last seen through the watch. */
  private readonly seen = new Map<string, RolloutRecord>();
  /** Models whose rollout this driver is acting on now (one action at a time per model). */
  private readonly busy = new Set<string>();
  private stopped = false;
  private readonly swapTimeoutMs: number;

  constructor(private readonly o: RolloutDriverOptions) {
    this.swapTimeoutMs = o.swapTimeoutMs ?? DEFAULT_SWAP_TIMEOUT_MS;
  }

  async start(): Promise<void> {
    this.replicas.start(this.o.nc);
    this.store = await RolloutStore.open(this.o.nc, { create: true });
    this.registry = await Registry.open(this.o.nc, { create: true });
    await this.startWatch();
  }

  stop(): void {
    this.stopped = true;
    this.watch?.stop();
    this.replicas.stop();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private async startWatch(): Promise<void> {
    this.watch = await this.store!.watch(
      (stored) => this.onRecord(stored),
      (err) => {
        if (this.stopped) return;
        this.o.log.warn({ err: toSwitchyardError(err).message }, 'rollout watch failed; watching again');
        this.watch?.stop();
        setTimeout(() => void this.startWatch().catch(() => undefined), REWATCH_MS).unref();
      },
    );
  }

  /** Every model's current or last rollout as this collector last saw it (stats, the web page). */
  view(): RolloutRecord[] {
    return [...this.seen.values()].sort((a, b) => a.model.localeCompare(b.model));
  }

  private onRecord({ record }: StoredRollout): void {
    this.seen.set(record.model, record);
    this.o.metrics.observe(record);
    if (FINAL_ROLLOUT_STATES.has(record.state) || record.state === 'held') {
      clearTimeout(this.timers.get(record.model));
      this.timers.delete(record.model);
      return;
    }
    // Commands (start, promote, abort) and rollbacks are acted on at once; looks keep their pace.
    const immediate = record.state !== 'running';
    if (immediate || !this.timers.has(record.model)) {
      this.schedule(record.model, immediate ? 0 : record.policy.interval_ms);
    }
  }

  private schedule(model: string, delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timers.get(model));
    this.timers.set(
      model,
      setTimeout(() => void this.act(model), delayMs),
    );
  }

  private async act(model: string): Promise<void> {
    this.timers.delete(model);
    if (this.busy.has(model) || this.stopped) return;
    this.busy.add(model);
    let next: number | undefined;
    try {
      next = await this.advance(model);
    } catch (err) {
      if (!isWrongRevision(err)) {
        this.o.log.error({ model, err: toSwitchyardError(err).message }, 'rollout: action failed; retrying');
      }
      next = RETRY_MS;
    } finally {
      this.busy.delete(model);
    }
    if (next !== undefined && !this.timers.has(model)) this.schedule(model, next);
  }

  /** One action on the model's rollout; returns when to act again (undefined: when it changes). */
  private async advance(model: string): Promise<number | undefined> {
    const stored = await this.store!.get(model);
    if (stored === undefined) return undefined;
    const { record } = stored;
    switch (record.state) {
      case 'starting':
        return this.begin(stored);
      case 'running':
        return this.look(stored);
      case 'promoting':
        await this.promote(stored);
        return undefined;
      case 'rolling_back':
      case 'aborting':
        await this.rollBack(stored);
        return undefined;
      default:
        return undefined;
    }
  }

  /** `starting`: swap the first step's canary replicas, then give the canary its weight. */
  private async begin(stored: StoredRollout): Promise<number | undefined> {
    const { record } = stored;
    const live = this.replicas.serving(record.model);
    if (live.length < 2) {
      const reason =
        `waiting for replicas: a rollout needs at least 2 live replicas of ${record.model} ` +
        `(one keeps serving ${record.stable}), ${live.length} seen`;
      if (record.reason !== reason) await this.write(stored, { ...record, reason });
      return RETRY_MS;
    }
    const weight = record.steps[0]!;
    let canaries: string[];
    try {
      canaries = await this.ensureCanaries(record, weight);
    } catch (err) {
      await this.decide(stored, this.emptyLook(record), 'rollback', `canary swap failed: ${errText(err)}`, {
        state: 'rolling_back',
        weight: 0,
      });
      return 0;
    }
    const now = new Date().toISOString();
    await this.decide(
      stored,
      this.emptyLook(record),
      'advance',
      `canary replicas ${canaries.join(', ')} serve ${record.canary}; canary weight ${weight}%`,
      { state: 'running', weight, canary_replicas: canaries, step: 0, step_started_at: now },
    );
    return record.policy.interval_ms;
  }

  /**
   * Swaps replicas to the canary until it holds {@link canaryReplicaCount} of the model's live
   * replicas; returns the canary replicas. Replicas already on the canary count first, then
   * stable ones from the end of the id order.
   */
  private async ensureCanaries(record: RolloutRecord, weight: number): Promise<string[]> {
    const live = this.replicas.serving(record.model);
    const need = canaryReplicaCount(weight, live.length, record.canary_replicas_min);
    const onCanary = live.filter((hb) => hb.modelVersion === record.canary).map((hb) => hb.id);
    const listed = record.canary_replicas.filter((id) => live.some((hb) => hb.id === id));
    const chosen = [...new Set([...onCanary, ...listed])];
    for (const hb of [...live].reverse()) {
      if (chosen.length >= need) break;
      if (!chosen.includes(hb.id)) chosen.push(hb.id);
    }
    const toSwap = chosen.filter((id) => this.replicas.get(id)?.modelVersion !== record.canary);
    await Promise.all(toSwap.map((id) => this.swap(id, record.model, record.canary)));
    return chosen.sort();
  }

  /** `running`: one look at the evidence, and what it decides. */
  private async look(stored: StoredRollout): Promise<number | undefined> {
    const { record } = stored;
    const { policy } = record;
    const now = Date.now();
    const from = Date.parse(record.step_started_at);
    // A canary replica that restarted comes back on stable (the alias it follows): swap it again.
    void this.ensureCanaries(record, record.weight).catch((err: unknown) =>
      this.o.log.warn({ model: record.model, err: errText(err) }, 'rollout: canary replica swap failed'),
    );
    const result = judge(this.o.records(), { id: record.id, from, to: now }, policy);
    const looks = record.decisions.filter((d) => d.step === record.step && d.look > 0).length;
    const look: Look = {
      at: new Date(now).toISOString(),
      step: record.step,
      weight: record.weight,
      look: looks + 1,
      window: { from: record.step_started_at, to: new Date(now).toISOString() },
      verdict: result.verdict,
      checks: result.checks,
      by: this.o.id,
    };
    const samples = `canary ${result.samples.canary}, stable ${result.samples.stable} requests`;
    if (result.verdict === 'fail') {
      const failed = result.checks.filter((c) => c.verdict === 'fail').map((c) => c.check);
      await this.decide(stored, look, 'rollback', `${failed.join(', ')} failed (${samples}): rolling back`, {
        state: 'rolling_back',
        weight: 0,
      });
      return 0;
    }
    if (result.verdict === 'pass') {
      const stepMs = now - from;
      if (stepMs < policy.min_step_ms) {
        await this.decide(
          stored,
          look,
          'wait',
          `every check passes (${samples}); the step lasts ${policy.min_step_ms} ms at least`,
        );
        return Math.min(policy.interval_ms, policy.min_step_ms - stepMs);
      }
      const nextStep = record.step + 1;
      const weight = record.steps[nextStep] ?? 100;
      if (weight >= 100) {
        await this.decide(
          stored,
          look,
          'promote',
          `every check passes (${samples}): promoting ${record.canary}`,
          {
            state: 'promoting',
          },
        );
        return 0;
      }
      const canaries = await this.ensureCanaries(record, weight);
      await this.decide(
        stored,
        look,
        'advance',
        `every check passes (${samples}): canary weight ${weight}%`,
        {
          step: nextStep,
          weight,
          canary_replicas: canaries,
          step_started_at: new Date().toISOString(),
        },
      );
      return policy.interval_ms;
    }
    if (look.look >= policy.max_looks) {
      if (policy.on_inconclusive === 'rollback') {
        await this.decide(
          stored,
          look,
          'rollback',
          `inconclusive after ${look.look} looks (${samples}): rolling back`,
          {
            state: 'rolling_back',
            weight: 0,
          },
        );
        return 0;
      }
      await this.decide(
        stored,
        look,
        'hold',
        `inconclusive after ${look.look} looks (${samples}): held at ${record.weight}% for an operator ` +
          `(switchyard rollout promote|abort ${record.model})`,
        { state: 'held' },
      );
      return undefined;
    }
    const open = result.checks.filter((c) => c.verdict !== 'pass').map((c) => c.check);
    await this.decide(stored, look, 'wait', `inconclusive: ${open.join(', ')} (${samples})`);
    return policy.interval_ms;
  }

  /** `promoting`: point the alias at the canary (replicas that follow it swap), then done. */
  private async promote(stored: StoredRollout): Promise<void> {
    const { record } = stored;
    let current = stored;
    if (record.weight !== 100) current = await this.write(stored, { ...record, weight: 100 });
    await this.registry!.alias(record.model, record.alias, record.canary, {
      by: `collector ${this.o.id}`,
      reason: `rollout ${record.id} promoted`,
    });
    await this.decide(
      current,
      this.emptyLook(current.record),
      'promote',
      `alias ${record.alias} → ${record.canary}: replicas following it swap`,
      { state: 'promoted', weight: 0 },
    );
  }

  /**
   * `rolling_back` or `aborting`: weight 0 first (it is, for a rollback the driver decided),
   * then every replica serving the canary swaps back — a hot swap, so requests running on the
   * canary finish on it — and the alias is restored if anyone moved it.
   */
  private async rollBack(stored: StoredRollout): Promise<void> {
    let current = stored;
    if (current.record.weight !== 0) current = await this.write(current, { ...current.record, weight: 0 });
    const { record } = current;
    const onCanary = this.replicas
      .serving(record.model)
      .filter((hb) => hb.modelVersion === record.canary || hb.swappingTo === record.canary)
      .map((hb) => hb.id);
    const back = [...new Set([...onCanary, ...record.canary_replicas])].filter(
      (id) => this.replicas.get(id) !== undefined,
    );
    await Promise.all(back.map((id) => this.swap(id, record.model, record.stable)));
    const alias = await this.registry!.getAlias(record.model, record.alias);
    if (alias !== undefined && alias.version !== record.stable) {
      await this.registry!.alias(record.model, record.alias, record.stable, {
        by: `collector ${this.o.id}`,
        reason: `rollout ${record.id} rolled back`,
      });
    }
    const aborted = record.state === 'aborting';
    await this.decide(
      current,
      this.emptyLook(record),
      aborted ? 'abort' : 'rollback',
      `${back.length > 0 ? `replicas ${back.join(', ')}` : 'no replica'} swapped back to ${record.stable}`,
      { state: aborted ? 'aborted' : 'rolled_back', weight: 0 },
    );
  }

  private async swap(replica: string, model: string, version: string): Promise<void> {
    const url = registryUrl(model, version);
    this.o.log.info({ replica, to: url }, 'rollout: swapping replica');
    const msg = await this.o.nc.request(replicaSwapSubject(replica), encodeSwapCommand({ model: url }), {
      timeout: this.swapTimeoutMs,
    });
    const reply = decodeSwapReply(msg.data);
    if ('error' in reply) throw new Error(`replica ${replica}: ${reply.error.message}`);
  }

  private emptyLook(record: RolloutRecord): Look {
    const now = new Date().toISOString();
    return {
      at: now,
      step: record.step,
      weight: record.weight,
      look: 0,
      window: { from: record.step_started_at, to: now },
      verdict: 'inconclusive' satisfies Verdict,
      checks: [],
      by: this.o.id,
    };
  }

  /**
   * Records a decision (with its evidence) and the record's changes in one compare-and-set; a
   * span of its own carries the same evidence as events, and the metrics count it.
   */
  private async decide(
    stored: StoredRollout,
    look: Look,
    action: RolloutAction,
    reason: string,
    changes: Partial<RolloutRecord> = {},
  ): Promise<StoredRollout> {
    const decision: RolloutDecision = { ...look, action, reason };
    const record = stored.record;
    const decisions = [...record.decisions, decision].slice(-MAX_DECISIONS);
    const written = await this.write(stored, { ...record, ...changes, decisions, reason, driver: this.o.id });
    this.o.metrics.decided(record.model, decision);
    traceDecision(record, decision);
    const level = action === 'wait' ? 'debug' : 'info';
    this.o.log[level]({ model: record.model, rollout: record.id, action, verdict: decision.verdict }, reason);
    return written;
  }

  private async write(stored: StoredRollout, record: RolloutRecord): Promise<StoredRollout> {
    const next = { ...record, updated_at: new Date().toISOString() };
    const revision = await this.store!.put(next, stored.revision);
    return { record: next, revision };
  }
}

/** A span per decision; each check's evidence is one of its events. */
function traceDecision(record: RolloutRecord, d: RolloutDecision): void {
  const span: Span = tracer().startSpan('rollout decision', {
    kind: SpanKind.INTERNAL,
    attributes: {
      'switchyard.model': record.model,
      'switchyard.rollout.id': record.id,
      'switchyard.rollout.canary': record.canary,
      'switchyard.rollout.stable': record.stable,
      'switchyard.rollout.step': d.step,
      'switchyard.rollout.weight': d.weight,
      'switchyard.rollout.look': d.look,
      'switchyard.rollout.verdict': d.verdict,
      'switchyard.rollout.action': d.action,
    },
  });
  for (const c of d.checks) {
    span.addEvent(`check ${c.check}`, {
      'switchyard.check.verdict': c.verdict,
      'switchyard.check.test': c.test,
      'switchyard.check.canary_n': c.canary.n,
      'switchyard.check.stable_n': c.stable.n,
      'switchyard.check.canary_mean': c.canary.mean,
      'switchyard.check.stable_mean': c.stable.mean,
      'switchyard.check.worse_by': c.worse_by,
      'switchyard.check.worse_by_lower': c.worse_by_lower,
      'switchyard.check.worse_by_upper': c.worse_by_upper,
      'switchyard.check.threshold': c.threshold,
      'switchyard.check.confidence': c.confidence,
      'switchyard.check.reason': c.reason,
    });
  }
  span.addEvent('decision', { 'switchyard.rollout.reason': d.reason });
  endSpan(span);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
