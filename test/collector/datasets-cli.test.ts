/**
 * Feedback joins and dataset exports for real: nats-server with JetStream, router, replica and
 * collector processes, feedback stored through the client library, and `switchyard dataset`
 * run as a command. Feedback that arrives before its completion joins it; a second replaces the
 * first; exports are byte-identical on re-run; `--json` prints one JSON document on stdout.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { SwitchyardClient } from '../../src/client/client.ts';
import { freePort } from '../../src/cli/nats-server.ts';
import { SWITCHYARD_BIN } from '../../chaos/paths.ts';
import { collectorPageSubject, collectorSubject } from '../../src/cluster/subjects.ts';
import { ActorProcess, killAll, waitFor } from '../helpers/cluster.ts';
import { waitForAliveReplicas } from '../helpers/metrics.ts';
import { NatsServer } from '../helpers/nats-server.ts';

const run = promisify(execFile);
const MODEL = 'tiny-gpt2';

describe('feedback joins and `switchyard dataset`', () => {
  let server: NatsServer;
  let client: SwitchyardClient;
  const actors: ActorProcess[] = [];
  const dirs: string[] = [];

  const dataset = async (...args: string[]): Promise<{ stdout: string; stderr: string }> =>
    run(process.execPath, [SWITCHYARD_BIN, 'dataset', ...args, '--nats', server.url], { timeout: 60_000 });
  const statsJson = async (): Promise<{ records: number; versions: Array<Record<string, unknown>> }> =>
    JSON.parse((await dataset('stats', '--json')).stdout) as {
      records: number;
      versions: Array<Record<string, unknown>>;
    };
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'sy-dataset-'));
    dirs.push(dir);
    return join(dir, 'out');
  };

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    const port = await freePort();
    actors.push(await ActorProcess.start('collector', 'col-ds', server.url));
    actors.push(
      ...(await Promise.all([
        ActorProcess.start('router', 'rt-ds', server.url, ['--metrics-port', String(port)]),
        ActorProcess.start('replica', 'rep-ds', server.url),
      ])),
    );
    client = await SwitchyardClient.connect({ nats: { servers: server.url } });
    await waitForAliveReplicas(`http://127.0.0.1:${port}/metrics`, 'rt-ds', 1);
  });

  after(async () => {
    await client?.close();
    await killAll(actors);
    await server?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('feedback before its completion joins it; a second feedback replaces the first', async () => {
    // Feedback first: the completion does not exist yet.
    await client.feedback('ds-early', { thumbs: 'down' });
    await client.generate(
      { model: MODEL, prompt: 'early feedback', maxTokens: 6, temperature: 0 },
      { requestId: 'ds-early' },
    );
    await client.generate(
      { model: MODEL, prompt: 'late feedback', maxTokens: 6, temperature: 0 },
      { requestId: 'ds-late' },
    );
    await client.generate(
      { model: MODEL, messages: [{ role: 'user', content: 'fix me' }], maxTokens: 6, temperature: 0 },
      { requestId: 'ds-chat' },
    );
    await client.feedback('ds-late', { rating: 0.2 });
    await client.feedback('ds-late', { thumbs: 'up' }); // replaces the rating
    await client.feedback('ds-chat', { thumbs: 'up', correction: 'A better answer.' });
    await waitFor('three records with their feedback', async () => {
      const s = await statsJson();
      const tiny = s.versions.find((v) => v.model === MODEL) as
        { requests: number; feedback: { count: number } } | undefined;
      return tiny !== undefined && tiny.requests === 3 && tiny.feedback.count === 3;
    });
    const tiny = (await statsJson()).versions.find((v) => v.model === MODEL) as {
      feedback: { thumbs_up: number; thumbs_down: number; corrections: number; rating_mean: number };
    };
    assert.equal(tiny.feedback.thumbs_up, 2, 'the second feedback on ds-late replaced the first');
    assert.equal(tiny.feedback.thumbs_down, 1, 'the early feedback joined its completion');
    assert.equal(tiny.feedback.corrections, 1);
    assert.ok(Math.abs(tiny.feedback.rating_mean - 2 / 3) < 1e-9);
  });

  it('exports each format to shards and a manifest, byte-identical on re-run', async () => {
    const a = tempDir();
    const b = tempDir();
    await dataset('export', '--format', 'sft', '--out', a);
    const { stdout } = await dataset('export', '--format', 'sft', '--out', b, '--json');
    const manifest = JSON.parse(stdout) as {
      counts: { exported: number };
      shards: Array<{ file: string; sha256: string }>;
    };
    assert.equal(manifest.counts.exported, 3);
    for (const file of readdirSync(a)) {
      assert.deepEqual(
        readFileSync(join(a, file)),
        readFileSync(join(b, file)),
        `${file} differs between runs`,
      );
    }
    const lines = readFileSync(join(a, manifest.shards[0]!.file), 'utf8').trim().split('\n');
    const chat = lines
      .map((l) => JSON.parse(l) as { messages?: Array<{ role: string; content: string }> })
      .find((l) => l.messages);
    assert.equal(chat?.messages?.at(-1)?.content, 'A better answer.', 'SFT prefers the correction');

    const pref = tempDir();
    const prefManifest = JSON.parse(
      (await dataset('export', '--format', 'preference', '--out', pref, '--json')).stdout,
    ) as {
      counts: { exported: number };
    };
    assert.equal(prefManifest.counts.exported, 1);
    const kto = tempDir();
    const ktoManifest = JSON.parse(
      (await dataset('export', '--format', 'kto', '--out', kto, '--json', '--has-feedback')).stdout,
    ) as {
      counts: { exported: number };
    };
    assert.equal(ktoManifest.counts.exported, 3);
    const filtered = tempDir();
    const none = JSON.parse(
      (await dataset('export', '--format', 'sft', '--out', filtered, '--json', '--model', 'other-model'))
        .stdout,
    ) as { counts: { exported: number } };
    assert.equal(none.counts.exported, 0);
  });

  it('answers malformed dataset requests with a typed error and keeps serving', async () => {
    const nc = client.nc;
    const ask = async (
      subject: string,
      data: string,
    ): Promise<{ error?: { code: string; message: string } }> =>
      (await nc.request(subject, data, { timeout: 5_000 })).json();
    const bad = await ask(collectorSubject('export'), '{"format": "csv"}');
    assert.equal(bad.error?.code, 'invalid_request');
    assert.match(bad.error?.message ?? '', /format must be one of/);
    assert.equal((await ask(collectorSubject('export'), 'not json')).error?.code, 'invalid_request');
    const stats = (await ask(collectorSubject('stats'), '{}')) as { collector?: string };
    assert.ok(stats.collector, 'the collector still answers');
    const gone = await ask(collectorPageSubject(stats.collector), '{"snapshot": "nope", "offset": 0}');
    assert.match(gone.error?.message ?? '', /snapshot nope is gone/);
  });

  it('refuses an export without --format, naming the flag', async () => {
    await assert.rejects(dataset('export', '--out', tempDir()), (err: { stderr?: string }) => {
      assert.match(err.stderr ?? '', /--format/);
      return true;
    });
  });
});
