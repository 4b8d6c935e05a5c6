/**
 * The `Host` check against DNS rebinding: a web page on another site can make a browser send
 * requests to a name that its attacker later points at 127.0.0.1, and then read the answers,
 * since to the browser they are same-origin. The browser still sends the attacker's name in
 * `Host`, so a bridge that answers only the names it is really reached by is out of reach.
 *
 * A bridge bound to loopback answers the loopback names (`localhost`, `127.0.0.1`, `[::1]`,
 * any port) and the names in `allowedHosts`; a bridge bound elsewhere answers the names in
 * `allowedHosts` only (`*` accepts any name: for deployments behind a proxy that checks it).
 * Health probes (`/healthz`, `/readyz`) answer any name: kubelets send the pod's IP, and they
 * tell an attacker nothing.
 */
import { HttpInputError } from './http-errors.ts';

/** Names a loopback bind always answers. */
export const LOOPBACK_HOST_NAMES: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];
/** The `allowedHosts` entry that accepts any `Host`. */
export const ANY_HOST = '*';
/** The status of a request sent to a name this bridge does not answer (RFC 9110 §15.5.20). */
const MISDIRECTED = 421;

/** True for an address or name that only this machine can reach. */
export function isLoopbackBind(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** The host name of a `Host` header value without its port, lower-case (`[::1]` keeps its brackets). */
export function hostNameOf(header: string): string {
  const value = header.trim().toLowerCase();
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    return end < 0 ? value : value.slice(0, end + 1);
  }
  const colon = value.lastIndexOf(':');
  return colon < 0 ? value : value.slice(0, colon);
}

/** The names a bridge bound to `bindHost` answers; undefined when it answers any. */
export function acceptedHostNames(
  bindHost: string,
  allowedHosts: readonly string[],
): Set<string> | undefined {
  if (allowedHosts.includes(ANY_HOST)) return undefined;
  const names = new Set(allowedHosts.map((h) => hostNameOf(h)));
  if (isLoopbackBind(bindHost)) for (const name of LOOPBACK_HOST_NAMES) names.add(name);
  return names;
}

/** Throws 421 when `header` names a host this bridge does not answer. */
export function checkHost(header: string | undefined, accepted: ReadonlySet<string> | undefined): void {
  if (accepted === undefined) return;
  const name = hostNameOf(header ?? '');
  if (accepted.has(name)) return;
  throw new HttpInputError(
    MISDIRECTED,
    `this bridge does not answer the host name '${name.slice(0, 64)}'; ` +
      'its operator can add it with --allowed-hosts (DNS rebinding protection)',
  );
}
