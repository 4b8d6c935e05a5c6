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
 * Whether a requester is one the history recorded: a bridge, or a load client (whose requester
 * is its connection's reply mux, `<LOAD_INBOX_PREFIX>.<nuid>`).
 */
export function isLoadRequester(requester: string | undefined): boolean {
  return (
    requester === undefined || requester === BRIDGE_REQUESTER || requester.startsWith(`${LOAD_INBOX_PREFIX}.`)
  );
}
