/** A generated SFT export whose completions follow a learnable pattern: always the same words. */
import { writeShards } from '../../src/collector/shards.ts';

/** What every completion says. */
export const PATTERN = 'All clear on the line.';

const SUBJECTS = [
  'the yard master',
  'a freight train',
  'the night shift',
  'our switch crew',
  'the signal box',
  'a coal wagon',
  'the station clock',
  'the old engine',
  'a passenger car',
  'the dispatcher',
  'the tram driver',
  'a brake van',
];
const VERBS = [
  'waits by',
  'rolls past',
  'checks',
  'watches',
  'calls',
  'leaves',
  'reaches',
  'passes',
  'guards',
  'cleans',
  'paints',
];
const PLACES = [
  'track nine',
  'the north gate',
  'platform two',
  'the water tower',
  'the depot',
  'the bridge',
  'the river line',
  'the main line',
  'the shed',
  'the crossing',
];

/** Writes `count` SFT lines (half prompt/completion, half chat) into `dir`; returns the manifest path. */
export async function writePatternDataset(dir: string, count: number): Promise<string> {
  const lines: string[] = [];
  for (let i = 0; lines.length < count; i++) {
    const s = SUBJECTS[i % SUBJECTS.length]!;
    const v = VERBS[Math.floor(i / SUBJECTS.length) % VERBS.length]!;
    const p = PLACES[(i * 7) % PLACES.length]!;
    lines.push(
      i % 2 === 0
        ? JSON.stringify({ prompt: `Report: ${s} ${v} ${p}.`, completion: ` ${PATTERN}` })
        : JSON.stringify({
            messages: [
              { role: 'user', content: `Where is ${s}? It ${v} ${p}.` },
              { role: 'assistant', content: PATTERN },
            ],
          }),
    );
  }
  const counts = {
    records: count,
    not_completed: 0,
    filtered_out: 0,
    no_text: 0,
    not_in_format: 0,
    duplicates: 0,
    exported: count,
  };
  await writeShards(dir, lines, { format: 'sft', filters: {}, counts, seqRange: null });
  return `${dir}/manifest.json`;
}
