/**
 * `switchyard train` with the reference trainer, for real: a generated SFT dataset whose
 * completions always say the same words, the bundled model as the base, the trainer run as a
 * command behind the trainer interface. The trained folder must fit the held-out split better
 * (scored with the engine), load in a real engine and say the demonstrated words when greedy.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.ts';
import { isHeldOut } from '../../src/trainer/examples.ts';
import { parseTrainerLine, progressLine, resultLine } from '../../src/trainer/protocol.ts';
import { requireModel, ROOT, TEST_THREADS, TINY_MODEL } from '../helpers/models.ts';
import { PATTERN, writePatternDataset } from './helpers.ts';

const BIN = join(ROOT, 'bin', 'switchyard.mjs');
/** Examples in the dataset: what the closed-loop test will train on, roughly. */
const EXAMPLES = 150;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SWITCHYARD_')));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: ROOT, env, timeout: 120_000 },
      (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
      },
    );
  });
}

/** Share of the words of `text` that are words of the pattern. */
function patternShare(text: string): number {
  const words = new Set(PATTERN.toLowerCase().match(/[a-z]+/g));
  const got = text.toLowerCase().match(/[a-z]+/g) ?? [];
  return got.length === 0 ? 0 : got.filter((w) => words.has(w)).length / got.length;
}

describe('switchyard train with the reference trainer', () => {
  let dir: string;
  let dataset: string;
  let out: string;
  let run: Run;
  let summary: {
    manifest: { version: string };
    base_version: string;
    result: Record<string, number | boolean | string>;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sy-train-'));
    dataset = await writePatternDataset(join(dir, 'dataset'), EXAMPLES);
    out = join(dir, 'trained');
    const started = Date.now();
    run = await cli([
      'train',
      '--dataset',
      dataset,
      '--base',
      requireModel(TINY_MODEL),
      '--out',
      out,
      '--json',
    ]);
    assert.equal(run.code, 0, `train failed:\n${run.stderr}`);
    summary = JSON.parse(run.stdout) as typeof summary;
    const r = summary.result;
    console.log(
      `# held-out loss: base ${Number(r.base_heldout_loss).toFixed(4)}, trained ${Number(r.trained_heldout_loss).toFixed(4)} ` +
        `nats/token over ${r.heldout_tokens} tokens of ${r.heldout_examples} held-out examples; ` +
        `train command ${Date.now() - started} ms (trainer ${r.duration_ms} ms)`,
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lowers the mean token loss on the held-out split, as the engine computes it', async () => {
    const r = summary.result;
    assert.equal(typeof r.base_heldout_loss, 'number');
    assert.ok(Number(r.heldout_examples) > 0 && Number(r.train_examples) > Number(r.heldout_examples));
    assert.ok(
      Number(r.trained_heldout_loss) < Number(r.base_heldout_loss),
      `trained ${r.trained_heldout_loss} must be below base ${r.base_heldout_loss}`,
    );
    const training = JSON.parse(await readFile(join(out, 'training.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(training.trained_heldout_loss, r.trained_heldout_loss);
    assert.equal(training.untied, true);
    assert.equal(training.examples, EXAMPLES);
  });

  it('relays progress lines and writes an untied model of a new version with lineage', async () => {
    assert.match(run.stderr, /^train: step 1\/\d+ loss \d/m);
    assert.equal(summary.base_version, '1');
    assert.match(summary.manifest.version, /^1-ft-[0-9a-f]{8}$/);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.tie_word_embeddings, false);
    const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as {
      lineage: { parent: string; dataset: string };
    };
    assert.equal(manifest.lineage.parent, '1');
    assert.equal(manifest.lineage.dataset, summary.result.dataset_sha256);
  });

  it('serves in a real engine and, greedy, says the demonstrated words on held-out prompts', async () => {
    const lines = (await readFile(join(dir, 'dataset', 'sft-00000.jsonl'), 'utf8')).trim().split('\n');
    const prompts = lines
      .map((l) => JSON.parse(l) as { prompt?: string })
      .flatMap((l) => (l.prompt !== undefined && isHeldOut(l.prompt) ? [l.prompt] : []));
    assert.ok(prompts.length >= 3, `${prompts.length} held-out completion prompts`);
    const share = async (modelDir: string): Promise<number> => {
      const engine = await Engine.start({ modelDir, ...TEST_THREADS });
      try {
        let total = 0;
        for (const prompt of prompts) {
          const { text } = await engine.generate({ prompt, maxTokens: 8, temperature: 0 });
          total += patternShare(text);
        }
        return total / prompts.length;
      } finally {
        await engine.stop();
      }
    };
    const base = await share(TINY_MODEL);
    const trained = await share(out);
    console.log(
      `# greedy share of pattern words on ${prompts.length} held-out prompts: base ${base.toFixed(2)}, trained ${trained.toFixed(2)}`,
    );
    assert.ok(trained >= 0.5, `trained share ${trained}`);
    assert.ok(trained > base + 0.3, `trained ${trained} vs base ${base}`);
  });

  it('fails with a typed message naming the exit code and the last stderr lines', async () => {
    const failed = await cli([
      'train',
      '--dataset',
      dataset,
      '--base',
      TINY_MODEL,
      '--out',
      join(dir, 'failed'),
      '--trainer',
      'echo "progress {\\"step\\":1,\\"steps\\":2}"; echo "out of memory on step 1" >&2; exit 3',
    ]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /^train: step 1\/2$/m);
    assert.match(
      failed.stderr,
      /switchyard train: the trainer \(.*\) exited with code 3; its last stderr lines:\n {2}out of memory on step 1/,
    );
  });

  it('refuses a trainer that exits 0 without writing a model folder', async () => {
    const empty = await cli([
      'train',
      '--dataset',
      dataset,
      '--base',
      TINY_MODEL,
      '--out',
      join(dir, 'nothing'),
      '--trainer',
      'true',
    ]);
    assert.equal(empty.code, 1);
    assert.match(
      empty.stderr,
      /the trainer exited 0 but .*nothing is not a model folder the engine can load/,
    );
  });
});

describe('trainer lines', () => {
  it('classifies progress, result and log lines', () => {
    assert.deepEqual(parseTrainerLine(progressLine({ step: 3, steps: 40, loss: 2.31 })), {
      kind: 'progress',
      progress: { step: 3, steps: 40, loss: 2.31 },
    });
    assert.deepEqual(parseTrainerLine(resultLine({ a: 1 })), { kind: 'result', result: { a: 1 } });
    assert.equal(parseTrainerLine('progress {"step":"x","steps":2}').kind, 'log');
    assert.equal(parseTrainerLine('result [1]').kind, 'log');
    assert.equal(parseTrainerLine('epoch 1 done').kind, 'log');
  });
});
