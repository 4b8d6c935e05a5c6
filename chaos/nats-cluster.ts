/**
 * A 3-node nats-server cluster for the chaos suite: each node on free loopback ports, routes to
 * the others, JetStream on, and the per-role nkey users `switchyard up` configures (routes carry
 * no auth: they listen on 127.0.0.1 only). Every node's config, log and store live in one temp
 * dir that stop() removes. With `netns`, each node runs in its own network namespace
 * (`netns.ts`): clients reach it over its client veth, routes go over its cluster veth, so a
 * scenario can partition or throttle real links. Each node also serves its monitoring endpoint
 * (on the client address), which `routeCount()` reads to verify that a node rejoined.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withParentDeathSignal } from '../src/cli/parent-death.ts';
import { findNatsServer, freePort, probeNats } from '../src/cli/nats-server.ts';
import { NETNS_CLIENT_PORT, NETNS_CLUSTER_PORT, NetnsFabric } from './netns.ts';

/** How long a node may take to accept client connections. */
const NODE_READY_TIMEOUT_MS = 10_000;
/** How long stop() waits for a node's graceful exit before SIGKILL. */
const NODE_STOP_TIMEOUT_MS = 5_000;
const HOST = '127.0.0.1';
/** The cluster's name in every node's `cluster {}` block. */
const CLUSTER_NAME = 'sy-chaos';
/**
 * Server-side pings, as the actors' own budget (connection.ts): nats-server's default, 2 min × 2,
 * keeps the subscriptions of a client that vanished silently (a partitioned actor that moved to
 * another node) for minutes. Routes: with these settings 2.9.10 still kept some silently dead
 * routes past 10 s (partition-routes records the counts), so requests sent into such a route
 * are lost until the client resends them (client/stream.ts, lost sends).
 */
const SERVER_PING_INTERVAL = '2s';
const SERVER_PING_MAX = 2;
/** Cluster starts tried when a free port was taken by another process before a node bound it. */
const PORT_ATTEMPTS = 3;
/** Monitoring port inside a node's namespace. */
const NETNS_MONITOR_PORT = 8222;
/** How long a monitoring request may take (a partitioned node never answers). */
const MONITOR_TIMEOUT_MS = 1_000;

/** Where one node listens, and how it is launched (inside a namespace or not). */
export interface NodeAddress {
  /** Client address (also where monitoring listens). */
  host: string;
  port: number;
  clusterHost: string;
  clusterPort: number;
  monitorPort: number;
  /** argv prefix that runs the server (e.g. `ip netns exec <ns>`), empty on the host. */
  prefix: string[];
}

/** One nats-server process of the cluster. */
export class NatsNode {
  readonly url: string;
  child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly address: NodeAddress,
    readonly dir: string,
    private readonly bin: string,
  ) {
    this.url = `nats://${address.host}:${address.port}`;
  }

  get port(): number {
    return this.address.port;
  }

  get clusterPort(): number {
    return this.address.clusterPort;
  }

  /** Routes the node has now (its monitoring `/routez`), or undefined when it does not answer. */
  async routeCount(): Promise<number | undefined> {
    const { host, monitorPort } = this.address;
    try {
      const res = await fetch(`http://${host}:${monitorPort}/routez`, {
        signal: AbortSignal.timeout(MONITOR_TIMEOUT_MS),
      });
      const body = (await res.json()) as { num_routes?: number };
      return body.num_routes;
    } catch {
      return undefined;
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The node's log so far (for failure messages). */
  log(): string {
    try {
      return readFileSync(join(this.dir, 'nats.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async launch(): Promise<void> {
    const args = ['-c', join(this.dir, 'nats.conf'), '-l', join(this.dir, 'nats.log')];
    const [cmd, ...pre] = [...this.address.prefix, this.bin];
    // Killed by the kernel if the runner dies (SIGKILL, a crash), like `up`'s own nats-server.
    const line = withParentDeathSignal(cmd, [...pre, ...args]);
    const child = spawn(line.command, line.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    this.child = child;
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        if (this.child === child) this.child = undefined;
        resolve();
      }),
    );
    const started = Date.now();
    while (Date.now() - started < NODE_READY_TIMEOUT_MS) {
      if (this.child !== child) throw new Error(`${this.name} exited at start: ${stderr || this.log()}`);
      if (await probeNats(this.port, this.address.host)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${this.name} did not accept connections within ${NODE_READY_TIMEOUT_MS} ms`);
  }

  async halt(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), NODE_STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The cluster: start(), then `nodes[i].url` for clients, stop() to end it. */
export class NatsCluster {
  private constructor(
    readonly nodes: NatsNode[],
    readonly dir: string,
    /** The namespaces the nodes run in, when started with `netns`. */
    readonly netns?: NetnsFabric,
  ) {}

  /**
   * Starts `size` routed nodes with JetStream and `authorization` (a server config block), on
   * loopback, or with `netns` each in its own network namespace.
   */
  static async start(
    size: number,
    authorization: string,
    opts: { netns?: boolean } = {},
  ): Promise<NatsCluster> {
    // Free-port races (another process binds a port first) are retried with fresh ports.
    for (let attempt = 1; ; attempt++) {
      try {
        return await NatsCluster.startOnce(size, authorization, opts);
      } catch (err) {
        const race = err instanceof Error && err.message.includes('address already in use');
        if (!race || opts.netns === true || attempt >= PORT_ATTEMPTS) throw err;
      }
    }
  }

  private static async startOnce(
    size: number,
    authorization: string,
    opts: { netns?: boolean },
  ): Promise<NatsCluster> {
    const bin = findNatsServer();
    if (bin === undefined) throw new Error('nats-server is not installed (run `node scripts/setup.mjs`)');
    const netns = opts.netns === true ? NetnsFabric.create(size) : undefined;
    const dir = mkdtempSync(join(tmpdir(), 'sy-chaos-nats-'));
    const nodes: NatsNode[] = [];
    const picked = new Set<number>();
    const port = async (): Promise<number> => {
      for (;;) {
        const p = await freePort();
        if (!picked.has(p)) return (picked.add(p), p);
      }
    };
    for (let i = 1; i <= size; i++) {
      const nodeDir = join(dir, `n${i}`);
      mkdirSync(nodeDir);
      const ns = netns?.nodes[i - 1];
      const address: NodeAddress =
        ns === undefined || netns === undefined
          ? {
              host: HOST,
              port: await port(),
              clusterHost: HOST,
              clusterPort: await port(),
              monitorPort: await port(),
              prefix: [],
            }
          : {
              host: ns.clientAddress,
              port: NETNS_CLIENT_PORT,
              clusterHost: ns.clusterAddress,
              clusterPort: NETNS_CLUSTER_PORT,
              monitorPort: NETNS_MONITOR_PORT,
              prefix: netns.execPrefix(i - 1),
            };
      nodes.push(new NatsNode(`n${i}`, address, nodeDir, bin));
    }
    const cluster = new NatsCluster(nodes, dir, netns);
    for (const node of nodes) {
      const { host, port, clusterHost, clusterPort, monitorPort } = node.address;
      const routes = nodes
        .filter((n) => n !== node)
        .map((n) => JSON.stringify(`nats-route://${n.address.clusterHost}:${n.clusterPort}`));
      const config = [
        `server_name: ${JSON.stringify(node.name)}`,
        `listen: ${JSON.stringify(`${host}:${port}`)}`,
        `http: ${JSON.stringify(`${host}:${monitorPort}`)}`,
        `ping_interval: ${JSON.stringify(SERVER_PING_INTERVAL)}`,
        `ping_max: ${SERVER_PING_MAX}`,
        `cluster {\n  name: ${JSON.stringify(CLUSTER_NAME)}\n  listen: ${JSON.stringify(`${clusterHost}:${clusterPort}`)}\n  routes: [${routes.join(', ')}]\n}`,
        `jetstream { store_dir: ${JSON.stringify(join(node.dir, 'jetstream'))} }`,
        authorization,
      ].join('\n');
      writeFileSync(join(node.dir, 'nats.conf'), `${config}\n`);
    }
    try {
      await Promise.all(nodes.map((n) => n.launch()));
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** Stops every node, removes the temp dir and the namespaces. */
  async stop(): Promise<void> {
    try {
      await Promise.all(this.nodes.map((n) => n.halt()));
      rmSync(this.dir, { recursive: true, force: true });
    } finally {
      this.netns?.destroy();
    }
  }
}
