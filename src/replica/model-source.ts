/**
 * Where a replica's model comes from: a folder on this host, or a version in the model registry
 * (`registry://<id>@<version|alias>`), fetched into the local digest cache. Both end as a folder
 * the engine loads; a registry version also names the id, version and digest the replica serves.
 * A replica started from an alias follows it: when the alias moves, the replica hot swaps.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { ModelIdentity } from '../engine/options.ts';
import type { AliasRecord } from '../registry/alias-record.ts';
import { Registry } from '../registry/registry.ts';
import {
  isRegistryUrl,
  parseRegistryUrl,
  registryUrl,
  resolveModel,
  type RegistryRef,
} from '../registry/source.ts';

/** A model ready to load. */
export interface ModelTarget {
  /** Local folder to load. */
  dir: string;
  /** What the replica serves it as, overriding the folder's manifest (registry versions). */
  identity?: ModelIdentity;
  /** The registry version's digest; undefined for a folder (its ONNX file's sha256 stands in). */
  digest?: string;
  /** What was asked for, for logs and errors. */
  source: string;
  /** True when the registry did not answer and the local cache served the ref. */
  fromCache?: boolean;
}

/** What resolving a registry reference needs. */
export interface ModelSourceContext {
  nc: NatsConnection | undefined;
  cacheDir: string;
  /** How long to wait for JetStream before falling back to the local cache. */
  timeoutMs: number;
}

/** Resolves `model` (a folder path or a registry URL) to a folder to load. */
export async function resolveTarget(model: string, ctx: ModelSourceContext): Promise<ModelTarget> {
  if (!isRegistryUrl(model)) return { dir: model, source: model };
  const url = parseRegistryUrl(model);
  const resolved = await resolveModel({ nc: ctx.nc, url, cacheDir: ctx.cacheDir, timeoutMs: ctx.timeoutMs });
  return {
    dir: resolved.dir,
    identity: { id: resolved.id, version: resolved.version },
    digest: resolved.digest,
    source: registryUrl(resolved.id, resolved.version),
    fromCache: resolved.fromCache,
  };
}

/** A running alias watch. */
export interface AliasFollower {
  stop(): void;
}

/** How long a follower waits before it watches again after its watch failed or ended. */
export const FOLLOW_RETRY_MS = 2_000;

/**
 * Follows the alias `model` names, if it names one (a version never moves): `onMove` gets each
 * version the alias points at, the current one first. A watch that fails (JetStream down, the
 * connection lost) is started again every {@link FOLLOW_RETRY_MS} until `stop()`, so a replica
 * that started from its cache picks the alias up once the registry is back.
 */
export function followAlias(
  model: string,
  nc: NatsConnection,
  onMove: (record: AliasRecord) => void,
  onProblem: (err: unknown) => void,
): AliasFollower | undefined {
  if (!isRegistryUrl(model)) return undefined;
  const url = parseRegistryUrl(model);
  let stopped = false;
  let watch: { stop(): void } | undefined;
  let retry: NodeJS.Timeout | undefined;
  const again = (err: unknown): void => {
    watch?.stop();
    watch = undefined;
    if (stopped) return;
    onProblem(err);
    clearTimeout(retry);
    retry = setTimeout(() => void start(), FOLLOW_RETRY_MS).unref();
  };
  const start = async (): Promise<void> => {
    try {
      const registry = await Registry.open(nc, { create: false });
      if (!(await isAlias(registry, url))) {
        stopped = true; // a version: nothing to follow
        return;
      }
      const w = await registry.watchAlias(url.id, url.ref, onMove, again);
      if (stopped) w.stop();
      else watch = w;
    } catch (err) {
      again(err);
    }
  };
  void start();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(retry);
      watch?.stop();
    },
  };
}

/** A ref is an alias when no version has its name (a version wins, as in `resolve`). */
async function isAlias(registry: Registry, url: RegistryRef): Promise<boolean> {
  return (await registry.getVersion(url.id, url.ref)) === undefined;
}
