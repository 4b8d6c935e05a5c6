/**
 * `GET /v1/collector/stats`: the collector's per-version statistics (requests, error rate by code,
 * latency percentiles, tokens, feedback), asked over NATS from whichever collector answers and
 * relayed as it answered. The bridge keeps none of it: the collector owns the record. Without a
 * collector the answer is 503, as for any other part of the cluster that is not running.
 */
import { RequestError, TimeoutError } from '@nats-io/nats-core';
import { errorFromHeaders } from '../cluster/headers.ts';
import { collectorSubject } from '../cluster/subjects.ts';
import { InternalError, UnavailableError } from '../errors/errors.ts';
import { encodeObject, parseObject, type WireObject } from '../validation/fields.ts';
import type { BridgeContext, RequestContext } from './context.ts';
import { sendJson } from './http-io.ts';

/** How long the bridge waits for a collector's stats: they are computed in memory, at once. */
export const COLLECTOR_STATS_TIMEOUT_MS = 5_000;

/** The collector's stats document (`{ "versions": [...] }`), checked for its shape only. */
export async function fetchCollectorStats(
  nc: BridgeContext['client']['nc'],
  timeoutMs: number = COLLECTOR_STATS_TIMEOUT_MS,
): Promise<WireObject> {
  let reply;
  try {
    reply = await nc.request(collectorSubject('stats'), encodeObject({}), { timeout: timeoutMs });
  } catch (err) {
    if (err instanceof RequestError && err.isNoResponders()) {
      throw new UnavailableError('no collector is running: the stats come from the collector', {
        cause: err,
      });
    }
    if (err instanceof TimeoutError) {
      throw new UnavailableError(`no collector answered within ${timeoutMs} ms`, { cause: err });
    }
    throw new UnavailableError('the collector cannot be asked right now', { cause: err });
  }
  const remote = errorFromHeaders(reply.headers);
  if (remote !== undefined) throw remote;
  const stats = parseObject(reply.data, 'collector stats');
  if (!Array.isArray(stats.versions)) {
    throw new InternalError('the collector answered stats without a versions array');
  }
  return stats;
}

/** `GET /v1/collector/stats`. */
export async function collectorStats(bridge: BridgeContext, call: RequestContext): Promise<number> {
  const stats = await fetchCollectorStats(bridge.client.nc);
  sendJson(call.res, 200, stats, call.headers);
  return 200;
}
