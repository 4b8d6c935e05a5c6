/**
 * `switchyard up` end to end, as the README's first command runs it: a local nats-server,
 * a router and two replicas as child processes; requests served; Ctrl-C stops everything.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SwitchyardClient } from '../../src/client/client.ts';
import { connectNats } from '../../src/cluster/connection.ts';
import { ROOT } from '../helpers/models.ts';

const BIN = join(ROOT, 'bin', 'switchyard.mjs');
const UP_TIMEOUT_MS = 90_000;

/** Resolves with everything printed once `marker` appears (or rejects when the process exits). */
function waitForOutput(child: ChildProcess, marker: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`no ${String(marker)} within ${UP_TIMEOUT_MS} ms:\n${out}`)),
      UP_TIMEOUT_MS,
    );
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (marker.test(out)) {
        clearTimeout(timer);
        resolve(out);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`up exited with ${code}:\n${out}`));
    });
  });
}

describe('switchyard up', () => {
  let up: ChildProcess | undefined;
  after(() => {
    if (up && up.exitCode === null) up.kill('SIGKILL');
  });

  it('starts a cluster that serves requests, and Ctrl-C stops all of it', async () => {
    up = spawn(process.execPath, [BIN, 'up', '--replicas', '2', '--threads', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SWITCHYARD_LOG_LEVEL: 'warn' },
    });
    const out = await waitForOutput(up, /Press Ctrl-C to stop/);
    assert.match(out, /switchyard is up/);
    assert.match(out, /replicas\s+replica-1 \(cpu\), replica-2 \(cpu\)/);
    const url = /NATS\s+(nats:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    assert.ok(url, `no NATS URL in:\n${out}`);

    const client = await SwitchyardClient.connect({ nats: { servers: url } });
    try {
      const results = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          client.generate({ model: 'tiny-gpt2', prompt: `up test ${i}`, maxTokens: 8, temperature: 0 }),
        ),
      );
      for (const r of results) {
        assert.equal(r.tokenIds.length, 8);
        assert.equal(r.finishReason, 'length');
      }
    } finally {
      await client.close();
    }

    const exited = new Promise<number | null>((resolve) => up!.once('exit', resolve));
    up.kill('SIGINT');
    assert.equal(await exited, 0, 'up did not exit 0 after Ctrl-C');
    // The local nats-server went with it.
    await assert.rejects(connectNats({ servers: url, connectTimeoutMs: 500, maxReconnectAttempts: 0 }));
  });
});
