/**
 * Reading requests and writing JSON answers, with every limit a hostile or broken client could
 * otherwise exploit: body size (checked against Content-Length before reading, then while
 * reading), body-read time, content type, UTF-8 and JSON syntax. Each failure is a client
 * mistake with its own status (never a 5xx), raised as an {@link HttpInputError}.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { REQUEST_ID_PATTERN } from '../cluster/messages/stream.ts';
import { newRequestId } from '../client/request.ts';
import { CancelledError } from '../errors/errors.ts';
import { parseObject, type WireObject } from '../validation/fields.ts';
import { HttpInputError, toHttpError } from './http-errors.ts';

/** The request header a caller may set its request id with; echoed on every answer. */
export const REQUEST_ID_HEADER = 'x-request-id';
/** Tells an HTTP/1.1 client that the bridge closes the connection after this answer. */
const CLOSE: Readonly<Record<string, string>> = { connection: 'close' };
/** Media types accepted as JSON besides any `+json` suffix. */
const JSON_MEDIA_TYPE = 'application/json';

/** Limits of one body read. */
export interface BodyLimits {
  maxBytes: number;
  timeoutMs: number;
}

/**
 * The caller's `x-request-id` when it is a valid request id (it becomes the NATS request's
 * idempotency key, so it must fit the protocol's pattern), a fresh one when absent; a malformed
 * one is refused rather than silently replaced, so the caller's logs never name an id the
 * cluster did not use.
 */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  if (given === undefined || given === '') return newRequestId();
  if (typeof given !== 'string' || !REQUEST_ID_PATTERN.test(given)) {
    throw new HttpInputError(400, `${REQUEST_ID_HEADER} must match [A-Za-z0-9._:-]{1,128}`);
  }
  return given;
}

/**
 * Accepts `application/json` and `*+json` (charset utf-8 or none); anything else, a missing
 * content type included, is 415, so that `curl -d` without a JSON content type gets a message
 * saying what to add instead of a JSON syntax error. A missing one is refused too because a
 * browser page on another site can POST a body without a Content-Type (or with text/plain)
 * without a CORS preflight: only JSON content types make the browser ask first.
 */
export function checkJsonContentType(header: string | undefined): void {
  const unsupported = (why: string): never => {
    throw new HttpInputError(415, `${why}; send the body as JSON with 'Content-Type: application/json'`);
  };
  if (header === undefined || header.trim() === '') unsupported('the request has no Content-Type');
  const [type = '', ...params] = (header ?? '').split(';').map((p) => p.trim().toLowerCase());
  if (type !== JSON_MEDIA_TYPE && !type.endsWith('+json')) {
    unsupported(`Content-Type '${type.slice(0, 64)}' is not supported`);
  }
  for (const param of params) {
    const [name, value = ''] = param.split('=').map((s) => s.trim().replace(/^"|"$/g, ''));
    if (name === 'charset' && value !== 'utf-8' && value !== 'utf8') {
      unsupported(`charset '${value.slice(0, 32)}' is not supported (JSON bodies are UTF-8)`);
    }
  }
}

/**
 * Reads the whole body within the limits. Rejects with 413 (too large), 408 (too slow) — both
 * with `connection: close`, since the rest of the body is never read — or `CancelledError` when
 * the client goes away.
 */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limits.maxBytes) {
    return Promise.reject(tooLarge(limits.maxBytes));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err: Error | undefined): void => {
      done = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onClose);
      if (err === undefined) return resolve(Buffer.concat(chunks, size));
      // Discard what still comes until the connection closes after the answer: closing a socket
      // with unread data makes the kernel reset it, and the client might never read the 413.
      req.resume();
      reject(err);
    };
    let done = false;
    // Timers run before the event loop reads sockets: in a process lagging behind its timers
    // (overload), a body that arrived long ago would still be late. The verdict waits one turn
    // (setImmediate runs after the poll phase), so data already received is read first.
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (done) return;
          finish(
            new HttpInputError(
              408,
              `the request body did not arrive within ${limits.timeoutMs} ms; send it at once after the headers`,
              CLOSE,
            ),
          );
        }),
      limits.timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limits.maxBytes) return finish(tooLarge(limits.maxBytes));
      chunks.push(chunk);
    };
    const onEnd = (): void => finish(undefined);
    const onClose = (): void => finish(new CancelledError('the client went away while sending the body'));
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onClose);
    req.once('error', onClose);
  });
}

function tooLarge(maxBytes: number): HttpInputError {
  return new HttpInputError(413, `the request body is larger than the limit of ${maxBytes} bytes`, CLOSE);
}

/** Reads and parses a JSON object body (content type, size, time, UTF-8, syntax, top-level object). */
export async function readJsonObject(req: IncomingMessage, limits: BodyLimits): Promise<WireObject> {
  checkJsonContentType(req.headers['content-type']);
  const body = await readBody(req, limits);
  return parseObject(body, 'request');
}

/** Writes a complete JSON answer (with Content-Length, so keep-alive clients need no chunking). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(data),
  });
  res.end(data);
}

/** Writes a plain-text answer (health probes, metrics). */
export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    ...headers,
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Answers with the error's status, headers and OpenAI error body; returns the status. */
export function sendError(
  res: ServerResponse,
  err: unknown,
  requestId: string,
  headers: Readonly<Record<string, string>> = {},
): number {
  const answer = toHttpError(err, requestId);
  sendJson(res, answer.status, answer.body, { ...headers, ...answer.headers });
  return answer.status;
}
