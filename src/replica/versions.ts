/**
 * The engines of one replica, by model version: the one new requests get (current), and those a
 * hot swap retired, which finish the requests that started on them and are then stopped, so
 * their sessions' memory goes back. To the heartbeat and the metrics the set is one engine: its
 * load is the sum of its engines' load, and its progress counter never goes backwards across a
 * swap (a monitor compares progress between beats).
 */
import type { UncheckedGenerateParams } from '../cluster/messages/params.ts';
import type { EngineStats, EngineStream, GenerateResult, ServingEngine, StepInfo } from '../engine/types.ts';
import type { ModelInfo } from '../engine/model-info.ts';
import type { FaultSettings } from '../engine/worker-protocol.ts';

/** Past a retired version's grace period by this much when the release looks again (timer jitter). */
const RELEASE_RECHECK_SLACK_MS = 5;

/** One loaded version. */
export interface LoadedVersion {
  readonly engine: ServingEngine;
  /** The registry digest of the version, or the ONNX file's sha256 for a model folder. */
  readonly digest: string;
  /** Requests (attempts) running on it now. */
  inFlight: number;
  /** Epoch ms when a swap retired it; undefined while it is current. */
  retiredAt?: number;
}

/** What the set tells its replica. */
export interface VersionHooks {
  /** A retired version's engine was stopped (its requests had all ended). */
  onReleased?(version: LoadedVersion): void;
  /** A retired version's engine died: its requests end with errors, the replica serves on. */
  onRetiredFailed?(version: LoadedVersion, err: Error): void;
}

/** The engines of one replica; implements the engine interface its heartbeat and metrics read. */
export class VersionedEngine implements ServingEngine {
  private currentVersion: LoadedVersion;
  private readonly retired = new Set<LoadedVersion>();
  /** Progress of engines already stopped, so the counter stays monotonic. */
  private progressBase = 0;
  private stepHook: ((step: StepInfo) => void) | undefined;
  private resolveFailed!: (err: Error) => void;
  private releaseTimer: NodeJS.Timeout | undefined;
  readonly failed: Promise<Error>;
  /** Set by the replica once it exists. */
  hooks: VersionHooks = {};

  constructor(
    engine: ServingEngine,
    digest: string,
    /** How long a retired version stays loaded at least: routers' views of the swap catch up. */
    private readonly retireGraceMs: number,
  ) {
    this.failed = new Promise((resolve) => (this.resolveFailed = resolve));
    this.currentVersion = this.adopt(engine, digest);
  }

  /** The version new requests get. */
  get current(): LoadedVersion {
    return this.currentVersion;
  }

  get info(): ModelInfo {
    return this.currentVersion.engine.info;
  }

  get device(): string {
    return this.currentVersion.engine.device;
  }

  get maxQueue(): number {
    return this.currentVersion.engine.maxQueue;
  }

  /** Versions retired by a swap and still loaded. */
  get retiring(): LoadedVersion[] {
    return [...this.retired.values()];
  }

  set onStep(hook: ((step: StepInfo) => void) | undefined) {
    this.stepHook = hook;
    for (const v of this.loaded()) v.engine.onStep = hook;
  }

  get onStep(): ((step: StepInfo) => void) | undefined {
    return this.stepHook;
  }

  /**
   * The loaded version a request for `version` runs on: the current one when it names none (or
   * the current one), a retired one still loaded when it names that one, else undefined. A
   * request that a router pinned just before the swap still finds its version here.
   */
  select(version: string | undefined): LoadedVersion | undefined {
    if (version === undefined || version === this.currentVersion.engine.info.version) {
      return this.currentVersion;
    }
    // The newest copy first: a version swapped away, back and away again may be loaded twice.
    return [...this.retired].reverse().find((v) => v.engine.info.version === version);
  }

  /** Opens a stream on one loaded version and counts it until it ends. */
  open(
    version: LoadedVersion,
    request: UncheckedGenerateParams,
    opts: { signal?: AbortSignal } = {},
  ): EngineStream {
    const stream = version.engine.stream(request, opts);
    version.inFlight++;
    const done = (): void => {
      version.inFlight--;
      if (version.retiredAt !== undefined) this.releaseIdle();
    };
    stream.end.then(done, done);
    return stream;
  }

  stream(request: UncheckedGenerateParams, opts: { signal?: AbortSignal } = {}): EngineStream {
    return this.open(this.currentVersion, request, opts);
  }

  generate(request: UncheckedGenerateParams, opts: { signal?: AbortSignal } = {}): Promise<GenerateResult> {
    return this.currentVersion.engine.generate(request, opts);
  }

  /**
   * Makes `engine` (loaded and warmed by the caller) the version new requests get. The old one
   * is retired: it finishes what runs on it and is stopped once idle, after the grace period.
   */
  swap(engine: ServingEngine, digest: string): LoadedVersion {
    const old = this.currentVersion;
    old.retiredAt = Date.now();
    this.retired.add(old);
    // Swapping back to a version still retiring: the fresh load takes new work, the old copy retires.
    this.currentVersion = this.adopt(engine, digest);
    clearTimeout(this.releaseTimer);
    this.releaseTimer = setTimeout(() => this.releaseIdle(), this.retireGraceMs).unref();
    return this.currentVersion;
  }

  stats(): EngineStats {
    // loaded() lists the current version first: its stats are each[0], read once per beat.
    const each = this.loaded().map((v) => v.engine.stats());
    const current = each[0]!;
    const busy = each.map((s) => s.busySince).filter((t): t is number => t !== null);
    const stepping = each.map((s) => s.stepStartedAt).filter((t): t is number => t !== null);
    return {
      queueDepth: sum(each.map((s) => s.queueDepth)),
      activeSequences: sum(each.map((s) => s.activeSequences)),
      // New work goes to the current version only: its limits and its free budget are the offer.
      maxBatchSize: current.maxBatchSize,
      tokenBudget: current.tokenBudget,
      freeTokenBudget: current.freeTokenBudget,
      progress: this.progressBase + sum(each.map((s) => s.progress)),
      busySince: busy.length > 0 ? Math.min(...busy) : null,
      stepStartedAt: stepping.length > 0 ? Math.min(...stepping) : null,
      stepTokens: sum(each.map((s) => s.stepTokens)),
      stepExpectedMs: Math.max(0, ...each.map((s) => s.stepExpectedMs)),
    };
  }

  /** Faults go to the version new requests get (the one the chaos suite aims at). */
  injectFault(fault: FaultSettings): void {
    this.currentVersion.engine.injectFault(fault);
  }

  async stop(): Promise<void> {
    clearTimeout(this.releaseTimer);
    await Promise.all(this.loaded().map((v) => v.engine.stop()));
  }

  private loaded(): LoadedVersion[] {
    return [this.currentVersion, ...this.retired.values()];
  }

  private adopt(engine: ServingEngine, digest: string): LoadedVersion {
    const version: LoadedVersion = { engine, digest, inFlight: 0 };
    engine.onStep = this.stepHook;
    void engine.failed.then((err) => {
      if (version === this.currentVersion) return this.resolveFailed(err);
      if (!this.retired.delete(version)) return; // already released
      this.hooks.onRetiredFailed?.(version, err);
    });
    return version;
  }

  /**
   * Stops every retired version that is idle and past its grace period, and looks again when
   * the first idle one still inside it is due. A timer may fire before its delay has passed by
   * `Date.now()` (libuv schedules from its loop time, stale after a busy turn such as a warm-up),
   * and an idle version has no request left whose end would look again: without the second
   * look it would stay loaded for good.
   */
  private releaseIdle(): void {
    const now = Date.now();
    let due: number | undefined;
    for (const version of this.retired) {
      if (version.inFlight > 0) continue; // its last request's end looks again
      const left = this.retireGraceMs - (now - (version.retiredAt ?? now));
      if (left > 0) {
        due = Math.min(due ?? left, left);
        continue;
      }
      this.retired.delete(version);
      this.progressBase += version.engine.stats().progress;
      void version.engine.stop().then(() => this.hooks.onReleased?.(version));
    }
    if (due === undefined) return;
    clearTimeout(this.releaseTimer);
    this.releaseTimer = setTimeout(() => this.releaseIdle(), due + RELEASE_RECHECK_SLACK_MS).unref();
  }
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
