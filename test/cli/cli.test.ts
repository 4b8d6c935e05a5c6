import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/models.ts';

const BIN = join(ROOT, 'bin', 'switchyard.mjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with no SWITCHYARD_* variables from the test's own environment. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SWITCHYARD_')));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: ROOT, env: { ...clean, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A port nothing listens on (bound, then closed). */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 1));
    });
  });
}

function oneLine(text: string): string {
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${text}`);
  assert.doesNotMatch(text, /^\s+at /m, 'no stack trace');
  return lines[0] ?? '';
}

describe('switchyard CLI', { concurrency: true }, () => {
  it('--help lists the commands and exits 0', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const command of ['up', 'replica', 'router', 'bridge'])
      assert.match(r.stdout, new RegExp(`^  ${command} `, 'm'));
    assert.equal((await cli([])).code, 0);
  });

  it('<command> --help and help <command> show its options', async () => {
    const r = await cli(['replica', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: switchyard replica/);
    assert.match(r.stdout, /--max-batch-size N\n.*\n.*SWITCHYARD_REPLICA_MAX_BATCH_SIZE/);
    const up = await cli(['help', 'up']);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /--gpus all\|0,1/);
    const bridge = await cli(['bridge', '--help']);
    assert.equal(bridge.code, 0, bridge.stderr);
    assert.match(bridge.stdout, /--rate-limit-fail-mode open\|closed\n/);
  });

  it('an unknown command exits 2 and names it', async () => {
    const r = await cli(['serve']);
    assert.equal(r.code, 2);
    assert.match(oneLine(r.stderr), /unknown command 'serve'; the commands are up, replica, router/);
  });

  it('a bad flag or value exits 2 and names the flag', async () => {
    const unknown = await cli(['router', '--strateg', 'round-robin']);
    assert.equal(unknown.code, 2);
    assert.match(
      oneLine(unknown.stderr),
      /^switchyard router: unknown option --strateg .*did you mean --strategy\?/,
    );
    const wrong = await cli(['up', '--replicas', 'abc']);
    assert.equal(wrong.code, 2);
    assert.equal(oneLine(wrong.stderr), "switchyard up: --replicas: expected an integer >= 1, got 'abc'");
    const env = await cli(['replica'], { SWITCHYARD_REPLICA_MAX_QUEUE: 'lots' });
    assert.equal(env.code, 2);
    assert.match(
      oneLine(env.stderr),
      /environment variable SWITCHYARD_REPLICA_MAX_QUEUE: expected an integer/,
    );
  });

  it('bridge (and up) --port <port in use> fail with one clear line and exit 1', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const r = await cli(['bridge', '--port', String(port)]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(
        oneLine(r.stderr),
        new RegExp(
          `^switchyard bridge: port ${port} on 127\\.0\\.0\\.1 is already in use \\(from --port\\): ` +
            'stop what holds it, or choose another with --port',
        ),
      );
      // up checks the port before it starts anything.
      const up = await cli(['up'], { SWITCHYARD_BRIDGE_PORT: String(port) });
      assert.equal(up.code, 1, up.stdout + up.stderr);
      assert.match(
        oneLine(up.stderr),
        new RegExp(
          `^switchyard up: port ${port} .* in use \\(from environment variable SWITCHYARD_BRIDGE_PORT\\)`,
        ),
      );
      assert.equal(up.stdout, '', 'nothing was started');
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('replica --model /nonexistent fails with one clear line and exit 1', async () => {
    const r = await cli(['replica', '--model', '/nonexistent']);
    assert.equal(r.code, 1);
    assert.match(
      oneLine(r.stderr),
      /^switchyard replica: model folder \/nonexistent \(from --model\) does not exist/,
    );
  });

  it('a router without a NATS server fails with one clear line and exit 1', async () => {
    const r = await cli(['router', '--nats', `nats://127.0.0.1:${await closedPort()}`]);
    assert.equal(r.code, 1);
    assert.match(
      oneLine(r.stderr),
      /^switchyard router: cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+/,
    );
  });

  it('up stops and exits 1 when the registry cannot be reached to store its model', async () => {
    const r = await cli(['up', '--nats', `nats://127.0.0.1:${await closedPort()}`]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^up: the model registry: cannot connect to NATS/m);
    assert.match(r.stdout, /^up: stopped$/m);
  });

  it('up stops the cluster and exits 1 when a child fails to start', async () => {
    const url = `nats://127.0.0.1:${await closedPort()}`;
    const r = await cli(['up', '--nats', url, '--routers', '2', '--registry=false']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    // The collector starts first (it makes the capture streams the routers publish to).
    assert.match(r.stdout, /^up: collector collector-\S+ failed to start: cannot connect to NATS/m);
    assert.match(r.stdout, /^up: stopped$/m);
    assert.doesNotMatch(r.stdout, /switchyard is up/);
  });

  it('up refuses one shared NATS identity for its own server unless --insecure', async () => {
    const r = await cli(['up', '--nats-user', 'actor'], { SWITCHYARD_NATS_PASSWORD: 's3cret-pass' });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(
      oneLine(r.stderr),
      /--nats-user \(SWITCHYARD_NATS_USER\), --nats-password \(SWITCHYARD_NATS_PASSWORD\) would give every actor one shared NATS identity.*--insecure/,
    );
    assert.doesNotMatch(r.stdout, /starting nats-server/);
  });
});
