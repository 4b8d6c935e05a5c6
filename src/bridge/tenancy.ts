/**
 * Tenants at the HTTP edge. A tenant is an API key (its id), or — on a bridge without keys —
 * everyone: the anonymous caller is one tenant. What one tenant names must never reach another's
 * work: request ids a caller chooses (`x-request-id`) are scoped to its tenant before they become
 * cluster request ids, so no caller can supersede or cancel another's stream by reusing its id,
 * and response cache keys include the tenant, so a hit never tells one key what another asked.
 */
import { createHash } from 'node:crypto';
import type { Caller } from './policy.ts';

/** Longest cluster request id (the protocol's request id pattern). */
export const CLUSTER_REQUEST_ID_MAX_LENGTH = 128;

/** The tenant of a caller: its key id (`anonymous` for everyone where keys are off). */
export function tenantOf(caller: Caller): string {
  return caller.keyId;
}

/**
 * The cluster request id of `id` sent by `tenant`: `<tenant>:<id>`, or, when that would pass the
 * protocol's 128 characters, `<tenant>::<base64url SHA-256 of id>`. Key ids have no `:`, so the
 * first `:` always ends the tenant and two tenants can never produce the same id; the result
 * fits `[A-Za-z0-9._:-]{1,128}` (key ids are `[A-Za-z0-9_-]{1,64}`, base64url is `[A-Za-z0-9_-]`).
 */
export function scopedRequestId(tenant: string, id: string): string {
  const plain = `${tenant}:${id}`;
  if (plain.length <= CLUSTER_REQUEST_ID_MAX_LENGTH) return plain;
  return `${tenant}::${createHash('sha256').update(id, 'utf8').digest('base64url')}`;
}

/**
 * The tenant that made a cluster request id ({@link scopedRequestId}): what comes before its first
 * `:`. Undefined for an id that has no scope.
 */
export function tenantOfRequestId(clusterRequestId: string): string | undefined {
  const end = clusterRequestId.indexOf(':');
  return end <= 0 ? undefined : clusterRequestId.slice(0, end);
}
