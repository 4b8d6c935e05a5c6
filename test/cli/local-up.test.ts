/** How operator commands find a local `up`: none, one (used, with its credential), several (refused), stale (skipped). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { announceLocalUp, localUps, operatorConnection } from '../../src/cli/local-up.ts';
import { StartupError } from '../../src/errors/errors.ts';

describe('local up discovery', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-local-up-'));
  const lines: string[] = [];
  const say = (line: string): void => void lines.push(line);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('leaves the options alone with no up, or when the command was given NATS settings', () => {
    assert.deepEqual(operatorConnection('models', {}, say, dir), {});
    const remove = announceLocalUp({ url: 'nats://127.0.0.1:1', operatorSeedFile: '/x/operator.nk' }, dir);
    try {
      const given = { servers: 'nats://elsewhere:4222' };
      assert.deepEqual(operatorConnection('models', given, say, dir), given);
    } finally {
      remove();
    }
  });

  it('uses the one live up, with its operator credential, and says so', () => {
    const remove = announceLocalUp({ url: 'nats://127.0.0.1:1', operatorSeedFile: '/x/operator.nk' }, dir);
    try {
      assert.deepEqual(operatorConnection('models', {}, say, dir), {
        servers: 'nats://127.0.0.1:1',
        nkeySeedFile: '/x/operator.nk',
      });
      assert.match(
        lines.at(-1) ?? '',
        /using the switchyard up at nats:\/\/127\.0\.0\.1:1 .* operator credential/,
      );
    } finally {
      remove();
    }
    assert.deepEqual(localUps(dir), [], 'the record is gone once removed');
  });

  it('skips records of dead processes and refuses to guess between two live ups', () => {
    writeFileSync(join(dir, 'up-999999999.json'), JSON.stringify({ pid: 999_999_999, url: 'nats://dead:1' }));
    assert.deepEqual(localUps(dir), []);
    const remove = announceLocalUp({ url: 'nats://127.0.0.1:1' }, dir);
    // A second live process: this test's parent.
    writeFileSync(
      join(dir, `up-${process.ppid}.json`),
      JSON.stringify({ pid: process.ppid, url: 'nats://b:2' }),
    );
    try {
      assert.throws(
        () => operatorConnection('dataset', {}, say, dir),
        (err: unknown) =>
          err instanceof StartupError && /2 switchyard up run on this machine/.test(err.message),
      );
    } finally {
      remove();
    }
  });
});
