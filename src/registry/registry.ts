/**
 * The model registry over JetStream (nats-server 2.9 is enough): files in the object store
 * {@link MODELS_OBJECT_BUCKET}, one manifest per version in the KV bucket
 * {@link MODEL_VERSIONS_BUCKET}, aliases in {@link MODEL_ALIASES_BUCKET} whose KV history is the
 * alias history. Versions are immutable: a push decides with a KV `create`, so of two pushers of
 * one id@version exactly one wins, and a version id never changes digest. It needs no running
 * collector: every actor and command opens it on its own connection.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { JetStreamApiCodes, JetStreamApiError, jetstream } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { Objm, StorageType, type ObjectStore } from '@nats-io/obj';
import {
  MODELS_OBJECT_BUCKET,
  MODEL_ALIASES_BUCKET,
  MODEL_VERSIONS_BUCKET,
  assertId,
  assertRegistryRef,
  modelAliasKey,
  modelKeys,
  modelVersionKey,
  splitModelKey,
} from '../cluster/subjects.ts';
import { InvalidRequestError, ModelNotFoundError, RegistryError } from '../errors/errors.ts';
import { decodeAliasValue, encodeAliasValue, type AliasRecord } from './alias-record.ts';
import { folderIdentity, scanFolder } from './files.ts';
import { deleteFiles, openFile, uploadFiles } from './objects.ts';
import {
  SHA256_HEX,
  decodeVersionManifest,
  encodeVersionManifest,
  versionDigest,
  type VersionFile,
  type VersionLineage,
  type VersionManifest,
} from './version-manifest.ts';
import { defaultActor } from './who.ts';
import { whileJetStreamForms } from '../cluster/jetstream-forming.ts';

/** Values kept per alias key: the alias history (nats-server's largest KV history). */
export const ALIAS_HISTORY = 64;
/** How long one JetStream API call of the registry may take before it fails. */
export const DEFAULT_REGISTRY_TIMEOUT_MS = 10_000;

/** How to open the registry. */
export interface RegistryOpenOptions {
  /** Create the buckets where missing (operators, the collector); replicas only open them. */
  create: boolean;
  /** Per JetStream API call. @default DEFAULT_REGISTRY_TIMEOUT_MS */
  timeoutMs?: number;
  /** Stream replicas of buckets it creates. @default 1 */
  replicas?: number;
}

/** What a push stores besides the files. */
export interface PushOptions {
  /** @default the folder's manifest.json id, else the folder's name */
  id?: string;
  /** @default the folder's manifest.json version */
  version?: string;
  lineage?: VersionLineage;
  /** @default user@host */
  by?: string;
  /**
   * When some version of the id already holds exactly these files, return it instead of
   * storing them again (what `up` does with its --model folder). @default false
   */
  reuseContent?: boolean;
}

/** A version with the aliases that point at it and their histories. */
export interface VersionDetails {
  manifest: VersionManifest;
  /** Aliases of its model that point at it now. */
  aliases: AliasRecord[];
  /** The history of each of those aliases (and of the ref, when it was an alias), oldest first. */
  history: AliasRecord[];
}

/** A running alias watch. */
export interface AliasWatch {
  stop(): void;
}

const isLive = (e: KvEntry | null): e is KvEntry => e !== null && e.operation === 'PUT';

/**
 * A bucket that does not exist: a KV open fails with JetStream's stream-not-found code; the
 * object store's open rejects with a plain Error of its own (nats.js obj 3.4 has no class or
 * code for it), so its text is the only sign.
 */
function isMissingBucket(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.code === JetStreamApiCodes.StreamNotFound;
  return err instanceof Error && err.message === OBJECT_STORE_NOT_FOUND;
}

/** What nats.js's `Objm.open` rejects with when the bucket is missing. */
const OBJECT_STORE_NOT_FOUND = 'object store not found';

/** The registry on one NATS connection. */
export class Registry {
  private constructor(
    private readonly versions: KV,
    private readonly aliasKv: KV,
    private readonly objects: ObjectStore,
  ) {}

  /** Opens (with `create`, creates) the three buckets. */
  static async open(nc: NatsConnection, opts: RegistryOpenOptions): Promise<Registry> {
    const js = jetstream(nc, { timeout: opts.timeoutMs ?? DEFAULT_REGISTRY_TIMEOUT_MS });
    const kvm = new Kvm(js);
    const objm = new Objm(js);
    const replicas = opts.replicas ?? 1;
    try {
      if (opts.create) {
        const [versions, aliases, objects] = await Promise.all([
          whileJetStreamForms(() =>
            kvm.create(MODEL_VERSIONS_BUCKET, { history: 1, replicas, storage: 'file' }),
          ),
          whileJetStreamForms(() =>
            kvm.create(MODEL_ALIASES_BUCKET, { history: ALIAS_HISTORY, replicas, storage: 'file' }),
          ),
          whileJetStreamForms(() =>
            objm.create(MODELS_OBJECT_BUCKET, { replicas, storage: StorageType.File }),
          ),
        ]);
        return new Registry(versions, aliases, objects);
      }
      const [versions, aliases, objects] = await Promise.all([
        kvm.open(MODEL_VERSIONS_BUCKET),
        kvm.open(MODEL_ALIASES_BUCKET),
        objm.open(MODELS_OBJECT_BUCKET),
      ]);
      return new Registry(versions, aliases, objects);
    } catch (err) {
      if (!opts.create && isMissingBucket(err)) {
        throw new ModelNotFoundError(
          `the model registry does not exist on this NATS server (no ${MODEL_VERSIONS_BUCKET}, ` +
            `${MODEL_ALIASES_BUCKET} or ${MODELS_OBJECT_BUCKET} bucket): push a version first ` +
            '(`switchyard models push <folder>`)',
          { cause: err },
        );
      }
      throw err;
    }
  }

  /**
   * Stores every file of `folder` as a version. The same id@version with the same digest is a
   * no-op (`created: false`); with another digest it is refused, never overwritten.
   */
  async push(
    folder: string,
    opts: PushOptions = {},
  ): Promise<{ manifest: VersionManifest; created: boolean }> {
    const declared = await folderIdentity(folder);
    const id =
      opts.id ??
      declared.id ??
      folder
        .replace(/[/\\]+$/, '')
        .split(/[/\\]/)
        .pop() ??
      '';
    const version = opts.version ?? declared.version;
    assertId('model id', id);
    if (version === undefined) {
      throw new InvalidRequestError(
        `${folder}: no version given and its manifest.json names none; pass a version`,
      );
    }
    assertRegistryRef('model version', version);
    const key = modelVersionKey(id, version);
    const files = await scanFolder(folder);
    const digest = versionDigest(files);
    const manifest: VersionManifest = {
      id,
      version,
      digest,
      files,
      lineage: { ...opts.lineage },
      createdAt: new Date().toISOString(),
      pushedBy: opts.by ?? defaultActor(),
    };
    // Validate the whole manifest (lineage included) with the one decoder before storing anything.
    decodeVersionManifest(encodeVersionManifest(manifest), key);
    if (opts.reuseContent === true) {
      const same = (await this.list(id)).find((m) => m.digest === digest);
      if (same !== undefined) return { manifest: same, created: false };
    }
    const existing = await this.getVersion(id, version);
    if (existing !== undefined) return { manifest: this.sameOrRefuse(existing, digest), created: false };
    if ((await this.aliasKv.get(modelAliasKey(id, version)).then(isLive)) === true) {
      throw new InvalidRequestError(
        `${id}@${version}: ${version} is an alias of ${id}; give the version another name`,
      );
    }
    const written = await uploadFiles(this.objects, id, digest, folder, files);
    try {
      await this.versions.create(key, encodeVersionManifest(manifest));
      return { manifest, created: true };
    } catch (err) {
      const winner = await this.getVersion(id, version);
      if (winner === undefined) throw err;
      if (
        winner.digest !== digest &&
        written.length > 0 &&
        (await this.findByDigest(id, digest)) === undefined
      ) {
        await deleteFiles(this.objects, id, digest, files);
      }
      return { manifest: this.sameOrRefuse(winner, digest), created: false };
    }
  }

  private sameOrRefuse(existing: VersionManifest, digest: string): VersionManifest {
    if (existing.digest === digest) return existing;
    throw new RegistryError(
      'version_conflict',
      `${existing.id}@${existing.version} exists with digest ${existing.digest}; this folder's digest is ` +
        `${digest}. A version is never overwritten: push it under another version`,
    );
  }

  /** The manifest of id@version, or undefined. */
  async getVersion(id: string, version: string): Promise<VersionManifest | undefined> {
    const key = modelVersionKey(id, version);
    const entry = await this.versions.get(key);
    return isLive(entry) ? decodeVersionManifest(entry.value, `${MODEL_VERSIONS_BUCKET} ${key}`) : undefined;
  }

  private async keysOf(kv: KV, id?: string): Promise<string[]> {
    if (id !== undefined) assertId('model id', id);
    const keys: string[] = [];
    for await (const k of await kv.keys(id === undefined ? '>' : modelKeys(id))) keys.push(k);
    return keys.sort();
  }

  /** Every version (of one model, with `id`), sorted by id then creation time. */
  async list(id?: string): Promise<VersionManifest[]> {
    const found: VersionManifest[] = [];
    for (const key of await this.keysOf(this.versions, id)) {
      const entry = await this.versions.get(key);
      if (isLive(entry)) found.push(decodeVersionManifest(entry.value, `${MODEL_VERSIONS_BUCKET} ${key}`));
    }
    return found.sort((a, b) =>
      a.id !== b.id ? (a.id < b.id ? -1 : 1) : a.createdAt < b.createdAt ? -1 : 1,
    );
  }

  /** Every alias (of one model, with `id`) with the version it points at now. */
  async aliases(id?: string): Promise<AliasRecord[]> {
    const found: AliasRecord[] = [];
    for (const key of await this.keysOf(this.aliasKv, id)) {
      const entry = await this.aliasKv.get(key);
      const record = isLive(entry) ? aliasRecord(entry) : undefined;
      if (record !== undefined) found.push(record);
    }
    return found;
  }

  /** One alias now, or undefined. */
  async getAlias(id: string, alias: string): Promise<AliasRecord | undefined> {
    const entry = await this.aliasKv.get(modelAliasKey(id, alias));
    return isLive(entry) ? aliasRecord(entry) : undefined;
  }

  /**
   * The manifest a ref names: a version is itself; an alias resolves to its version. A version
   * of that name wins over an alias (alias refuses such names, so only a race makes both).
   */
  async resolve(id: string, ref: string): Promise<VersionManifest> {
    assertId('model id', id);
    assertRegistryRef('model version or alias', ref);
    const direct = await this.getVersion(id, ref);
    if (direct !== undefined) return direct;
    const alias = await this.getAlias(id, ref);
    if (alias === undefined) {
      throw new ModelNotFoundError(
        `${id}@${ref}: the registry has no version or alias ${ref} of model ${id}`,
      );
    }
    const target = await this.getVersion(id, alias.version);
    if (target === undefined) {
      throw new ModelNotFoundError(
        `${id}@${ref}: alias ${ref} points at version ${alias.version}, which is not in the registry`,
      );
    }
    return target;
  }

  /** A version (or what an alias names) with its aliases and their histories. */
  async show(id: string, ref: string): Promise<VersionDetails> {
    const manifest = await this.resolve(id, ref);
    const all = await this.aliases(id);
    const aliases = all.filter((a) => a.version === manifest.version);
    const names = new Set(aliases.map((a) => a.alias));
    if (all.some((a) => a.alias === ref)) names.add(ref);
    const history: AliasRecord[] = [];
    for (const name of [...names].sort()) history.push(...(await this.aliasHistory(id, name)));
    return { manifest, aliases, history };
  }

  /** Points `alias` at `version` (which must exist), recording who, when and why. */
  async alias(
    id: string,
    alias: string,
    version: string,
    opts: { by?: string; reason?: string } = {},
  ): Promise<AliasRecord> {
    const key = modelAliasKey(id, alias);
    if ((await this.getVersion(id, version)) === undefined) {
      const known = (await this.list(id)).map((m) => m.version);
      throw new ModelNotFoundError(
        `${id}@${version}: no such version to point alias ${alias} at` +
          (known.length > 0 ? ` (versions of ${id}: ${known.join(', ')})` : ` (model ${id} has no versions)`),
      );
    }
    if ((await this.getVersion(id, alias)) !== undefined) {
      throw new InvalidRequestError(
        `${id}@${alias}: ${alias} is a version of ${id}; an alias needs another name`,
      );
    }
    const value = {
      version,
      by: opts.by ?? defaultActor(),
      at: new Date().toISOString(),
      reason: opts.reason ?? '',
    };
    const data = encodeAliasValue(value);
    decodeAliasValue(data, key); // the limits on by and reason, before storing
    const revision = await this.aliasKv.put(key, data);
    return { id, alias, revision, ...value };
  }

  /** Every move of one alias still in the bucket's history, oldest first. */
  async aliasHistory(id: string, alias: string): Promise<AliasRecord[]> {
    const moves: AliasRecord[] = [];
    for await (const entry of await this.aliasKv.history({ key: modelAliasKey(id, alias) })) {
      const record = entry.operation === 'PUT' ? aliasRecord(entry) : undefined;
      if (record !== undefined) moves.push(record);
    }
    return moves.sort((a, b) => a.revision - b.revision);
  }

  /**
   * Calls `onVersion` with the alias's current value, then with each move, from a KV watch (no
   * polling; the watch's ordered consumer survives reconnects).
   */
  async watchAlias(
    id: string,
    alias: string,
    onVersion: (record: AliasRecord) => void,
    onError?: (err: unknown) => void,
  ): Promise<AliasWatch> {
    const watch = await this.aliasKv.watch({ key: modelAliasKey(id, alias) });
    let stopped = false;
    void (async () => {
      for await (const entry of watch) {
        if (entry.operation !== 'PUT') continue;
        try {
          const record = aliasRecord(entry);
          if (record !== undefined) onVersion(record);
        } catch (err) {
          onError?.(err);
        }
      }
      // The watch ended without stop() (its connection closed, JetStream went away): say so,
      // so that the watcher can watch again.
      if (!stopped) onError?.(new Error(`the watch of alias ${id}@${alias} ended`));
    })().catch((err: unknown) => onError?.(err));
    return {
      stop: () => {
        stopped = true;
        watch.stop();
      },
    };
  }

  /** A version of `id` whose content has `digest`, or undefined. */
  async findByDigest(id: string, digest: string): Promise<VersionManifest | undefined> {
    if (!SHA256_HEX.test(digest))
      throw new InvalidRequestError(`digest must be 64 lowercase hex digits, got '${digest}'`);
    return (await this.list(id)).find((m) => m.digest === digest);
  }

  /**
   * Removes a version and its files. Refused while an alias points at it (naming them) or when
   * `inUseBy` (the replicas serving it, which the caller found) is not empty. Files another
   * version with the same digest shares stay.
   */
  async remove(id: string, version: string, opts: { inUseBy: readonly string[] }): Promise<VersionManifest> {
    const manifest = await this.getVersion(id, version);
    if (manifest === undefined)
      throw new ModelNotFoundError(`${id}@${version}: no such version in the registry`);
    const pointing = (await this.aliases(id)).filter((a) => a.version === version).map((a) => a.alias);
    if (pointing.length > 0) {
      throw new RegistryError(
        'in_use',
        `${id}@${version} is in use by alias${pointing.length > 1 ? 'es' : ''} ${pointing.join(', ')}: ` +
          'move them to another version first (`switchyard models alias`)',
      );
    }
    if (opts.inUseBy.length > 0) {
      throw new RegistryError(
        'in_use',
        `${id}@${version} is served by running replica${opts.inUseBy.length > 1 ? 's' : ''} ${[...opts.inUseBy].sort().join(', ')}: ` +
          'swap or stop them first',
      );
    }
    await this.versions.purge(modelVersionKey(id, version));
    if ((await this.findByDigest(id, manifest.digest)) === undefined) {
      await deleteFiles(this.objects, id, manifest.digest, manifest.files);
    }
    return manifest;
  }

  /** The bytes of one file of a version (the cache verifies them). */
  openFile(manifest: VersionManifest, file: VersionFile): Promise<ReadableStream<Uint8Array>> {
    return openFile(this.objects, manifest, file);
  }
}

function aliasRecord(entry: KvEntry): AliasRecord | undefined {
  const parts = splitModelKey(entry.key);
  if (parts === undefined) return undefined;
  const value = decodeAliasValue(entry.value, `${MODEL_ALIASES_BUCKET} ${entry.key}`);
  return { id: parts.id, alias: parts.name, revision: entry.revision, ...value };
}
