import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { readBody } from '../../src/bridge/http-io.ts';
import { HttpInputError } from '../../src/bridge/http-errors.ts';

/** Body timeout of the test server, and how long its handler then blocks the event loop. */
const BODY_TIMEOUT_MS = 50;
const BLOCK_MS = 300;
/** The client sends the body this long after the headers: inside the timeout, during the block. */
const BODY_DELAY_MS = 20;

function blockEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // A process lagging behind its timers, as an overloaded bridge does.
  }
}

describe('readBody under event-loop lag', () => {
  let server: Server;
  let port = 0;
  before(async () => {
    server = createServer((req, res) => {
      const body = readBody(req, { maxBytes: 1_000, timeoutMs: BODY_TIMEOUT_MS });
      blockEventLoop(BLOCK_MS);
      body.then(
        (b) => res.end(`body ${b.toString()}`),
        (err: unknown) => res.end(`error ${err instanceof HttpInputError ? err.status : String(err)}`),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('reads a body that arrived in time even when its timer fires late (no 408)', async () => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    await new Promise<void>((r) => socket.once('connect', r));
    socket.write('POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\n');
    await new Promise((r) => setTimeout(r, BODY_DELAY_MS));
    socket.write('hello');
    await new Promise((r) => socket.once('close', r));
    assert.match(answer, /body hello$/);
  });
});
