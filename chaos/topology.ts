/**
 * The cluster a chaos scenario runs against, secured as `switchyard up` secures its own: a
 * 3-node NATS cluster with JetStream, routers and replicas as separate processes started through
 * the CLI, each with its own nkey and each on a different node so that traffic crosses routes.
 * Bridges serve HTTP on loopback without API keys, each on another node.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectNats } from '../src/cluster/connection.ts';
import { DEFAULT_CACHE_BUCKET } from '../src/bridge/cache.ts';
import { DEFAULT_RATE_LIMIT_BUCKET } from '../src/bridge/rate-limit-options.ts';
import { authorizationBlock } from '../src/cluster/permissions.ts';
import { CredentialStore, type Credential } from '../src/cli/nats-credentials.ts';
import { freePort } from '../src/cli/nats-server.ts';
import { DEFAULT_METRICS_HOST, metricsUrl } from '../src/telemetry/metrics-address.ts';
import { STABLE_ALIAS } from '../src/cli/up.ts';
import { Registry } from '../src/registry/registry.ts';
import { registryUrl } from '../src/registry/source.ts';
import { ActorProcess, killAll } from './actors.ts';
import { CHAOS_MODEL_VERSION_DIRS } from './paths.ts';
import { NatsCluster } from './nats-cluster.ts';

/** How many of each actor a topology runs. */
export interface TopologyShape {
  /** @default 3 */
  natsNodes: number;
  /** @default 2 */
  routers: number;
  /** @default 3 */
  replicas: number;
  /** @default 2 */
  bridges: number;
  /** Each NATS node in its own network namespace (`netns.ts`), for link faults. @default false */
  natsInNetns?: boolean;
  /**
   * No `authorization` block, as `up --insecure` runs: anyone may publish and subscribe anywhere
   * (the hostile-insecure scenario). Credentials are still issued; the server ignores them.
   */
  insecure?: boolean;
  /**
   * Replicas start from the model registry, as `switchyard up` starts them: the operator stores
   * every bundled version (`CHAOS_MODEL_VERSION_DIRS`), points `stable` at the first, and
   * replicas follow `registry://<id>@stable` (moving the alias hot swaps them), with a model
   * cache of the topology's own. Otherwise they serve the bundled folder. @default false
   */
  modelRegistry?: boolean;
}

/** Who the topology's registry writes name (the alias history says who moved what). */
export const REGISTRY_ACTOR = 'chaos topology';

/** The models a registry topology stored: what replicas follow, and every version's id. */
export interface StoredModels {
  /** The model id (the bundled model's manifest id). */
  id: string;
  /** Every version stored, in `CHAOS_MODEL_VERSION_DIRS` order (the first is what `stable` starts at). */
  versions: string[];
  /** What replicas start from: `registry://<id>@stable`. */
  url: string;
}

/**
 * Stores every bundled version in the registry with the operator credential (creating the
 * buckets with `replicas` stream replicas) and points `stable` at the first one.
 */
export async function storeModels(
  urls: string[],
  operator: Credential,
  replicas: number,
  dirs: readonly string[] = CHAOS_MODEL_VERSION_DIRS,
): Promise<StoredModels> {
  const nc = await connectNats({ servers: urls, nkeySeedFile: operator.seedFile });
  try {
    const registry = await Registry.open(nc, { create: true, replicas });
    const versions: string[] = [];
    let id: string | undefined;
    for (const dir of dirs) {
      const { manifest } = await registry.push(dir, { by: REGISTRY_ACTOR });
      if (id !== undefined && manifest.id !== id)
        throw new Error(`${dir} is model ${manifest.id}, not ${id}: one model's versions only`);
      id = manifest.id;
      versions.push(manifest.version);
    }
    if (id === undefined || versions[0] === undefined) throw new Error('no model version to store');
    await registry.alias(id, STABLE_ALIAS, versions[0], {
      by: REGISTRY_ACTOR,
      reason: 'the version the topology starts with',
    });
    return { id, versions, url: registryUrl(id, STABLE_ALIAS) };
  } finally {
    await nc.close();
  }
}

/** The full shape of issue 11. */
export const FULL_SHAPE: TopologyShape = { natsNodes: 3, routers: 2, replicas: 3, bridges: 2 };

/** The collector's id in every topology. */
export const COLLECTOR_ID = 'col1';

/**
 * How long JetStream waits for the collector's ack before redelivering (the CLI's default is
 * 30 s): after a SIGKILL its unacked messages come back within seconds, not half a minute.
 */
export const COLLECTOR_ACK_WAIT_MS = 3_000;

/** Replicas of the capture streams and the records bucket: one per JetStream node, at most 3. */
export function captureReplicas(shape: TopologyShape): number {
  return Math.min(3, shape.natsNodes);
}

/** How long the route check waits for a message to cross from the first node to the last. */
const ROUTE_CHECK_TIMEOUT_MS = 10_000;

/** How an actor of the topology was started, so that it can be started again. */
interface Launch {
  role: 'router' | 'replica' | 'bridge' | 'collector';
  id: string;
  natsUrl: string;
  env: Record<string, string>;
  /** Extra CLI arguments (a restarted bridge keeps the port it first picked). */
  args: string[];
}

/** A running topology; stop() ends every process and removes every temp dir. */
export class Topology {
  private readonly launches = new Map<ActorProcess, Launch>();
  /** Actors that exited and were started again: their logs are still part of the run's evidence. */
  readonly retired: ActorProcess[] = [];
  /**
   * Each router's /metrics URL by router id (a restarted router keeps its port), so that a
   * scenario can read the router's own verdicts: replicas declared dead, failovers by reason.
   */
  readonly routerMetrics = new Map<string, string>();
  /**
   * The collector (started before the routers, so that the capture streams exist when the first
   * event is published); `restart` puts a restarted one in its place.
   */
  readonly collectors: ActorProcess[] = [];
  /** Replicas of the capture streams and records bucket, as the collector made them. */
  captureReplicas = 1;
  /** With `shape.modelRegistry`: what the registry holds and replicas follow. */
  models: StoredModels | undefined;
  /** With `shape.modelRegistry`: the replicas' model cache (removed at stop). */
  private modelCacheDir: string | undefined;

  private constructor(
    readonly nats: NatsCluster,
    readonly credentials: CredentialStore,
    readonly client: Credential,
    readonly operator: Credential,
    readonly routers: ActorProcess[],
    readonly replicas: ActorProcess[],
    /** HTTP bridges; `url` is where each serves. */
    readonly bridges: ActorProcess[],
  ) {}

  /**
   * Starts `actor` again as it was first started (same id, node and credential) once it has
   * exited, and puts the new process in its place in `routers` / `replicas`.
   */
  async restart(actor: ActorProcess): Promise<ActorProcess> {
    const launch = this.launches.get(actor);
    if (launch === undefined) throw new Error(`${actor.role} ${actor.id} is not part of this topology`);
    await actor.exited;
    const next = await ActorProcess.start(launch.role, launch.id, launch.natsUrl, launch.args, launch.env);
    this.launches.delete(actor);
    this.launches.set(next, launch);
    this.retired.push(actor);
    for (const list of [this.routers, this.replicas, this.bridges, this.collectors]) {
      const i = list.indexOf(actor);
      if (i >= 0) list[i] = next;
    }
    return next;
  }

  /** The index in `nats.nodes` of the node `actor` was started on (its first server). */
  nodeOf(actor: ActorProcess): number {
    const launch = this.launches.get(actor);
    if (launch === undefined) throw new Error(`${actor.role} ${actor.id} is not part of this topology`);
    return this.nats.nodes.findIndex((n) => n.url === launch.natsUrl);
  }

  /** Every NATS node's client URL. */
  get natsUrls(): string[] {
    return this.nats.nodes.map((n) => n.url);
  }

  static async start(shape: TopologyShape = FULL_SHAPE): Promise<Topology> {
    const credentials = new CredentialStore(mkdtempSync(join(tmpdir(), 'sy-chaos-creds-')), {
      kvBuckets: [DEFAULT_CACHE_BUCKET, DEFAULT_RATE_LIMIT_BUCKET],
    });
    const client = credentials.issue('client', 'client');
    const operator = credentials.issue('operator', 'operator');
    const routerIds = Array.from({ length: shape.routers }, (_, i) => `rt${i + 1}`);
    const replicaIds = Array.from({ length: shape.replicas }, (_, i) => `rp${i + 1}`);
    const routerCreds = routerIds.map((id) => credentials.issue('router', id));
    const replicaCreds = replicaIds.map((id) => credentials.issue('replica', id));
    const bridgeIds = Array.from({ length: shape.bridges }, (_, i) => `br${i + 1}`);
    const bridgeCreds = bridgeIds.map((id) => credentials.issue('bridge', id));
    const collectorCred = credentials.issue('collector', COLLECTOR_ID);
    const replicasOfCapture = captureReplicas(shape);
    let nats: NatsCluster | undefined;
    const started: ActorProcess[] = [];
    const modelCacheDir =
      shape.modelRegistry === true ? mkdtempSync(join(tmpdir(), 'sy-chaos-models-')) : undefined;
    try {
      nats = await NatsCluster.start(
        shape.natsNodes,
        shape.insecure === true ? '' : authorizationBlock(credentials.users),
        { netns: shape.natsInNetns === true },
      );
      const urls = nats.nodes.map((n) => n.url);
      await checkRoutes(urls, operator);
      const url = (i: number): string => urls[i % urls.length] ?? urls[0]!;
      const env = (c: Credential): Record<string, string> => ({ SWITCHYARD_NATS_NKEY_SEED_FILE: c.seedFile });
      const launches = new Map<ActorProcess, Launch>();
      const launch = async (l: Launch): Promise<ActorProcess> => {
        const a = await ActorProcess.start(l.role, l.id, l.natsUrl, l.args, l.env);
        started.push(a);
        launches.set(a, l);
        return a;
      };
      // The collector first: it creates the capture streams the routers publish into.
      const collector = await launch({
        role: 'collector',
        id: collectorCred.id,
        natsUrl: url(shape.natsNodes - 1),
        env: env(collectorCred),
        args: [
          '--capture-replicas',
          String(replicasOfCapture),
          '--ack-wait-ms',
          String(COLLECTOR_ACK_WAIT_MS),
        ],
      });
      // The registry before any replica (they start from it), once the collector's streams show
      // that JetStream answers (a fresh cluster elects its meta leader first).
      const models =
        modelCacheDir === undefined ? undefined : await storeModels(urls, operator, replicasOfCapture);
      const replicaArgs =
        models === undefined || modelCacheDir === undefined
          ? []
          : ['--model', models.url, '--model-cache', modelCacheDir];
      const routerPorts = await Promise.all(routerCreds.map(() => freePort()));
      const routers = await Promise.all(
        routerCreds.map((c, i) =>
          launch({
            role: 'router',
            id: c.id,
            natsUrl: url(i),
            env: env(c),
            args: ['--metrics-port', String(routerPorts[i]), '--metrics-host', DEFAULT_METRICS_HOST],
          }),
        ),
      );
      // Replicas load the model one after another: on 2 cores, parallel warm-ups time out.
      const replicas: ActorProcess[] = [];
      for (const [i, c] of replicaCreds.entries()) {
        replicas.push(
          await launch({ role: 'replica', id: c.id, natsUrl: url(i), env: env(c), args: [...replicaArgs] }),
        );
      }
      // Bridges last, so that their first request finds a cluster; each on another node.
      const bridges: ActorProcess[] = [];
      for (const [i, c] of bridgeCreds.entries()) {
        const bridge = await launch({ role: 'bridge', id: c.id, natsUrl: url(i + 1), env: env(c), args: [] });
        // A restarted bridge must serve where its clients retry: pin the port it picked.
        const port = new URL(bridge.url ?? '').port;
        if (port === '') throw new Error(`bridge ${c.id} reported no URL`);
        launches.get(bridge)?.args.push('--port', port);
        bridges.push(bridge);
      }
      const topology = new Topology(nats, credentials, client, operator, routers, replicas, bridges);
      for (const [a, l] of launches) topology.launches.set(a, l);
      topology.collectors.push(collector);
      topology.captureReplicas = replicasOfCapture;
      topology.models = models;
      topology.modelCacheDir = modelCacheDir;
      for (const [i, c] of routerCreds.entries())
        topology.routerMetrics.set(c.id, metricsUrl(DEFAULT_METRICS_HOST, routerPorts[i]!));
      return topology;
    } catch (err) {
      await killAll(started);
      await nats?.stop();
      rmSync(credentials.dir, { recursive: true, force: true });
      if (modelCacheDir !== undefined) rmSync(modelCacheDir, { recursive: true, force: true });
      throw err;
    }
  }

  async stop(): Promise<void> {
    await killAll([...this.bridges, ...this.routers, ...this.replicas, ...this.collectors]);
    await this.nats.stop();
    rmSync(this.credentials.dir, { recursive: true, force: true });
    if (this.modelCacheDir !== undefined) rmSync(this.modelCacheDir, { recursive: true, force: true });
  }
}

/** The cluster formed: a message published on the first node reaches a subscriber on the last. */
export async function checkRoutes(urls: string[], operator: Credential): Promise<void> {
  const first = await connectNats({ servers: urls[0]!, nkeySeedFile: operator.seedFile });
  const last = await connectNats({ servers: urls[urls.length - 1]!, nkeySeedFile: operator.seedFile });
  try {
    const sub = last.subscribe('chaos.route-check', { max: 1 });
    await last.flush();
    const deadline = Date.now() + ROUTE_CHECK_TIMEOUT_MS;
    const got = (async () => {
      for await (const m of sub) return m.string();
      return undefined;
    })();
    // Routes may still be connecting: publish until the message crosses.
    let received: string | undefined;
    void got.then((s) => (received = s));
    while (received === undefined) {
      if (Date.now() > deadline) throw new Error('the NATS cluster did not form: no message crossed routes');
      first.publish('chaos.route-check', 'crossed');
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await Promise.all([first.close(), last.close()]);
  }
}
