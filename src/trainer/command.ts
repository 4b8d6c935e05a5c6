/**
 * `switchyard train-reference`: the reference trainer as a command that honours the trainer
 * interface (`protocol.ts`, docs/training.md), which is how `switchyard train` runs it by default.
 * Besides the interface's arguments it takes `--epochs`, `--learning-rate` and `--seed`.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { StartupError } from '../errors/errors.ts';
import { progressLine, resultLine } from './protocol.ts';
import { trainReference } from './reference.ts';

const USAGE =
  'usage: switchyard train-reference --dataset <manifest.json> --base <model folder> --out <folder> ' +
  '[--version V] [--epochs N] [--learning-rate X] [--seed N]\n' +
  'The reference trainer (docs/training.md): fine-tunes the output layer, untied from the embeddings.\n';

function positiveNumber(flag: string, text: string | undefined, integer: boolean): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new StartupError(
      'config',
      `--${flag} must be a positive ${integer ? 'integer' : 'number'}, got '${text}'`,
    );
  return n;
}

/** Runs the reference trainer; resolves to the exit status. */
export async function trainReferenceCommand(argv: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        dataset: { type: 'string' },
        base: { type: 'string' },
        out: { type: 'string' },
        version: { type: 'string' },
        epochs: { type: 'string' },
        'learning-rate': { type: 'string' },
        seed: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new StartupError('config', `${(err as Error).message}\n${USAGE}`);
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { dataset, base, out } = values;
  if (dataset === undefined || base === undefined || out === undefined)
    throw new StartupError('config', `--dataset, --base and --out are required\n${USAGE}`);
  const epochs = positiveNumber('epochs', values.epochs, true);
  const learningRate = positiveNumber('learning-rate', values['learning-rate'], false);
  const seed = positiveNumber('seed', values.seed, true);
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const summary = await trainReference({
    dataset: resolve(dataset),
    base: resolve(base),
    out: resolve(out),
    ...(values.version !== undefined ? { version: values.version } : {}),
    ...(epochs !== undefined ? { epochs } : {}),
    ...(learningRate !== undefined ? { learningRate } : {}),
    ...(seed !== undefined ? { seed } : {}),
    onPhase: (text) => say(`train-reference: ${text}`),
    onProgress: (p) => say(progressLine({ ...p, loss: Number(p.loss.toFixed(4)) })),
  });
  say(resultLine({ ...summary }));
  return 0;
}
