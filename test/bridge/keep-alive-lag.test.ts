import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { closeIdleAfterPendingReads } from '../../src/bridge/keep-alive.ts';

/** Keep-alive timeout of the test servers. */
const KEEP_ALIVE_MS = 200;
/** The client sends its second request this long after the first answer: well inside the timeout. */
const REUSE_AFTER_MS = 100;
/**
 * node closes at keepAliveTimeout plus its internal HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER (1 s in
 * node 20.20). The server's process then blocks until past that, as an overloaded bridge lags.
 */
const BUFFER_MS = 1_000;
const BLOCK_MS = KEEP_ALIVE_MS + BUFFER_MS + 200;
/** After the block: time for the answer, or the reset, to arrive. */
const SETTLE_MS = 200;

function blockEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // A process lagging behind its timers.
  }
}

async function serverWith(fixed: boolean): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => res.end('ok'));
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  if (fixed) closeIdleAfterPendingReads(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

const REQUEST = 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n';

/** Two requests on one keep-alive connection, the second sent in time but read late. */
async function reuseDuringLag(port: number): Promise<{ answers: number; error: string | undefined }> {
  const socket: Socket = connect(port, '127.0.0.1');
  let text = '';
  let error: string | undefined;
  socket.on('data', (d: Buffer) => (text += d.toString()));
  socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
  await new Promise<void>((r) => socket.once('connect', r));
  socket.write(REQUEST);
  while (!text.includes('\r\n\r\nok')) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, REUSE_AFTER_MS));
  // Written after this turn's poll phase (from setImmediate), then the process blocks: the next
  // turn runs the now-due keep-alive timer before its poll phase would read the request.
  await new Promise<void>((resolve) =>
    setImmediate(() => {
      socket.write(REQUEST); // reaches the server's kernel buffer at once
      blockEventLoop(BLOCK_MS);
      resolve();
    }),
  );
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  socket.destroy();
  return { answers: text.split('HTTP/1.1 200').length - 1, error };
}

describe('keep-alive timeout under event-loop lag', () => {
  const servers: Server[] = [];
  let fixedPort = 0;
  let plainPort = 0;
  before(async () => {
    const fixed = await serverWith(true);
    const plain = await serverWith(false);
    servers.push(fixed.server, plain.server);
    fixedPort = fixed.port;
    plainPort = plain.port;
  });
  after(() => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))));

  it("node's own verdict resets a request that arrived in time (the defect, reproduced)", async () => {
    const got = await reuseDuringLag(plainPort);
    assert.equal(got.answers, 1);
    assert.equal(got.error, 'ECONNRESET');
  });

  it('serves a request that arrived before the timeout even when the timer fires late', async () => {
    const got = await reuseDuringLag(fixedPort);
    assert.equal(got.error, undefined);
    assert.equal(got.answers, 2);
  });

  it('still closes a connection that stays idle', async () => {
    const socket = connect(fixedPort, '127.0.0.1');
    socket.resume();
    await new Promise<void>((r) => socket.once('connect', r));
    socket.write(REQUEST);
    const closedAfter = await new Promise<number>((resolve) => {
      const at = Date.now();
      socket.once('close', () => resolve(Date.now() - at));
    });
    assert.ok(closedAfter >= KEEP_ALIVE_MS - 50, `closed after ${closedAfter} ms`);
    assert.ok(closedAfter < KEEP_ALIVE_MS + BUFFER_MS + 1_000, `closed after ${closedAfter} ms`);
  });
});
