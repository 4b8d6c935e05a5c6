/**
 * Timings of a chaos run, derived from its History alone: per fault, how long the router took to
 * notice it and to resume each request that was running on the faulted actor; and latency and
 * throughput before, during and after the faults.
 */
import { FAILOVER } from './events.ts';
import type { ActorEvent, FaultRecord, History, Operation } from './history/types.ts';

/** How long after a fault's end a failover off its actor still counts as caused by it. */
export const FAULT_ATTRIBUTION_GRACE_MS = 30_000;

/** Per-request detection and recovery of one fault. */
export interface FaultTiming {
  fault: FaultRecord;
  /** The actor id named in the fault's target, when the target names one. */
  actor: string | undefined;
  /** One entry per request the router failed over off the faulted actor. */
  requests: Array<{
    id: string;
    /** Fault start → the router's failover of this request (ms). */
    detectionMs: number;
    /** Fault start → the first token the client received after that failover (ms); undefined if none. */
    recoveryMs: number | undefined;
  }>;
}

/** p50 and max of some durations, and how many there were. */
export interface Spread {
  count: number;
  p50: number | undefined;
  max: number | undefined;
}

/** The value at quantile `q` (nearest rank) of `values`; undefined when empty. */
export function quantile(values: readonly number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

/** Count, p50 and max of `values`. */
export function spread(values: readonly number[]): Spread {
  return {
    count: values.length,
    p50: quantile(values, 0.5),
    max: values.length ? Math.max(...values) : undefined,
  };
}

/** The actor ids a target string names, e.g. "replica rp2 (pid 123)" → ["replica", "rp2", "pid", "123"]. */
function targetWords(target: string): string[] {
  return target.split(/[\s(),:]+/).filter((w) => w !== '');
}

/**
 * For each fault, the requests the routers failed over off its actor between the fault's start
 * and its end plus FAULT_ATTRIBUTION_GRACE_MS ("router notices": the router's own failover log
 * line), and when each one's next token reached the client.
 */
export function faultTimings(history: History): FaultTiming[] {
  const events: readonly ActorEvent[] = history.events ?? [];
  const byId = new Map(history.operations.map((o) => [o.id, o]));
  return history.faults.map((fault) => {
    const words = targetWords(fault.target);
    const until = (fault.endedAt ?? fault.startedAt) + FAULT_ATTRIBUTION_GRACE_MS;
    const seen = new Set<string>();
    const requests: FaultTiming['requests'] = [];
    let actor: string | undefined;
    for (const e of events) {
      if (e.what !== FAILOVER || e.replica === undefined || e.requestId === undefined) continue;
      if (!words.includes(e.replica) || e.at < fault.startedAt || e.at > until) continue;
      actor = e.replica;
      if (seen.has(e.requestId)) continue;
      seen.add(e.requestId);
      const op = byId.get(e.requestId);
      const resumed = op?.chunks.find((c) => c.at >= e.at);
      requests.push({
        id: e.requestId,
        detectionMs: e.at - fault.startedAt,
        recoveryMs: resumed === undefined ? undefined : resumed.at - fault.startedAt,
      });
    }
    return { fault, actor, requests };
  });
}

/** When the load began (the first request), or the history's start when nothing was sent. */
export function loadStart(history: History): number {
  const ops = history.operations;
  return ops.length === 0 ? history.startedAt : Math.min(...ops.map((o) => o.invokedAt));
}

/** A span of the run the report compares the others to. */
export interface TimeWindow {
  name: 'before' | 'during' | 'after';
  from: number;
  to: number;
}

/**
 * Before (run start → first fault), during (first fault start → the later of the last fault's end
 * and the last affected request's resumption: a SIGKILL "ends" at once, its disruption does not)
 * and after (→ the last outcome). Without faults, one "before" window spans the run.
 */
export function faultWindows(history: History, timings = faultTimings(history)): TimeWindow[] {
  const ops = history.operations;
  const start = loadStart(history);
  const end = Math.max(
    start,
    ...ops.map((o) => o.outcome.at),
    ...ops.flatMap((o) => o.chunks.map((c) => c.at)),
  );
  if (history.faults.length === 0) return [{ name: 'before', from: start, to: end }];
  const faultStart = Math.min(...history.faults.map((f) => f.startedAt));
  const recoveries = timings.flatMap((t) => t.requests.map((r) => t.fault.startedAt + (r.recoveryMs ?? 0)));
  const faultEnd = Math.max(...history.faults.map((f) => f.endedAt ?? f.startedAt), ...recoveries);
  const during = Math.min(Math.max(faultEnd, faultStart), end);
  const windows: TimeWindow[] = [
    { name: 'before', from: start, to: faultStart },
    { name: 'during', from: faultStart, to: during },
  ];
  // The load may end before the fault does (a 10 s SIGSTOP): then there is no "after".
  if (during < end) windows.push({ name: 'after', from: during, to: end });
  return windows;
}

/** Latency and throughput in one window. */
export interface WindowStats {
  window: TimeWindow;
  /** Requests that completed ok in the window (by end time). */
  completed: number;
  latencyP50Ms: number | undefined;
  latencyP99Ms: number | undefined;
  /** Tokens received by clients in the window per second; undefined for a window too short to say. */
  tokensPerS: number | undefined;
  /** Requests completed ok in the window per second; undefined for a window too short to say. */
  requestsPerS: number | undefined;
}

const MS_PER_S = 1000;
/** Windows shorter than this get no rates: a handful of tokens in 20 ms is not a throughput. */
export const MIN_RATE_WINDOW_MS = 250;

/** End-to-end latency of a request that completed ok (invoke → outcome), else undefined. */
export function latencyMs(op: Operation): number | undefined {
  return op.outcome.kind === 'ok' ? op.outcome.at - op.invokedAt : undefined;
}

/** Latency p50/p99 and throughput per window; a request or token belongs to the window it ended in. */
export function windowStats(history: History, windows = faultWindows(history)): WindowStats[] {
  return windows.map((w, i) => {
    // Half-open windows, the last one closed, so that every end lands in exactly one.
    const last = i === windows.length - 1;
    const inside = (t: number): boolean => t >= w.from && (t < w.to || (last && t === w.to));
    const done = history.operations.filter((o) => o.outcome.kind === 'ok' && inside(o.outcome.at));
    const latencies = done.map((o) => latencyMs(o)!);
    const tokens = history.operations
      .flatMap((o) => o.chunks)
      .filter((c) => inside(c.at))
      .reduce((n, c) => n + c.tokenIds.length, 0);
    const seconds = (w.to - w.from) / MS_PER_S;
    const rate = (n: number): number | undefined =>
      w.to - w.from < MIN_RATE_WINDOW_MS ? undefined : n / seconds;
    return {
      window: w,
      completed: done.length,
      latencyP50Ms: quantile(latencies, 0.5),
      latencyP99Ms: quantile(latencies, 0.99),
      tokensPerS: rate(tokens),
      requestsPerS: rate(done.length),
    };
  });
}
