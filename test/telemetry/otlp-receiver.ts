/**
 * A tiny OTLP/HTTP trace receiver on loopback for tests: accepts `POST /v1/traces` as JSON
 * (`application/json`) or protobuf (`application/x-protobuf`, decoded by a minimal wire-format
 * reader that knows only the fields tests look at) and keeps the spans it got.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Attribute values as tests compare them (int64 as number). */
export type AttrValue = string | number | boolean;

/** One received span, flattened with its resource. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, AttrValue>;
  resource: Record<string, AttrValue>;
  events: string[];
  /** The same events with their attributes. */
  eventDetails: { name: string; attributes: Record<string, AttrValue> }[];
}

/** OTLP SpanKind numbers. */
export const OTLP_KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;

// ---- JSON (OTLP/JSON: ids are hex strings, enums numbers) ----

interface JsonKeyValue {
  key: string;
  value?: { stringValue?: string; boolValue?: boolean; intValue?: number | string; doubleValue?: number };
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: JsonKeyValue[];
  events?: { name: string; attributes?: JsonKeyValue[] }[];
}
interface JsonRequest {
  resourceSpans?: {
    resource?: { attributes?: JsonKeyValue[] };
    scopeSpans?: { spans?: JsonSpan[] }[];
  }[];
}

function jsonAttributes(list: JsonKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const { key, value } of list ?? []) {
    const v = value?.stringValue ?? value?.boolValue ?? value?.doubleValue ?? value?.intValue;
    if (v !== undefined) out[key] = typeof v === 'string' && value?.intValue !== undefined ? Number(v) : v;
  }
  return out;
}

function decodeJson(body: Buffer): ReceivedSpan[] {
  const req = JSON.parse(body.toString('utf8')) as JsonRequest;
  return (req.resourceSpans ?? []).flatMap((rs) => {
    const resource = jsonAttributes(rs.resource?.attributes);
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? '',
        name: s.name,
        kind: s.kind,
        attributes: jsonAttributes(s.attributes),
        resource,
        events: (s.events ?? []).map((e) => e.name),
        eventDetails: (s.events ?? []).map((e) => ({
          name: e.name,
          attributes: jsonAttributes(e.attributes),
        })),
      })),
    );
  });
}

// ---- protobuf (just enough of the wire format for ExportTraceServiceRequest) ----

type Field = { no: number; varint?: bigint; bytes?: Buffer };

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const byte = buf[pos++];
    if (byte === undefined) throw new Error('truncated varint');
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, next] = readVarint(buf, pos);
    pos = next;
    const no = Number(tag >> 3n);
    switch (Number(tag & 7n)) {
      case 0: {
        const [v, after] = readVarint(buf, pos);
        out.push({ no, varint: v });
        pos = after;
        break;
      }
      case 1:
        out.push({ no, bytes: buf.subarray(pos, pos + 8) });
        pos += 8;
        break;
      case 2: {
        const [len, after] = readVarint(buf, pos);
        out.push({ no, bytes: buf.subarray(after, after + Number(len)) });
        pos = after + Number(len);
        break;
      }
      case 5:
        out.push({ no, bytes: buf.subarray(pos, pos + 4) });
        pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type in field ${no}`);
    }
  }
  return out;
}

const sub = (fs: Field[], no: number): Buffer[] =>
  fs.filter((f) => f.no === no && f.bytes !== undefined).map((f) => f.bytes as Buffer);

function pbAttributes(list: Buffer[]): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of list) {
    const f = fields(kv);
    const key = sub(f, 1)[0]?.toString('utf8') ?? '';
    const anyValue = fields(sub(f, 2)[0] ?? Buffer.alloc(0))[0];
    if (anyValue === undefined) continue;
    if (anyValue.no === 1) out[key] = anyValue.bytes?.toString('utf8') ?? '';
    else if (anyValue.no === 2) out[key] = anyValue.varint === 1n;
    else if (anyValue.no === 3) out[key] = Number(BigInt.asIntN(64, anyValue.varint ?? 0n));
    else if (anyValue.no === 4) out[key] = anyValue.bytes?.readDoubleLE(0) ?? 0;
  }
  return out;
}

function decodeProtobuf(body: Buffer): ReceivedSpan[] {
  return sub(fields(body), 1).flatMap((rsBuf) => {
    const rs = fields(rsBuf);
    const resource = pbAttributes(sub(fields(sub(rs, 1)[0] ?? Buffer.alloc(0)), 1));
    return sub(rs, 2).flatMap((ssBuf) =>
      sub(fields(ssBuf), 2).map((spanBuf) => {
        const s = fields(spanBuf);
        return {
          traceId: sub(s, 1)[0]?.toString('hex') ?? '',
          spanId: sub(s, 2)[0]?.toString('hex') ?? '',
          parentSpanId: sub(s, 4)[0]?.toString('hex') ?? '',
          name: sub(s, 5)[0]?.toString('utf8') ?? '',
          kind: Number(s.find((f) => f.no === 6)?.varint ?? 0n),
          attributes: pbAttributes(sub(s, 9)),
          resource,
          events: sub(s, 11).map((e) => sub(fields(e), 2)[0]?.toString('utf8') ?? ''),
          eventDetails: sub(s, 11).map((e) => ({
            name: sub(fields(e), 2)[0]?.toString('utf8') ?? '',
            attributes: pbAttributes(sub(fields(e), 3)),
          })),
        };
      }),
    );
  });
}

// ---- the server ----

/** A running receiver. */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Content types of the export requests received, in order. */
  readonly contentTypes: string[] = [];
  private readonly server: Server;
  private waiters: (() => void)[] = [];

  private constructor(server: Server) {
    this.server = server;
  }

  /** Starts a receiver on a free port of 127.0.0.1. */
  static async start(): Promise<OtlpReceiver> {
    const receiver = new OtlpReceiver(createServer((req, res) => receiver.handle(req, res)));
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  /** `http://127.0.0.1:<port>`, the value for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resolves once at least `count` spans arrived; rejects after `timeoutMs`. */
  async waitForSpans(count: number, timeoutMs = 10_000): Promise<ReceivedSpan[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.spans.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${count} spans, got ${this.spans.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.spans;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      try {
        const body = Buffer.concat(chunks);
        const spans = type === 'application/json' ? decodeJson(body) : decodeProtobuf(body);
        this.contentTypes.push(type);
        this.spans.push(...spans);
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(err));
        return;
      }
      if (type === 'application/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    });
  }
}
