/**
 * Whose requests the capture check judges: the load clients' (all under one inbox prefix, so
 * their records are found by it) and the bridges'. Other requesters' records (the hostile
 * scenarios' squatters, which reuse live request ids) are other requests: routers key requests
 * by (requester, id), and so do the records.
 */
import { BRIDGE_REQUESTER } from '../src/cluster/messages/capture.ts';
import { actorInboxPrefix } from '../src/cluster/subjects.ts';

/** The inbox prefix every NATS load client uses. */
export const LOAD_INBOX_PREFIX = actorInboxPrefix('client', 'chaos-load');

/**
 * Whether a record or event is of a request the history recorded: a load client's over NATS
 * (its requester is its connection's reply mux, `<LOAD_INBOX_PREFIX>.<nuid>`), or one through a
 * bridge, whose ids the bridge scoped (`<tenant>:<id>`, always with a colon; the NATS load's ids
 * have none). A hostile bridge credential's request with a NATS load id is another request.
 */
export function isLoadRequester(requester: string | undefined, requestId: string): boolean {
  if (requester === undefined || requester === BRIDGE_REQUESTER) return requestId.includes(':');
  return requester.startsWith(`${LOAD_INBOX_PREFIX}.`);
}
