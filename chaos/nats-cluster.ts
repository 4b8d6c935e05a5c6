/**
 * A 3-node nats-server cluster for the chaos suite: each node on free loopback ports, routes to
 * the others, JetStream on, and the per-role nkey users `switchyard up` configures (routes carry
 * no auth: they listen on 127.0.0.1 only). Every node's config, log and store live in one temp
 * dir that stop() removes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNatsServer, freePort, probeNats } from '../src/cli/nats-server.ts';

/** How long a node may take to accept client connections. */
const NODE_READY_TIMEOUT_MS = 10_000;
/** How long stop() waits for a node's graceful exit before SIGKILL. */
const NODE_STOP_TIMEOUT_MS = 5_000;
const HOST = '127.0.0.1';
/** The cluster's name in every node's `cluster {}` block. */
const CLUSTER_NAME = 'sy-chaos';

/** One nats-server process of the cluster. */
export class NatsNode {
  readonly url: string;
  child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly port: number,
    readonly clusterPort: number,
    readonly dir: string,
    private readonly bin: string,
  ) {
    this.url = `nats://${HOST}:${port}`;
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
    const child = spawn(this.bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
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
      if (await probeNats(this.port)) return;
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
  ) {}

  /** Starts `size` routed nodes with JetStream and `authorization` (a server config block). */
  static async start(size: number, authorization: string): Promise<NatsCluster> {
    const bin = findNatsServer();
    if (bin === undefined) throw new Error('nats-server is not installed (run `node scripts/setup.mjs`)');
    const dir = mkdtempSync(join(tmpdir(), 'sy-chaos-nats-'));
    const nodes: NatsNode[] = [];
    for (let i = 1; i <= size; i++) {
      const nodeDir = join(dir, `n${i}`);
      mkdirSync(nodeDir);
      nodes.push(new NatsNode(`n${i}`, await freePort(), await freePort(), nodeDir, bin));
    }
    const cluster = new NatsCluster(nodes, dir);
    for (const node of nodes) {
      const routes = nodes
        .filter((n) => n !== node)
        .map((n) => JSON.stringify(`nats-route://${HOST}:${n.clusterPort}`));
      const config = [
        `server_name: ${JSON.stringify(node.name)}`,
        `listen: ${JSON.stringify(`${HOST}:${node.port}`)}`,
        `cluster {\n  name: ${JSON.stringify(CLUSTER_NAME)}\n  listen: ${JSON.stringify(`${HOST}:${node.clusterPort}`)}\n  routes: [${routes.join(', ')}]\n}`,
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

  /** Stops every node and removes the temp dir. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.halt()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
