/** Checks every actor's options share: ids, durations and addresses, with messages that name the option. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { ID_PATTERN } from '../cluster/subjects.ts';
import { StartupError } from '../errors/errors.ts';
import { DEFAULT_METRICS_HOST } from '../telemetry/metrics-address.ts';

/** A fresh id for an actor of `role`, unique across hosts and restarts. */
export function newActorId(role: string): string {
  const host = hostname()
    .replace(/[^A-Za-z0-9_-]/g, '-')
    .slice(0, 32);
  return `${role}-${host}-${randomBytes(3).toString('hex')}`;
}

/** Checks an actor's numeric option; the message names the option. */
export function checkMs(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) {
    throw new StartupError('config', `${name} must be an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}

/** Checks an actor id. */
export function checkActorId(role: string, id: string | undefined): string {
  const value = id ?? newActorId(role);
  if (!ID_PATTERN.test(value)) {
    throw new StartupError('config', `${role} id must match [A-Za-z0-9_-]{1,64}, got '${value}'`);
  }
  return value;
}

/** Checks the address a `/metrics` endpoint listens on; undefined means loopback. */
export function checkMetricsHost(host: string | undefined): string {
  const value = host ?? DEFAULT_METRICS_HOST;
  if (value.trim() === '') {
    throw new StartupError('config', 'metricsHost must be a host name or address, got an empty value');
  }
  return value;
}
