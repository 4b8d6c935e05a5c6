/**
 * `switchyard up`: a whole single-machine cluster in one command. Every actor is its own process
 * (as in production), started in dependency order: nats-server (unless `--nats`), routers,
 * replicas in parallel, then the HTTP bridge, so that its first request finds a cluster to serve
 * it. Ctrl-C stops it in the reverse order, so that requests in flight drain: the bridge stops
 * taking HTTP requests and finishes its own, routers finish what they own while the replicas
 * still serve, then replicas, then NATS.
 * Once it was ready, every child is supervised (supervisor.ts): an exit that `up` did not ask for
 * is logged, counted and restarted with backoff under the same id, ports and arguments, while the
 * rest keep running (a cluster is built to lose a replica); only `up`'s own stop ends children
 * for good. A child that fails its first start stops the whole cluster instead, because a cluster
 * that is not what was asked for should not pretend to be up. Every child, nats-server included,
 * dies with `up` even when `up` is killed outright (parent-death.ts).
 */
import { createAuthenticator } from '../bridge/auth.ts';
import {
  CONNECTION_ENV,
  compileConnectionOptions,
  redactUrl,
  type ConnectionOptions,
} from '../cluster/connection.ts';
import { GENERATE_SUBJECT } from '../cluster/subjects.ts';
import { DEFAULT_CACHE_BUCKET } from '../bridge/cache.ts';
import { DEFAULT_RATE_LIMIT_BUCKET } from '../bridge/rate-limit-options.ts';
import { resolveBridgeConfig, resolveUpConfig, type Resolved, type UpPlan } from '../config/actors.ts';
import { newActorId } from '../config/checks.ts';
import { subcommandHelp } from '../config/help.ts';
import { UP_TABLE } from '../config/up-table.ts';
import { RegistryError, StartupError, toSwitchyardError } from '../errors/errors.ts';
import { connectNats } from '../cluster/connection.ts';
import { Registry } from '../registry/registry.ts';
import { isRegistryUrl, registryUrl } from '../registry/source.ts';
import { metricsUrl } from '../telemetry/metrics-address.ts';
import { say } from './actor.ts';
import { ActorProcess, describeExit, type ChildSpec } from './children.ts';
import { CredentialStore, type Credential } from './nats-credentials.ts';
import { announceLocalUp } from './local-up.ts';
import { freePort, startLocalNatsServer, type LocalAuth, type LocalNatsServer } from './nats-server.ts';
import { parentDeathSignalProblem } from './parent-death.ts';
import { checkPortFree } from './port-check.ts';
import { checkModelDir, displayPath } from './preflight.ts';
import { describeEvent, Supervisor } from './supervisor.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PermissionRole } from '../cluster/permissions.ts';

/** How long a child may drain after SIGTERM before it is killed (above the default drain grace of 10 s). */
export const CHILD_STOP_TIMEOUT_MS = 30_000;

/**
 * The auth of `up --insecure`'s local nats-server: none, or the one shared user/password or token
 * it was given (every actor the same identity, every permission).
 */
function insecureAuth(nats: ConnectionOptions): LocalAuth {
  const needsRemote = ['nkeySeedFile', 'credsFile', 'tlsCaFile', 'tlsCertFile', 'tlsKeyFile'] as const;
  const given = needsRemote.filter((k) => nats[k] !== undefined);
  if (given.length > 0) {
    throw new StartupError(
      'config',
      `${given.map((k) => CONNECTION_ENV[k]).join(', ')} need --nats URL: the local nats-server that up starts ` +
        'can only be set up with a user and password or a token',
    );
  }
  if (nats.user !== undefined && nats.pass !== undefined)
    return { kind: 'user', user: nats.user, pass: nats.pass };
  if (nats.token !== undefined) return { kind: 'token', token: nats.token };
  return { kind: 'none' };
}

/**
 * Refuses the shared-identity flags for a secured local server: one user for every actor is
 * exactly what per-role permissions replace (DESIGN.md invariant 7).
 */
function checkSecureLocal(nats: ConnectionOptions): void {
  const shared = (
    [
      ['user', '--nats-user'],
      ['pass', '--nats-password'],
      ['token', '--nats-token'],
    ] as const
  ).filter(([k]) => nats[k] !== undefined);
  if (shared.length === 0) {
    insecureAuth(nats); // nkey, creds and TLS files need --nats URL either way
    return;
  }
  const flags = shared.map(([k, flag]) => `${flag} (${CONNECTION_ENV[k]})`).join(', ');
  throw new StartupError(
    'config',
    `${flags} would give every actor one shared NATS identity; up now gives each actor its own ` +
      "credential with its role's permissions and writes a client credential for programs. " +
      'Leave them out, give --nats URL of your own server, or add --insecure to run as before',
  );
}

/** The KV buckets bridges use (from the same config file and environment the bridge reads). */
function bridgeBuckets(configFile: string | undefined): string[] {
  const r = resolveBridgeConfig({ argv: configFile === undefined ? [] : ['--config', configFile] });
  const cache = r.help ? undefined : r.settings.cache.bucket;
  const limits = r.help ? undefined : r.settings.rateLimit.bucket;
  return [...new Set([cache ?? DEFAULT_CACHE_BUCKET, limits ?? DEFAULT_RATE_LIMIT_BUCKET])];
}

/** The NATS connection as environment variables: children resolve them like any other actor. */
function natsEnvironment(nats: ConnectionOptions, url: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { [CONNECTION_ENV.servers]: url };
  for (const key of Object.keys(CONNECTION_ENV) as (keyof typeof CONNECTION_ENV)[]) {
    const value = nats[key];
    if (key !== 'servers' && typeof value === 'string') env[CONNECTION_ENV[key]] = value;
  }
  return env;
}

/** What the summary says is served over HTTP. */
export const HTTP_ROUTES_TEXT = 'OpenAI-compatible: /v1/completions, /v1/chat/completions; web page: /';

/**
 * The bridge's own flags: where it listens, always (they win over a config file's `bridge`
 * section, like every child's placement), and its keys and cache when `up` was given them.
 */
function bridgeArgs(resolved: Resolved<UpPlan> & { help: false }): string[] {
  const plan = resolved.settings;
  const args = ['--host', plan.host, '--port', String(plan.port)];
  if (plan.keysFile !== undefined) args.push('--keys-file', plan.keysFile);
  if (plan.allowedHosts !== undefined && plan.allowedHosts.length > 0) {
    args.push('--allowed-hosts', plan.allowedHosts.join(','));
  }
  if (resolved.sources.get('cache')?.kind !== 'default') args.push(`--cache=${String(plan.cache)}`);
  return args;
}

/** The routers' capture flags, from `up`'s (the same flags: `up --capture-sample 0.1`). */
function captureArgs(plan: UpPlan): string[] {
  const c = plan.capture;
  const args = [
    `--capture=${String(c.enabled)}`,
    '--capture-sample',
    c.sample,
    `--capture-text=${String(c.text)}`,
    `--capture-redact=${String(c.redact)}`,
    '--capture-buffer-events',
    String(c.bufferEvents),
  ];
  if (c.models !== undefined && c.models.length > 0) args.push('--capture-models', c.models.join(','));
  return args;
}

/** `args` with the value of their last `--port` replaced (the bridge keeps its port across restarts). */
function withPort(args: readonly string[], port: string): string[] {
  const at = args.lastIndexOf('--port');
  return args.map((arg, i) => (i === at + 1 && at >= 0 ? port : arg));
}

/** One supervised actor. `spec` is what its next restart starts (the bridge pins its port once known). */
interface Child {
  spec: ChildSpec;
  /** `replica replica-1`, for messages. */
  readonly name: string;
  readonly supervisor: Supervisor<ActorProcess>;
  /** The run that first became ready: what the summary describes. */
  first?: ActorProcess;
}

/** A child that failed to start, with its name for the message. */
class ChildFailure extends Error {
  constructor(child: Child, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`${child.name} failed to start: ${why}`, { cause });
  }
}

class Cluster {
  private readonly plan: UpPlan;
  private readonly configFile: string | undefined;
  private readonly bridgeArgs: readonly string[];
  private nats: LocalNatsServer | undefined;
  /** The local server's credentials; undefined with `--nats` or `--insecure`. */
  private credentials: CredentialStore | undefined;
  private bridge: Child | undefined;
  private readonly routers: Child[] = [];
  private readonly replicas: Child[] = [];
  private collector: Child | undefined;
  /** Removes this up's record for local commands (see local-up.ts). */
  private unannounce: (() => void) | undefined;
  private stopReason: string | undefined;
  /** Set once the cluster is being stopped (by a signal or a failed start): exits are expected. */
  private stopping = false;
  private wake = (): void => {};
  private readonly stopRequested = new Promise<void>((resolve) => (this.wake = resolve));

  constructor(plan: UpPlan, configFile: string | undefined, bridgeArgs: readonly string[]) {
    this.plan = plan;
    this.configFile = configFile;
    this.bridgeArgs = bridgeArgs;
  }

  private get children(): Child[] {
    return [
      ...(this.bridge === undefined ? [] : [this.bridge]),
      ...this.routers,
      ...this.replicas,
      ...(this.collector === undefined ? [] : [this.collector]),
    ];
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.stopReason !== undefined) {
      say(`up: ${signal} again: killing every process now`);
      this.killNow();
      process.exit(1);
    }
    this.stopReason = signal;
    this.wake();
  };

  /** Synchronous last resort: nothing of the cluster may outlive `up`. */
  private readonly killNow = (): void => {
    for (const child of this.children) child.supervisor.killNow();
    this.nats?.killNow();
    this.removeCredentials();
  };

  private removeCredentials(): void {
    this.unannounce?.();
    this.unannounce = undefined;
    if (this.credentials !== undefined) rmSync(this.credentials.dir, { recursive: true, force: true });
  }

  /** The child's environment: the NATS URL, and its own credential on a secured local server. */
  private childEnv(base: NodeJS.ProcessEnv, role: PermissionRole, id: string): NodeJS.ProcessEnv {
    const credential = this.credentials?.issue(role, id);
    if (credential === undefined) return base;
    return { ...base, [CONNECTION_ENV.nkeySeedFile]: credential.seedFile };
  }

  async run(): Promise<number> {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('exit', this.killNow);
    const noParentDeathSignal = parentDeathSignalProblem();
    if (noParentDeathSignal !== undefined) {
      say(
        `up: warning: ${noParentDeathSignal}: if up is killed outright (SIGKILL), a local ` +
          'nats-server keeps running (the actors exit once their channel to up closes); install util-linux',
      );
    }
    let status = 0;
    try {
      await this.start();
      if (this.stopReason === undefined) await this.stopRequested;
    } catch (err) {
      if (!(err instanceof ChildFailure || err instanceof StartupError)) throw err;
      say(`up: ${err.message}`);
      status = 1;
    }
    say(
      `up: stopping${this.stopReason === undefined ? '' : ` (${this.stopReason})`}: ` +
        'the bridge drains first, then routers, then replicas, then NATS…',
    );
    if (!(await this.stop())) status = 1;
    const restarted = this.children.filter((c) => c.supervisor.restarts > 0);
    if (restarted.length > 0)
      say(`up: restarts: ${restarted.map((c) => `${c.name} ${c.supervisor.restarts}`).join(', ')}`);
    say('up: stopped');
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    return status;
  }

  /**
   * The model replicas start from: with the registry on (the default), the folder is stored as a
   * version when the registry lacks its content, `stable` is pointed at it when there is no
   * `stable` yet, and replicas follow `registry://<id>@stable` (moving the alias hot swaps them).
   */
  private async registryModel(url: string): Promise<string> {
    const plan = this.plan;
    if (!plan.registry || isRegistryUrl(plan.model)) return plan.model;
    const operator = this.credentials?.issue('operator', 'operator');
    const nc = await connectNats({
      name: 'switchyard-up',
      ...plan.nats,
      servers: url,
      ...(operator !== undefined ? { nkeySeedFile: operator.seedFile } : {}),
    }).catch((err: unknown) => {
      throw new StartupError('dependency', `the model registry: ${toSwitchyardError(err).message}`);
    });
    try {
      const registry = await Registry.open(nc, { create: true }).catch((err: unknown) => {
        throw new StartupError(
          'dependency',
          `the model registry needs JetStream on the NATS server (${toSwitchyardError(err).message}); ` +
            'enable it, or pass --registry=false to serve the folder directly',
        );
      });
      const by = 'switchyard up';
      const { manifest, created } = await registry
        .push(plan.model, { by, reuseContent: true })
        .catch((err: unknown) => {
          if (!(err instanceof RegistryError)) throw err;
          throw new StartupError(
            'config',
            `${err.message}; store the folder under another version first (switchyard models push ` +
              `${displayPath(plan.model)} --version V), or pass --registry=false`,
          );
        });
      const { id, version } = manifest;
      const stable = await registry.getAlias(id, STABLE_ALIAS);
      if (stable === undefined) {
        await registry.alias(id, STABLE_ALIAS, version, { by, reason: 'the version up started with' });
      }
      const follows =
        stable === undefined || stable.version === version ? '' : ` (it points at ${stable.version})`;
      say(
        `up: ${id}@${version} ${created ? 'stored in' : 'already in'} the model registry ` +
          `(digest ${manifest.digest.slice(0, 12)}…); replicas follow ${id}@${STABLE_ALIAS}${follows}`,
      );
      return registryUrl(id, STABLE_ALIAS);
    } finally {
      await nc.close();
    }
  }

  /** Waits for all `children` to be ready, or for Ctrl-C; a failure rejects at once. */
  private async allReady(children: Child[]): Promise<void> {
    const ready = children.map(async (c) => {
      try {
        c.first = await c.supervisor.start();
      } catch (err) {
        throw new ChildFailure(c, err);
      }
    });
    await Promise.race([Promise.all(ready), this.stopRequested]);
  }

  private async start(): Promise<void> {
    const plan = this.plan;
    let url = plan.nats.servers === undefined ? undefined : [plan.nats.servers].flat().join(',');
    if (url === undefined) {
      say('up: starting nats-server on 127.0.0.1…');
      this.nats = await startLocalNatsServer(this.localAuth());
      url = this.nats.url;
      this.watchNats(this.nats);
    }
    if (this.stopReason !== undefined) return;
    const env = { ...process.env, ...natsEnvironment(plan.nats, url) };
    const local = this.nats !== undefined;
    const common = [
      '--log-level',
      plan.logLevel,
      ...(this.configFile === undefined ? [] : ['--config', this.configFile]),
    ];
    const where =
      plan.gpuIds === undefined ? (plan.replicaDevices[0] ?? 'cpu') : plan.replicaDevices.join(',');
    say(
      `up: starting ${plan.routers} router(s), then ${plan.replicas} replica(s) of ` +
        `${displayPath(plan.model)} (${where}, ${plan.threads} thread(s) each)…`,
    );

    const model = await this.registryModel(url);
    if (this.stopReason !== undefined) return;

    if (plan.collector) {
      // First: it creates the capture streams the routers publish to.
      say('up: starting the collector…');
      const id = local ? 'collector-1' : newActorId('collector');
      this.collector = await this.spawn({
        role: 'collector',
        id,
        env: this.childEnv(env, 'collector', id),
        args: common,
      });
      await this.allReady([this.collector]);
      if (this.stopReason !== undefined) return;
    }
    for (let i = 1; i <= plan.routers; i++) {
      const id = local ? `router-${i}` : newActorId('router');
      this.routers.push(
        await this.spawn({
          role: 'router',
          id,
          env: this.childEnv(env, 'router', id),
          args: [...common, ...captureArgs(plan)],
        }),
      );
    }
    await this.allReady(this.routers);
    if (this.stopReason !== undefined) return;

    for (let i = 1; i <= plan.replicas; i++) {
      const id = local ? `replica-${i}` : newActorId('replica');
      const device = plan.replicaDevices[i - 1] ?? 'cpu';
      const args = [...common, '--model', model, '--threads', String(plan.threads)];
      if (device !== 'cpu') args.push('--device', device);
      this.replicas.push(
        await this.spawn({
          role: 'replica',
          id,
          env: this.childEnv(env, 'replica', id),
          args,
          device,
        }),
      );
    }
    await this.allReady(this.replicas);
    if (this.stopReason !== undefined) return;

    const http = await this.startBridge(env, common, local);
    if (this.stopReason !== undefined) return;
    if (local) {
      // `models` and `dataset` given no NATS flags find this cluster (and its operator credential).
      const operator = this.credentials?.issue('operator', 'operator');
      this.unannounce = announceLocalUp({
        url,
        ...(operator ? { operatorSeedFile: operator.seedFile } : {}),
      });
    }
    this.summary(url, http);
  }

  /** Starts the bridge once the cluster behind it is ready; resolves to the URL it serves. */
  private async startBridge(
    env: NodeJS.ProcessEnv,
    common: readonly string[],
    local: boolean,
  ): Promise<string | undefined> {
    const port = this.plan.port === 0 ? 'a free port' : `port ${this.plan.port}`;
    say(`up: starting the HTTP bridge on ${this.plan.host}, ${port}…`);
    const id = local ? 'bridge-1' : newActorId('bridge');
    const bridge = await this.spawn({
      role: 'bridge',
      id,
      env: this.childEnv(env, 'bridge', id),
      args: [...common, ...this.bridgeArgs],
    });
    this.bridge = bridge;
    await this.allReady([bridge]);
    const url = bridge.first?.url;
    // Asked for port 0, it picked one: a restarted bridge must serve where the summary says.
    const picked = url === undefined ? undefined : new URL(url).port;
    if (this.plan.port === 0 && picked !== undefined && picked !== '')
      bridge.spec = { ...bridge.spec, args: withPort(bridge.spec.args, picked) };
    return url;
  }

  /** A supervised child, not started yet; its ports are picked once, so a restart keeps them. */
  private async spawn(spec: Omit<ChildSpec, 'metricsPort'>): Promise<Child> {
    // The bridge serves /metrics on its own HTTP port.
    const metricsPort = this.plan.metrics && spec.role !== 'bridge' ? await freePort() : undefined;
    const args = ['--id', spec.id, ...spec.args];
    if (metricsPort !== undefined)
      args.push('--metrics-port', String(metricsPort), '--metrics-host', this.plan.metricsHost);
    const name = `${spec.role} ${spec.id}`;
    const child: Child = {
      spec: { ...spec, args, metricsPort },
      name,
      supervisor: new Supervisor(
        () => ActorProcess.start(child.spec),
        (event) => say(`up: ${describeEvent(name, event)}`),
      ),
    };
    return child;
  }

  /**
   * The local server's auth. Secured (the default): an nkey per actor, known up front because
   * local ids are fixed (`router-1`, `replica-2`, `bridge-1`; a restart keeps its id and its key),
   * plus the client and operator credentials the summary prints.
   */
  private localAuth(): LocalAuth {
    if (this.plan.insecure) {
      say(
        'up: warning: --insecure: nats-server runs without credentials or permissions; any local ' +
          'process can read every prompt and token and pose as any actor',
      );
      return insecureAuth(this.plan.nats);
    }
    const store = new CredentialStore(mkdtempSync(join(tmpdir(), 'switchyard-creds-')), {
      kvBuckets: bridgeBuckets(this.configFile),
    });
    this.credentials = store;
    for (let i = 1; i <= this.plan.routers; i++) store.issue('router', `router-${i}`);
    for (let i = 1; i <= this.plan.replicas; i++) store.issue('replica', `replica-${i}`);
    store.issue('bridge', 'bridge-1');
    store.issue('collector', 'collector-1');
    store.issue('client', 'client');
    store.issue('operator', 'operator');
    return { kind: 'nkeys', users: store.users };
  }

  private watchNats(nats: LocalNatsServer): void {
    void nats.exited.then((exit) => {
      if (this.stopping) return;
      say(
        `up: nats-server exited unexpectedly (${describeExit(exit)}; log ${nats.logFile}); ` +
          'the actors keep trying to reconnect; press Ctrl-C to stop',
      );
    });
  }

  private summary(url: string, http: string | undefined): void {
    const natsLine =
      this.nats === undefined
        ? `${redactUrl(url)} (external)`
        : `${url} (local nats-server, log ${this.nats.logFile}` +
          `${this.credentials === undefined ? '; --insecure: no credentials' : ''})`;
    const lines = ['', 'switchyard is up', `  NATS        ${natsLine}`];
    const client = this.credentials?.issue('client', 'client');
    const operator = this.credentials?.issue('operator', 'operator');
    if (client !== undefined && operator !== undefined) {
      const how = (c: Credential): string => `${c.seedFile}  (--nats-nkey-seed-file ${c.seedFile})`;
      lines.push(`  client      ${how(client)}`, `  operator    ${how(operator)}`);
    }
    lines.push(`  front door  NATS request-reply on ${GENERATE_SUBJECT} (docs/protocol.md)`);
    if (http !== undefined) {
      const detail = this.bridge?.first?.detail;
      const keys = detail === undefined ? '' : `; ${detail}`;
      lines.push(`  HTTP        ${http}  (${HTTP_ROUTES_TEXT}${keys})`);
    }
    lines.push(
      `  routers     ${this.routers.map((r) => r.spec.id).join(', ')}`,
      `  collector   ${this.collector?.spec.id ?? 'none (--collector=false)'}`,
      `  replicas    ${this.replicas.map((r) => `${r.spec.id} (${r.first?.detail ?? r.spec.device ?? 'cpu'})`).join(', ')}`,
    );
    if (this.plan.metrics) {
      const urls = this.children.map((c) =>
        c.spec.role === 'bridge'
          ? `${c.spec.id} ${String(c.first?.url)}/metrics`
          : `${c.spec.id} ${metricsUrl(this.plan.metricsHost, c.spec.metricsPort ?? 0)}`,
      );
      lines.push(`  metrics     ${urls.join(', ')}`);
    }
    lines.push('Children that exit are restarted. Press Ctrl-C to stop.', '');
    say(lines.join('\n'));
  }

  /** Stops everything in order; false when a child that was running did not exit 0. */
  private async stop(): Promise<boolean> {
    this.stopping = true;
    // A replica that dies while the bridge drains stays down: the cluster is going away.
    for (const child of this.children) child.supervisor.retire();
    const clean = [
      ...(this.bridge === undefined ? [] : [await this.stopChild(this.bridge)]),
      ...(await Promise.all(this.routers.map((r) => this.stopChild(r)))),
      ...(await Promise.all(this.replicas.map((r) => this.stopChild(r)))),
      // Last: it merges what the routers published while they drained.
      ...(this.collector === undefined ? [] : [await this.stopChild(this.collector)]),
    ];
    await this.nats?.stop();
    this.removeCredentials();
    return clean.every(Boolean);
  }

  /** Stops one child for good; reports and returns false when it was running and did not exit 0. */
  private async stopChild(child: Child): Promise<boolean> {
    const exit = await child.supervisor.stop(CHILD_STOP_TIMEOUT_MS);
    if (exit === undefined || exit.code === 0) return true;
    say(`up: ${child.name} did not stop cleanly (${describeExit(exit)})`);
    return false;
  }
}

/** Runs `up` until Ctrl-C; resolves to the exit status. */
export async function upCommand(argv: readonly string[]): Promise<number> {
  const resolved = resolveUpConfig({ argv });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(UP_TABLE));
    return 0;
  }
  const plan = resolved.settings;
  checkModelDir(plan.model, resolved.sources.get('model'));
  compileConnectionOptions(plan.nats); // contradictory credentials fail here, before anything starts
  if (plan.nats.servers === undefined) {
    if (plan.insecure) insecureAuth(plan.nats);
    else checkSecureLocal(plan.nats);
  }
  // A bad keys file or a taken HTTP port fails now, not after every model has loaded.
  if (plan.keysFile !== undefined) createAuthenticator({ keysFile: plan.keysFile });
  if (plan.port !== 0) {
    await checkPortFree(plan.host, plan.port, {
      host: resolved.sources.get('host'),
      port: resolved.sources.get('port'),
    });
  }
  return new Cluster(plan, resolved.configFile, bridgeArgs(resolved)).run();
}

/** The alias `up` starts replicas from, and points at the first version it stores. */
export const STABLE_ALIAS = 'stable';
