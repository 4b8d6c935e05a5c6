/**
 * Serves one OpenAI generation request after it was parsed: rate limit, cache lookup, one
 * cluster request per choice, then a JSON body or an SSE stream. Errors before the first byte
 * propagate to the caller (which maps them to an HTTP status); after it, they become an SSE
 * error event. Cache failures are logged and counted, never surfaced to the client.
 */
import type { ServerResponse } from 'node:http';
import type { SwitchyardClient } from '../client/client.ts';
import { choiceRequestId } from '../cluster/messages/capture.ts';
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import { DEFAULT_MAX_TOKENS_CAP } from '../cluster/messages/params.ts';
import { trace } from '@opentelemetry/api';
import { GEN_AI_ATTRS, GEN_AI_OPERATION } from '../telemetry/attributes.ts';
import type { Logger } from '../telemetry/logger.ts';
import { allChoices, cachedChoice, liveChoice, type ChoiceOutcome, type ChoiceRun } from './choices.ts';
import type { ClusterView } from './cluster-view.ts';
import { STATUS_CLIENT_CLOSED, toHttpError } from './http-errors.ts';
import { sendJson } from './http-io.ts';
import type { BridgeMetrics } from './metrics.ts';
import type { ParsedGeneration } from './openai-request.ts';
import {
  responseBody,
  responseId,
  servedMeta,
  streamChunk,
  usageChunk,
  versionFingerprint,
  type ResponseMeta,
} from './openai-response.ts';
import type { CachedGeneration, Caller, RateLimiter, ResponseCache } from './policy.ts';
import type { Settle, SingleFlight } from './single-flight.ts';
import { SseWriter } from './sse.ts';
import { tenantOf } from './tenancy.ts';
import { CancelledError } from '../errors/errors.ts';

/** Response header that says whether the answer came from the response cache (`hit` or `miss`). */
export const CACHE_HEADER = 'x-switchyard-cache';
/** Characters per token when estimating a prompt for the rate limiter (no tokenizer in the bridge). */
export const CHARS_PER_TOKEN_ESTIMATE = 4;
/** Tokens a chat message costs beyond its content (role and template markers). */
export const MESSAGE_OVERHEAD_TOKENS = 4;
/** A cache lookup slower than this counts as a failure: the cache must never slow a request down much. */
export const CACHE_LOOKUP_TIMEOUT_MS = 250;

/** What the generation routes share. */
export interface GenerationDeps {
  client: SwitchyardClient;
  view: ClusterView;
  limiter: RateLimiter;
  cache: ResponseCache;
  /** Identical cacheable generations in flight on this bridge (computed once). */
  flights: SingleFlight<CachedGeneration>;
  metrics: BridgeMetrics;
  generationTimeoutMs: number;
  /** Keys are configured: generate requests carry the caller's key id (`Sy-Key-Id`) for capture. */
  keysConfigured: boolean;
}

/** One request to serve. */
export interface GenerationCall {
  res: ServerResponse;
  /** The caller's id (echoed, and in response ids). */
  requestId: string;
  /** The id the cluster knows the request by: `requestId` scoped to the caller's tenant. */
  clusterRequestId: string;
  caller: Caller;
  parsed: ParsedGeneration;
  /** Aborted when the client goes away or the bridge stops past its grace. */
  signal: AbortSignal;
  /** Headers every answer carries (the request id). */
  headers: Record<string, string>;
  log: Logger;
}

/** The prompt's tokens as the bridge estimates them (no tokenizer here): characters / 4 plus overheads. */
export function estimatePromptTokens(r: GenerateRequest): number {
  const chars = r.prompt?.length ?? 0;
  const messageChars = (r.messages ?? []).reduce((sum, m) => sum + m.content.length, 0);
  return (
    Math.ceil((chars + messageChars) / CHARS_PER_TOKEN_ESTIMATE) +
    (r.messages?.length ?? 0) * MESSAGE_OVERHEAD_TOKENS +
    (r.promptTokenIds?.length ?? 0)
  );
}

/** The rate limiter's estimate: prompt characters / 4 plus max_tokens (or the engine's default cap). */
export function estimateTokens(requests: readonly GenerateRequest[]): number {
  let total = 0;
  for (const r of requests) total += estimatePromptTokens(r) + (r.maxTokens ?? DEFAULT_MAX_TOKENS_CAP);
  return total;
}

interface CachePlan {
  /** The version cache keys were made for (pinned, or the single live one). */
  version?: string;
  keys: Array<string | undefined>;
  hits: Array<CachedGeneration | undefined>;
  /** For each key this request computes for the bridge's other requests (single flight): its settle. */
  leads: Array<Settle<CachedGeneration> | undefined>;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`cache lookup took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * The model version a request will be served by: the pinned one, or the only one live replicas
 * serve. Undefined while several are live (a rollout): the router's pick is not known then.
 */
export function expectedVersion(view: ClusterView, request: GenerateRequest | undefined): string | undefined {
  if (request === undefined) return undefined;
  if (request.version !== undefined) return request.version;
  const live = view.liveVersions(request.model);
  return live.length === 1 ? live[0] : undefined;
}

async function planCache(
  deps: GenerationDeps,
  call: GenerationCall,
  version: string | undefined,
): Promise<CachePlan> {
  const { requests } = call.parsed;
  const none: CachePlan = {
    keys: requests.map(() => undefined),
    hits: requests.map(() => undefined),
    leads: requests.map(() => undefined),
  };
  if (!deps.cache.enabled || version === undefined) return none;
  const tenant = tenantOf(call.caller);
  const keys = requests.map((r) => {
    try {
      return deps.cache.keyOf(r, version, tenant);
    } catch (err) {
      call.log.warn({ err }, 'response cache keyOf failed; serving without the cache');
      deps.metrics.countCache('error');
      return undefined;
    }
  });
  // Joined before any await, so that of two identical requests exactly one leads. A key that an
  // earlier choice of this same request leads is generated again, never waited for (that wait
  // would never end: the leader's value comes after this plan).
  const joined = keys.map((key, i) =>
    key === undefined || keys.indexOf(key) < i ? undefined : deps.flights.join(key),
  );
  const leads = joined.map((j) => (j !== undefined && 'settle' in j ? j.settle : undefined));
  const lookup = async (key: string): Promise<CachedGeneration | undefined> => {
    try {
      const hit = await withTimeout(deps.cache.get(key), CACHE_LOOKUP_TIMEOUT_MS);
      deps.metrics.countCache(hit === undefined ? 'miss' : 'hit');
      return hit;
    } catch (err) {
      call.log.warn({ err }, 'response cache lookup failed; generating instead');
      deps.metrics.countCache('error');
      return undefined;
    }
  };
  try {
    const hits = await Promise.all(
      keys.map(async (key, i) => {
        const j = joined[i];
        if (key === undefined) return undefined;
        if (j !== undefined && 'follow' in j) {
          // The same generation is being computed for another request on this bridge: share it.
          const shared = await untilAborted(j.follow, call.signal);
          if (shared !== undefined) {
            deps.metrics.countCache('hit');
            return shared;
          }
          return lookup(key); // the leader had nothing to share (it failed): on our own
        }
        const hit = await lookup(key);
        if (hit !== undefined) leads[i]?.(hit);
        return hit;
      }),
    );
    return { version, keys, hits, leads };
  } catch (err) {
    for (const settle of leads) settle?.(undefined);
    throw err;
  }
}

/** `promise`, or a CancelledError as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new CancelledError('the client went away'));
  let onAbort: (() => void) | undefined;
  const gone = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(new CancelledError('the client went away'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([promise, gone]).finally(() => {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  });
}

/** Stores the complete generations of a request; failures are logged only. */
async function fillCache(
  deps: GenerationDeps,
  call: GenerationCall,
  plan: CachePlan,
  outcomes: ReadonlyArray<(ChoiceOutcome & { text: string }) | undefined>,
): Promise<void> {
  await Promise.all(
    outcomes.map(async (o, i) => {
      const key = plan.keys[i];
      const lead = plan.leads[i];
      // Only what the planned version produced: a hit must never cross model versions.
      if (o === undefined || o.cached || key === undefined || o.modelVersion !== plan.version) {
        lead?.(undefined);
        return;
      }
      const generation: CachedGeneration = {
        text: o.text,
        tokenIds: o.tokenIds,
        finishReason: o.finishReason,
        promptTokens: o.usage.promptTokens,
        completionTokens: o.usage.completionTokens,
      };
      lead?.(generation);
      try {
        await deps.cache.put(key, generation);
      } catch (err) {
        call.log.warn({ err }, 'response cache store failed');
      }
    }),
  );
}

/**
 * Serves the request and resolves with the status it was answered with (499 when the client
 * went away). Rejects, before anything was written, with the error to answer instead.
 */
export async function serveGeneration(deps: GenerationDeps, call: GenerationCall): Promise<number> {
  const { parsed } = call;
  // The bridge's HTTP span (the active one) tells which GenAI operation this was.
  trace.getActiveSpan()?.setAttributes({
    [GEN_AI_ATTRS.operationName]:
      parsed.kind === 'chat' ? GEN_AI_OPERATION.chat : GEN_AI_OPERATION.textCompletion,
    [GEN_AI_ATTRS.requestModel]: parsed.model,
  });
  // Each prompt (each choice of each prompt) is one request against requests per minute.
  const admission = await deps.limiter.admit(
    call.caller,
    estimateTokens(parsed.requests),
    parsed.requests.length,
  );
  let runs: ChoiceRun[] = [];
  const outcomes: Array<(ChoiceOutcome & { text: string }) | undefined> = [];
  let plan: CachePlan | undefined;
  try {
    const version = expectedVersion(deps.view, parsed.requests[0]);
    plan = await planCache(deps, call, version);
    const headers = { ...call.headers };
    if (plan.keys.some((k) => k !== undefined)) {
      headers[CACHE_HEADER] = plan.hits.every((h) => h !== undefined) ? 'hit' : 'miss';
    }
    const abort = new AbortController();
    const onGone = (): void => abort.abort();
    call.signal.addEventListener('abort', onGone, { once: true });
    const keyId = deps.keysConfigured ? call.caller.keyId : undefined;
    try {
      const hits = plan.hits;
      runs = parsed.requests.map((request, i) => {
        const hit = hits[i];
        if (hit !== undefined) return cachedChoice(hit);
        // Choice i is request `<id>.<i>` (choice 0 the id itself): feedback on choice i joins it.
        return liveChoice(deps.client, request, {
          requestId: choiceRequestId(call.clusterRequestId, i),
          timeoutMs: deps.generationTimeoutMs,
          signal: abort.signal,
          ...(keyId !== undefined ? { keyId } : {}),
        });
      });
      const modelId = parsed.requests[0]?.model ?? parsed.model;
      const meta: ResponseMeta = {
        kind: parsed.kind,
        // The cluster's id, so that feedback on it can tell whose request it was (`feedback.ts`).
        id: responseId(parsed.kind, call.clusterRequestId),
        created: Math.floor(Date.now() / 1000),
        model: parsed.model,
        modelId,
        fingerprint: version === undefined ? null : versionFingerprint(modelId, version),
        includeUsage: parsed.includeUsage,
      };
      const planned = plan;
      // Stored before the answer's last bytes: a client that repeats a request once it has the
      // answer gets a hit (read-your-writes), from this bridge or another on the same bucket.
      const store = (): Promise<void> => fillCache(deps, call, planned, outcomes);
      const status = parsed.stream
        ? await streamAnswer(runs, abort, meta, headers, call, outcomes, store)
        : await jsonAnswer(runs, abort, meta, headers, call, outcomes, store);
      return status;
    } finally {
      call.signal.removeEventListener('abort', onGone);
    }
  } finally {
    for (const settle of plan?.leads ?? []) settle?.(undefined);
    admission.release(spentTokens(parsed.requests, runs, outcomes));
  }
}

/**
 * Tokens to charge against tokens per minute: what each finished choice reports, and for one
 * cut short (the client went away, a failure) what it delivered — its completion tokens so far,
 * plus the prompt's estimate once any token came (the prompt was processed). Cache hits cost none.
 */
function spentTokens(
  requests: readonly GenerateRequest[],
  runs: readonly ChoiceRun[],
  outcomes: ReadonlyArray<ChoiceOutcome | undefined>,
): number {
  let total = 0;
  runs.forEach((run, i) => {
    const o = outcomes[i];
    if (o !== undefined) {
      if (!o.cached) total += o.usage.promptTokens + o.usage.completionTokens;
      return;
    }
    const delivered = run.delivered();
    const request = requests[i];
    if (delivered > 0 && request !== undefined) total += delivered + estimatePromptTokens(request);
  });
  return total;
}

async function jsonAnswer(
  runs: readonly ChoiceRun[],
  abort: AbortController,
  meta: ResponseMeta,
  headers: Record<string, string>,
  call: GenerationCall,
  outcomes: Array<(ChoiceOutcome & { text: string }) | undefined>,
  store: () => Promise<void>,
): Promise<number> {
  const done = await allChoices(runs, abort, async (run, i) => {
    let text = '';
    for await (const delta of run.deltas) text += delta;
    const outcome = { ...(await run.outcome), text };
    outcomes[i] = outcome;
    return outcome;
  });
  const version = done.find((o) => o.modelVersion !== undefined)?.modelVersion;
  const body = responseBody(servedMeta(meta, version), done);
  await store();
  sendJson(call.res, 200, body, headers);
  return 200;
}

async function streamAnswer(
  runs: readonly ChoiceRun[],
  abort: AbortController,
  meta: ResponseMeta,
  headers: Record<string, string>,
  call: GenerationCall,
  outcomes: Array<(ChoiceOutcome & { text: string }) | undefined>,
  store: () => Promise<void>,
): Promise<number> {
  const sse = new SseWriter(call.res, headers);
  try {
    await allChoices(runs, abort, async (run, index) => {
      let first = true;
      let text = '';
      for await (const delta of run.deltas) {
        if (delta === '') continue; // an incomplete UTF-8 character: its bytes come with the next delta
        text += delta;
        // Each chunk names the version the cluster pinned this choice to (known before its first delta).
        await sse.send(streamChunk(servedMeta(meta, run.modelVersion()), index, delta, null, first));
        first = false;
      }
      const outcome = await run.outcome;
      const served = servedMeta(meta, outcome.modelVersion ?? run.modelVersion());
      if (first && meta.kind === 'chat') await sse.send(streamChunk(served, index, '', null, true));
      await sse.send(streamChunk(served, index, '', outcome.finishReason));
      outcomes[index] = { ...outcome, text };
    });
  } catch (err) {
    if (!sse.started) throw err;
    if (call.signal.aborted) return STATUS_CLIENT_CLOSED;
    const answer = toHttpError(err, call.requestId);
    call.log.warn({ err, code: answer.code }, 'generation failed after the stream started');
    sse.fail(answer.body);
    return answer.status;
  }
  if (call.signal.aborted) return STATUS_CLIENT_CLOSED;
  await store();
  if (meta.includeUsage) {
    await sse.send(
      usageChunk(
        servedMeta(meta, outcomes.find((o) => o?.modelVersion !== undefined)?.modelVersion),
        outcomes.map((o) => o?.usage ?? { promptTokens: 0, completionTokens: 0 }),
      ),
    );
  }
  sse.done();
  return 200;
}
