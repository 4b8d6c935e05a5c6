/**
 * The generation routes, `POST /v1/completions` and `POST /v1/chat/completions`: read and check
 * the body, translate it, serve it (`generation.ts`).
 */
import type { BridgeContext, Handler, RequestContext } from './context.ts';
import { serveGeneration } from './generation.ts';
import { readJsonObject } from './http-io.ts';
import { parseChatRequest, parseCompletionRequest, type ParsedGeneration } from './openai-request.ts';
import type { WireObject } from '../validation/fields.ts';

function generationRoute(parse: (body: WireObject) => ParsedGeneration): Handler {
  return async (bridge: BridgeContext, call: RequestContext): Promise<number> => {
    const { maxBodyBytes, bodyTimeoutMs, generationTimeoutMs } = bridge.options;
    const body = await readJsonObject(call.req, { maxBytes: maxBodyBytes, timeoutMs: bodyTimeoutMs });
    const parsed = parse(body);
    const log = parsed.user === undefined ? call.log : call.log.child({ user: parsed.user });
    // Refused here, before the rate limiter and any NATS traffic, when the cluster is full anyway.
    const model = parsed.requests[0]?.model ?? parsed.model;
    const release = bridge.shedder.admit(model, parsed.requests.length);
    try {
      return await serveGeneration(
        {
          client: bridge.client,
          view: bridge.view,
          limiter: bridge.limiter,
          cache: bridge.cache,
          flights: bridge.flights,
          metrics: bridge.metrics,
          generationTimeoutMs,
          keysConfigured: bridge.auth.enabled,
        },
        { ...call, log, parsed },
      );
    } finally {
      release();
    }
  };
}

/** `POST /v1/completions`. */
export const completions: Handler = generationRoute(parseCompletionRequest);

/** `POST /v1/chat/completions`. */
export const chatCompletions: Handler = generationRoute(parseChatRequest);
