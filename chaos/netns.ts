/**
 * Network namespaces for the NATS nodes of a chaos run, so that links can fail for real: each
 * node lives in its own namespace with two veth links, a client link to the host (actors and load
 * clients connect through it) and a cluster link into a bridge that lives in a namespace of its
 * own (routes go through it). Setting a link down, or capping it with tbf, is then a fault the
 * kernel applies, and that can be read back.
 *
 * Addresses are 10.A.B.0/24 with A.B derived from the pid, so parallel runs do not collide:
 * node i's client link is the /30 at 10.A.B.4i (host .4i+1, node .4i+2), its cluster address
 * 10.A.B.(129+i) in 10.A.B.128/25, which only the namespaces see. Nothing listens on the host
 * side. destroy() deletes every namespace (which deletes their veths); it also runs at process
 * exit, and a new fabric first removes the namespaces of runs whose process is gone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Every namespace this module makes starts with this, then the owner's pid. */
const NS_PREFIX = 'sychaos';
/** Client and route ports inside each node's namespace (each namespace has its own ports). */
export const NETNS_CLIENT_PORT = 4222;
export const NETNS_CLUSTER_PORT = 6222;
/** Node-side interface names (namespaces have their own interface names too). */
const NODE_CLIENT_IF = 'cl0';
const NODE_CLUSTER_IF = 'rt0';
const BRIDGE_IF = 'br0';
/** The most nodes one /24 fits: 32 client /30s in 10.A.B.0/25. */
const MAX_NODES = 32;

/** Why network namespaces cannot be used here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (!['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].some((p) => existsSync(p)))
    return 'the `ip` command (iproute2) is missing';
  return undefined;
}

/** Raised when an `ip`/`tc` command fails: the command and its stderr. */
export class NetnsError extends Error {
  constructor(command: string[], cause: unknown) {
    const stderr = (cause as { stderr?: Buffer }).stderr?.toString('utf8').trim();
    super(`\`${command.join(' ')}\` failed: ${stderr || String(cause)}`, { cause });
    this.name = 'NetnsError';
  }
}

/** Runs a command and returns its stdout; throws {@link NetnsError} with its stderr. */
export function sh(command: string[]): string {
  const [bin, ...args] = command;
  try {
    return execFileSync(bin!, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8');
  } catch (err) {
    throw new NetnsError(command, err);
  }
}

/** Which link of a node. */
export type LinkKind = 'client' | 'cluster';

/** One node's namespace and addresses. */
export interface NetnsNode {
  /** Namespace name (`ip netns exec <ns> …`). */
  ns: string;
  /** Where the node's clients connect (its end of the client link). */
  clientAddress: string;
  /** Where the other nodes' routes connect. */
  clusterAddress: string;
  /** Host end of the client link. */
  hostIf: string;
}

function nsAlive(name: string): boolean {
  const pid = Number(/^sychaos(\d+)-/.exec(name)?.[1]);
  if (!Number.isSafeInteger(pid)) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function listNamespaces(): string[] {
  return sh(['ip', 'netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(NS_PREFIX));
}

/** The namespaces, veths and bridge of one run. */
export class NetnsFabric {
  private destroyed = false;
  private readonly onExit = (): void => this.destroy();

  private constructor(
    readonly nodes: NetnsNode[],
    readonly bridgeNs: string,
    private readonly namespaces: string[],
  ) {}

  /** Makes `size` node namespaces linked to the host and to one bridge; undone on any failure. */
  static create(size: number): NetnsFabric {
    const why = netnsUnavailable();
    if (why !== undefined) throw new Error(`cannot put NATS nodes in network namespaces: ${why}`);
    if (size < 1 || size > MAX_NODES)
      throw new RangeError(`netns fabric: 1..${MAX_NODES} nodes, got ${size}`);
    // Left over by runs that died without their exit hook (SIGKILL): remove them.
    for (const stale of listNamespaces().filter((n) => !nsAlive(n))) sh(['ip', 'netns', 'del', stale]);
    const pid = process.pid;
    const net = `10.${100 + ((pid >> 8) % 100)}.${pid % 256}`;
    const taken = sh(['ip', 'route', 'show']);
    if (taken.includes(`${net}.`))
      throw new Error(`netns fabric: ${net}.0/24 is already routed on this host:\n${taken}`);
    const tag = `${NS_PREFIX}${pid}`;
    const ifTag = pid.toString(36);
    const bridgeNs = `${tag}-br`;
    const namespaces = [bridgeNs];
    const fabric = new NetnsFabric([], bridgeNs, namespaces);
    process.once('exit', fabric.onExit);
    try {
      sh(['ip', 'netns', 'add', bridgeNs]);
      const inBridge = (...a: string[]): string => sh(['ip', '-n', bridgeNs, ...a]);
      inBridge('link', 'add', BRIDGE_IF, 'type', 'bridge');
      inBridge('link', 'set', BRIDGE_IF, 'up');
      for (let i = 0; i < size; i++) {
        const ns = `${tag}-n${i + 1}`;
        namespaces.push(ns);
        sh(['ip', 'netns', 'add', ns]);
        const inNode = (...a: string[]): string => sh(['ip', '-n', ns, ...a]);
        inNode('link', 'set', 'lo', 'up');
        // Client link: created on the host, one end moved into the node.
        const hostIf = `sy${ifTag}c${i + 1}`;
        sh(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', NODE_CLIENT_IF, 'netns', ns]);
        const hostAddress = `${net}.${4 * i + 1}`;
        const clientAddress = `${net}.${4 * i + 2}`;
        sh(['ip', 'addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
        sh(['ip', 'link', 'set', hostIf, 'up']);
        inNode('addr', 'add', `${clientAddress}/30`, 'dev', NODE_CLIENT_IF);
        inNode('link', 'set', NODE_CLIENT_IF, 'up');
        // Cluster link: created in the node, its peer moved into the bridge's namespace.
        const portIf = `p${i + 1}`;
        inNode('link', 'add', NODE_CLUSTER_IF, 'type', 'veth', 'peer', 'name', portIf, 'netns', bridgeNs);
        inBridge('link', 'set', portIf, 'master', BRIDGE_IF);
        inBridge('link', 'set', portIf, 'up');
        const clusterAddress = `${net}.${129 + i}`;
        inNode('addr', 'add', `${clusterAddress}/25`, 'dev', NODE_CLUSTER_IF);
        inNode('link', 'set', NODE_CLUSTER_IF, 'up');
        fabric.nodes.push({ ns, clientAddress, clusterAddress, hostIf });
      }
      return fabric;
    } catch (err) {
      fabric.destroy();
      throw err;
    }
  }

  private node(i: number): NetnsNode {
    const node = this.nodes[i];
    if (node === undefined) throw new RangeError(`netns fabric: no node ${i} (${this.nodes.length} nodes)`);
    return node;
  }

  /** The node-side interface of a link (the end a partition sets down). */
  private nodeIf(kind: LinkKind): string {
    return kind === 'client' ? NODE_CLIENT_IF : NODE_CLUSTER_IF;
  }

  /**
   * Sets node i's end of a link down or up. Down is a silent partition: the peer keeps its
   * address and routes (carrier lost), so packets are dropped, not refused.
   */
  setLink(i: number, kind: LinkKind, up: boolean): void {
    sh(['ip', '-n', this.node(i).ns, 'link', 'set', this.nodeIf(kind), up ? 'up' : 'down']);
  }

  /** The kernel's operational state of node i's end of a link (`UP`, `DOWN`, …), read back. */
  linkState(i: number, kind: LinkKind): string {
    const out = sh(['ip', '-n', this.node(i).ns, '-o', 'link', 'show', 'dev', this.nodeIf(kind)]);
    return / state (\S+)/.exec(out)?.[1] ?? 'UNKNOWN';
  }

  /** Caps what node i sends to its clients with a tbf qdisc (`rate` e.g. `64kbit`, `burst` `4kb`, `latency` `200ms`). */
  capClientLink(i: number, cap: { rate: string; burst: string; latency: string }): void {
    sh([
      ...this.execPrefix(i),
      'tc',
      'qdisc',
      'add',
      'dev',
      NODE_CLIENT_IF,
      'root',
      'tbf',
      'rate',
      cap.rate,
      'burst',
      cap.burst,
      'latency',
      cap.latency,
    ]);
  }

  /** Removes the cap of {@link capClientLink}. */
  uncapClientLink(i: number): void {
    sh([...this.execPrefix(i), 'tc', 'qdisc', 'del', 'dev', NODE_CLIENT_IF, 'root']);
  }

  /** `tc qdisc show` of node i's client link, to verify a cap. */
  clientQdisc(i: number): string {
    return sh(['ip', 'netns', 'exec', this.node(i).ns, 'tc', 'qdisc', 'show', 'dev', NODE_CLIENT_IF]);
  }

  /** The argv prefix that runs a command inside node i's namespace (the command keeps the pid). */
  execPrefix(i: number): string[] {
    return ['ip', 'netns', 'exec', this.node(i).ns];
  }

  /** Deletes every namespace (their veths and the bridge go with them). Idempotent. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.removeListener('exit', this.onExit);
    for (const ns of this.namespaces.reverse()) {
      try {
        sh(['ip', 'netns', 'del', ns]);
      } catch {
        // Never made (a failed create), or already gone.
      }
    }
  }
}
