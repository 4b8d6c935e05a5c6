/**
 * Hostile traffic for the chaos suite: messages a compromised or buggy program publishes straight
 * onto the cluster's subjects (malformed JSON, wrong types, forged headers, oversized bodies,
 * cancels of others' requests, fake heartbeats, replies onto others' inboxes). Each attack is
 * classified against the role's allow-lists of `src/cluster/permissions.ts`: what they permit
 * must be survived by validation (an error reply where the protocol has one), what they forbid
 * must be refused by nats-server (a permissions violation on the sender's connection).
 */
import { connect as tcpConnect } from 'node:net';
import { readFileSync } from 'node:fs';
import { PermissionViolationError, createInbox, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import { fromSeed } from '@nats-io/nkeys';
import { connectNats } from '../src/cluster/connection.ts';
import { HEADERS, getKind, newHeaders } from '../src/cluster/headers.ts';
import type { PermissionContext, PermissionRole } from '../src/cluster/permissions.ts';
import { rolePermissions } from '../src/cluster/permissions.ts';

/** nats-server's default max_payload (the suite's servers set none): 1 MiB. */
export const NATS_MAX_PAYLOAD_BYTES = 1_048_576;
/** How long the server's asynchronous -ERR of a refused publish, or a reply, may take. */
export const HOSTILE_REPLY_TIMEOUT_MS = 5_000;
/**
 * How long a valid hostile request may take to end: it queues behind the load (the full profile
 * keeps every replica busy), so far longer than an error reply.
 */
export const HOSTILE_STREAM_END_TIMEOUT_MS = 20_000;
/** How long a raw TCP connection waits for the server's verdict on an oversized publish. */
const RAW_VERDICT_TIMEOUT_MS = 5_000;

/** One message of an attack. */
export interface HostileMessage {
  /** What it is, for the report (e.g. "malformed JSON"). */
  label: string;
  subject: string;
  data: Uint8Array | string;
  headers?: MsgHdrs;
  /**
   * What the protocol answers on the reply subject: `error` (an error message, e.g.
   * invalid_request), `end-or-error` (any end of a stream), `any` (a single plain reply such as a
   * fault command's `{ok:false}` or a cancel's empty ack), or `none` (no reply subject is sent).
   */
  expect: 'error' | 'end-or-error' | 'any' | 'none';
  /** A check on a plain reply's body (`any`), e.g. a refused fault command says ok: false. */
  replyOk?: (body: string) => boolean;
}

/** An attack class: several messages sent with one role's credential. */
export interface Attack {
  name: string;
  messages: HostileMessage[];
}

/** What happened to one message. */
export interface MessageOutcome {
  message: HostileMessage;
  permitted: boolean;
  /** The server refused the publish (permissions violation). */
  refused: boolean;
  /** The reply seen: a stream kind with its error code, or a plain body; undefined when none. */
  reply?: string;
  ok: boolean;
}

/** True when NATS subject `subject` matches the permission pattern `pattern` (`*`, `>`). */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(' ')[0]!.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

/** Whether `role`/`id` may publish to `subject` per the permission table (undefined: no table). */
export function mayPublish(
  role: PermissionRole | undefined,
  id: string,
  subject: string,
  ctx: PermissionContext,
): boolean {
  if (role === undefined) return true;
  return rolePermissions(role, id, ctx).publish.some((p) => subjectMatches(p, subject));
}

/** One hostile connection: publishes attacks and collects the server's refusals. */
export class HostileSender {
  private readonly refusals = new Map<string, number>();
  private readonly watching: Promise<void>;

  private constructor(
    readonly nc: NatsConnection,
    readonly role: PermissionRole | undefined,
    readonly id: string,
    private readonly ctx: PermissionContext,
    private readonly inboxPrefix: string | ((subject: string) => string),
  ) {
    this.watching = (async () => {
      for await (const s of nc.status()) {
        if (
          s.type === 'error' &&
          s.error instanceof PermissionViolationError &&
          s.error.operation === 'publish'
        ) {
          this.refusals.set(s.error.subject, (this.refusals.get(s.error.subject) ?? 0) + 1);
        }
      }
    })();
  }

  /** Connects as `role`/`id` (role undefined: an insecure cluster, no table to check against). */
  static async connect(opts: {
    servers: string[];
    role: PermissionRole | undefined;
    id: string;
    seedFile?: string;
    /** The sender's inbox prefix, or one per target subject (where the responder may publish). */
    inboxPrefix: string | ((subject: string) => string);
    ctx: PermissionContext;
  }): Promise<HostileSender> {
    const nc = await connectNats({
      servers: opts.servers,
      ...(typeof opts.inboxPrefix === 'string' ? { inboxPrefix: opts.inboxPrefix } : {}),
      name: `hostile-${opts.role ?? 'anyone'}-${opts.id}`,
      ...(opts.seedFile === undefined ? {} : { nkeySeedFile: opts.seedFile }),
    });
    return new HostileSender(nc, opts.role, opts.id, opts.ctx, opts.inboxPrefix);
  }

  /** Sends every message of `attack` and waits for each one's verdict (refusal or reply). */
  async send(attack: Attack): Promise<MessageOutcome[]> {
    const before = new Map(attack.messages.map((m) => [m.subject, this.refusals.get(m.subject) ?? 0]));
    const outcomes = await Promise.all(attack.messages.map((m) => this.sendOne(m)));
    // nats-server sends one -ERR per refused PUB: every forbidden message must have its own.
    const wanted = new Map<string, number>();
    for (const o of outcomes)
      if (!o.permitted) wanted.set(o.message.subject, (wanted.get(o.message.subject) ?? 0) + 1);
    const short = (): string[] =>
      [...wanted].filter(([s, n]) => (this.refusals.get(s) ?? 0) - (before.get(s) ?? 0) < n).map(([s]) => s);
    const deadline = Date.now() + HOSTILE_REPLY_TIMEOUT_MS;
    while (short().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const missing = new Set(short());
    return outcomes.map((o) => (!o.permitted && missing.has(o.message.subject) ? { ...o, ok: false } : o));
  }

  private async sendOne(message: HostileMessage): Promise<MessageOutcome> {
    const permitted = mayPublish(this.role, this.id, message.subject, this.ctx);
    const before = this.refusals.get(message.subject) ?? 0;
    let reply: Promise<string | undefined> = Promise.resolve(undefined);
    let inbox: string | undefined;
    if (message.expect !== 'none') {
      inbox = createInbox(
        typeof this.inboxPrefix === 'string' ? this.inboxPrefix : this.inboxPrefix(message.subject),
      );
      const sub = this.nc.subscribe(inbox);
      reply = (async () => {
        const timer = setTimeout(
          () => sub.unsubscribe(),
          message.expect === 'end-or-error' ? HOSTILE_STREAM_END_TIMEOUT_MS : HOSTILE_REPLY_TIMEOUT_MS,
        );
        try {
          for await (const m of sub) {
            const kind = getKind(m.headers);
            if (kind === 'ack' || kind === 'chunk' || kind === 'keepalive') {
              if (message.expect === 'end-or-error') continue;
            }
            if (kind !== undefined) {
              const code = m.headers?.get(HEADERS.errorCode);
              return code ? `${kind} ${code}` : kind;
            }
            if (m.headers?.hasError) return `status ${m.headers.code}`;
            return `body ${m.string().slice(0, 120)}`;
          }
          return undefined;
        } finally {
          clearTimeout(timer);
          sub.unsubscribe();
        }
      })();
      await this.nc.flush();
    }
    this.nc.publish(message.subject, message.data, {
      ...(message.headers === undefined ? {} : { headers: message.headers }),
      ...(inbox === undefined ? {} : { reply: inbox }),
    });
    await this.nc.flush();
    const deadline = Date.now() + HOSTILE_REPLY_TIMEOUT_MS;
    const refusedNow = (): boolean => (this.refusals.get(message.subject) ?? 0) > before;
    if (!permitted) {
      while (!refusedNow() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    }
    const got = permitted ? await reply : undefined;
    const refused = refusedNow();
    let ok: boolean;
    if (!permitted) ok = refused;
    else if (refused) ok = false;
    else if (message.expect === 'none') ok = true;
    else if (message.expect === 'error') ok = got?.startsWith('error ') === true;
    else if (message.expect === 'end-or-error') ok = got === 'end' || got?.startsWith('error ') === true;
    else
      ok = got !== undefined && (message.replyOk === undefined || message.replyOk(got.replace(/^body /, '')));
    return { message, permitted, refused, ...(got === undefined ? {} : { reply: got }), ok };
  }

  async close(): Promise<void> {
    await this.nc.close();
    await this.watching;
  }
}

/**
 * Announces a publish of `bytes` over a raw TCP connection (nats.js checks max_payload itself and
 * would never send it) once the server has accepted the connection, and returns the server's
 * verdict: nats-server checks the size on the PUB line, before any payload, and answers -ERR.
 */
export function rawOversizedPublish(
  url: string,
  seedFile: string | undefined,
  subject: string,
  bytes: number,
): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = tcpConnect(Number(port), hostname);
    let buffer = '';
    let stage: 'info' | 'pong' | 'verdict' = 'info';
    const finish = (verdict: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(verdict);
    };
    const timer = setTimeout(
      () => finish(`no verdict within ${RAW_VERDICT_TIMEOUT_MS} ms`),
      RAW_VERDICT_TIMEOUT_MS,
    );
    socket.on('error', (err) => finish(/-ERR[^\r\n]*/.exec(buffer)?.[0] ?? `socket error ${err.message}`));
    socket.on('close', () => finish(/-ERR[^\r\n]*/.exec(buffer)?.[0] ?? 'closed without a verdict'));
    socket.on('data', (d: Buffer) => {
      buffer += d.toString('latin1');
      if (stage === 'info' && buffer.startsWith('INFO ') && buffer.includes('\r\n')) {
        const info = JSON.parse(buffer.slice(5, buffer.indexOf('\r\n'))) as { nonce?: string };
        const connect: Record<string, unknown> = {
          verbose: false,
          pedantic: false,
          protocol: 1,
          headers: true,
          name: 'hostile-raw',
        };
        if (seedFile !== undefined && info.nonce !== undefined) {
          const kp = fromSeed(new TextEncoder().encode(readFileSync(seedFile, 'utf8').trim()));
          connect.nkey = kp.getPublicKey();
          connect.sig = Buffer.from(kp.sign(new TextEncoder().encode(info.nonce))).toString('base64url');
        }
        buffer = '';
        stage = 'pong';
        socket.write(`CONNECT ${JSON.stringify(connect)}\r\nPING\r\n`);
      } else if (stage === 'pong' && buffer.includes('PONG')) {
        buffer = '';
        stage = 'verdict';
        socket.write(`PUB ${subject} ${bytes}\r\n`);
      } else if (buffer.includes('-ERR')) {
        const err = /-ERR[^\r\n]*/.exec(buffer)?.[0] ?? '-ERR';
        finish(stage === 'verdict' ? err : `refused before the publish: ${err}`);
      }
    });
  });
}

/** A header set with one forged value (and the rest of a valid request's). */
export function forged(values: Record<string, string>): MsgHdrs {
  const h = newHeaders();
  for (const [k, v] of Object.entries(values)) h.set(k, v);
  return h;
}
