/**
 * `registry://<id>@<version|alias>`: the one entry a replica calls to turn a model URL into a
 * verified local folder. Online it resolves the ref, fetches into the digest cache and records
 * the ref; when JetStream does not answer in time (or there is no connection) it falls back to
 * the ref recorded last and its cached copy, verified, so a replica restarts while the registry
 * is down. Nothing here is on the request path: it runs before a replica serves, or beside it.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { ID_PATTERN, assertRegistryRef } from '../cluster/subjects.ts';
import { RegistryError, StartupError, SwitchyardError } from '../errors/errors.ts';
import {
  cachedVersionDir,
  fetchVersion,
  readCachedManifest,
  readRef,
  recordRef,
  verifyCachedVersion,
} from './cache.ts';
import { Registry } from './registry.ts';
import type { VersionManifest } from './version-manifest.ts';

/** The scheme of registry model URLs. */
export const REGISTRY_URL_SCHEME = 'registry://';
/** How long a replica waits for the registry before it starts from its cache. */
export const DEFAULT_RESOLVE_TIMEOUT_MS = 5_000;

/** A parsed registry URL. */
export interface RegistryRef {
  id: string;
  /** A version or an alias. */
  ref: string;
}

/** The registry URL of a version or an alias. */
export function registryUrl(id: string, ref: string): string {
  return `${REGISTRY_URL_SCHEME}${id}@${ref}`;
}

/** True when `s` is meant as a registry URL (a folder path never starts so). */
export function isRegistryUrl(s: string): boolean {
  return s.startsWith(REGISTRY_URL_SCHEME);
}

/**
 * Parses `<id>@<version|alias>` (what follows the scheme, and what `models show|rm` take); a
 * `config` start-up error says what is wrong with `text`, shown as `label`.
 */
export function parseModelRef(text: string, label = text): RegistryRef {
  const bad = (why: string): never => {
    throw new StartupError('config', `'${label}' ${why}; expected <id>@<version|alias>`);
  };
  const at = text.indexOf('@');
  if (at === -1) bad("names no version or alias (no '@')");
  const id = text.slice(0, at);
  const ref = text.slice(at + 1);
  if (!ID_PATTERN.test(id)) bad(`has model id '${id}', which must match [A-Za-z0-9_-]{1,64}`);
  try {
    assertRegistryRef('version or alias', ref);
  } catch (err) {
    bad(`has ${err instanceof Error ? err.message : String(err)}`);
  }
  return { id, ref };
}

/** Parses `registry://<id>@<version|alias>`; a `config` start-up error names what is wrong. */
export function parseRegistryUrl(url: string): RegistryRef {
  if (!isRegistryUrl(url)) {
    throw new StartupError(
      'config',
      `model URL '${url}' does not start with ${REGISTRY_URL_SCHEME}; expected registry://<id>@<version|alias>`,
    );
  }
  return parseModelRef(url.slice(REGISTRY_URL_SCHEME.length), `model URL ${url}`);
}

/** What {@link resolveModel} needs. */
export interface ResolveModelOptions {
  /** The connection to reach the registry on; undefined: the cache only. */
  nc?: NatsConnection | undefined;
  url: RegistryRef;
  cacheDir: string;
  /** How long resolving may wait for JetStream before falling back to the cache. @default DEFAULT_RESOLVE_TIMEOUT_MS */
  timeoutMs?: number;
}

/** A model version ready to load. */
export interface ResolvedModel {
  id: string;
  version: string;
  digest: string;
  /** The verified local folder. */
  dir: string;
  /** True when the registry did not answer and the recorded ref and cached copy were used. */
  fromCache: boolean;
  manifest: VersionManifest;
}

/** Our own refusals (not found, corrupt, bad input) are answers: they never fall back to the cache. */
function isAnswer(err: unknown): boolean {
  return err instanceof SwitchyardError || err instanceof StartupError || err instanceof RegistryError;
}

class ResolveTimeout extends Error {}

function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ResolveTimeout(`no answer from JetStream within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function fromCache(opts: ResolveModelOptions, why: string, cause?: unknown): Promise<ResolvedModel> {
  const { id, ref } = opts.url;
  const label = registryUrl(id, ref);
  const recorded = await readRef(opts.cacheDir, id, ref);
  const manifest =
    recorded === undefined ? undefined : await readCachedManifest(opts.cacheDir, recorded.digest);
  if (recorded === undefined || manifest === undefined) {
    throw new RegistryError(
      'unreachable',
      `${label}: the model registry is unreachable (${why}) and nothing is cached for that ref in ${opts.cacheDir}; ` +
        'start once with the registry reachable, or give a model folder',
      { cause },
    );
  }
  const dir = cachedVersionDir(opts.cacheDir, manifest.digest);
  await verifyCachedVersion(dir, manifest);
  return { id, version: manifest.version, digest: manifest.digest, dir, fromCache: true, manifest };
}

/**
 * Resolves and fetches a registry model (see the module comment). Refusals of the registry (no
 * such ref, a corrupt file) are thrown as they are; only an unreachable registry falls back.
 */
export async function resolveModel(opts: ResolveModelOptions): Promise<ResolvedModel> {
  const { id, ref } = opts.url;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RESOLVE_TIMEOUT_MS;
  if (opts.nc === undefined) return fromCache(opts, 'no NATS connection');
  let registry: Registry;
  let manifest: VersionManifest;
  try {
    const nc = opts.nc;
    ({ registry, manifest } = await within(
      timeoutMs,
      (async () => {
        const r = await Registry.open(nc, { create: false, timeoutMs });
        return { registry: r, manifest: await r.resolve(id, ref) };
      })(),
    ));
  } catch (err) {
    if (isAnswer(err)) throw err;
    return fromCache(opts, err instanceof Error ? err.message : String(err), err);
  }
  let dir: string;
  try {
    dir = await fetchVersion(registry, manifest, opts.cacheDir);
  } catch (err) {
    if (isAnswer(err)) throw err;
    return fromCache(opts, err instanceof Error ? err.message : String(err), err);
  }
  await recordRef(opts.cacheDir, id, ref, { version: manifest.version, digest: manifest.digest });
  return { id, version: manifest.version, digest: manifest.digest, dir, fromCache: false, manifest };
}
