import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { LISTEN_BACKLOG, startBridge, type Bridge } from '../../src/bridge/bridge.ts';
import { NatsServer } from '../helpers/nats-server.ts';

process.env.SWITCHYARD_LOG_LEVEL ??= 'warn';

/** The kernel's cap on any listen backlog (`net.core.somaxconn`). */
function somaxconn(): number {
  return Number(execFileSync('cat', ['/proc/sys/net/core/somaxconn'], { encoding: 'utf8' }).trim());
}

describe('bridge listen backlog', () => {
  let server: NatsServer;
  let bridge: Bridge;
  before(async () => {
    server = await NatsServer.start();
    bridge = await startBridge({ host: '127.0.0.1', port: 0, nats: { servers: server.url } });
  });
  after(async () => {
    await bridge.stop();
    await server.stop();
  });

  it("queues a burst of new connections beyond node's default 511 (the overload's resets)", () => {
    // For a listening socket `ss` shows its backlog as Send-Q.
    const line = execFileSync('ss', ['-ltnH', `sport = :${bridge.port}`], { encoding: 'utf8' }).trim();
    const backlog = Number(line.split(/\s+/)[2]);
    assert.equal(backlog, Math.min(LISTEN_BACKLOG, somaxconn()), `ss: ${line}`);
    assert.ok(backlog > 511, `backlog ${backlog}`);
  });
});
