/**
 * Dataset exports: the collector's records turned into JSONL training lines in one of three
 * formats that fine-tuning tools read as they are (OpenAI chat SFT; TRL's preference and KTO
 * datasets). A pure function of the records and the filters, with a deterministic order and a
 * fixed key order in every line, so the same records and filters give the same bytes, and a
 * manifest's sha256 names a dataset, not one run of the exporter. Writing the lines to shards is
 * src/collector/shards.ts.
 */
import type { ChatMessage } from '../cluster/messages/params.ts';
import type { CompletionEvent } from '../cluster/messages/capture.ts';
import { checkDatasetFilters, matchesFilters, type DatasetFilters } from './dataset-filters.ts';
import { isCompleted, type CollectedRecord } from './record.ts';

// The filters' type lives with their checks; re-exported so an export's inputs come from one module.
export type { DatasetFilters } from './dataset-filters.ts';

/** The export formats (`--format`). */
export const DATASET_FORMATS = ['sft', 'preference', 'kto'] as const;

/** One of {@link DATASET_FORMATS}. */
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

/**
 * A rating-only feedback (a number, no thumbs) at or above this is a desirable KTO example,
 * below it an undesirable one. The midpoint, so that thumbs up (rating 1) and down (0) land where
 * their thumbs say and a neutral 0.5 counts as acceptable rather than being thrown away.
 */
export const KTO_DESIRABLE_MIN_RATING = 0.5;

/**
 * What happened to every record an export read: the fields sum to `records`, so a short dataset
 * says why it is short. Written into the manifest as they are.
 */
export interface DatasetCounts {
  /** Records read. */
  records: number;
  /** Records with no completion yet, or whose request did not complete (`isCompleted`). */
  not_completed: number;
  /** Completed records that a filter left out. */
  filtered_out: number;
  /**
   * Records without their text: captured with `--capture-text=false`, without a prompt, or with
   * an output missing resumed tokens' text (`text_complete` false: a truncated target would
   * teach the model to stop early).
   */
  no_text: number;
  /**
   * Records the format has no line for: `preference` needs a correction that differs from the
   * output, `kto` needs feedback.
   */
  not_in_format: number;
  /** Records dropped because another record with the same normalised prompt was kept. */
  duplicates: number;
  /** Lines exported. */
  exported: number;
}

/** Stream sequences (in the completions stream) of the first and last exported record. */
export interface SeqRange {
  first: number;
  last: number;
}

/** An export's lines (JSON, no newline) and how they were chosen. */
export interface DatasetExport {
  lines: string[];
  counts: DatasetCounts;
  /** Null when nothing was exported. */
  seqRange: SeqRange | null;
}

/**
 * An SFT line for a chat request: its messages and the assistant's reply (OpenAI's fine-tuning
 * chat format).
 */
export interface SftChatLine {
  messages: ChatMessage[];
}

/** An SFT line for a plain completion request: a prompt/completion pair. */
export interface SftCompletionLine {
  prompt: string;
  completion: string;
}

/**
 * A preference pair from a correction: chosen is the corrected output, rejected the model's.
 * For a chat request all three are messages, in TRL's conversational preference format: the
 * prompt is the request's messages, chosen and rejected each one assistant message. For a plain
 * request all three are strings (TRL's standard format). TRL needs the three fields to be of one
 * kind, which is why a chat pair's outputs are message lists too.
 */
export interface PreferenceLine {
  prompt: string | ChatMessage[];
  chosen: string | ChatMessage[];
  rejected: string | ChatMessage[];
}

/**
 * A KTO example (TRL's unpaired preference format): the model's output and whether it was
 * desirable, from the feedback's thumbs, or for a rating-only feedback from
 * {@link KTO_DESIRABLE_MIN_RATING}. Always the model's own output, the one that was rated; a
 * correction becomes a preference pair instead. Chat requests use the conversational form (the
 * prompt is the messages, the completion one assistant message), plain ones strings.
 */
export interface KtoLine {
  prompt: string | ChatMessage[];
  completion: string | ChatMessage[];
  label: boolean;
}

/** A record whose completion has text for a dataset line. */
interface TextRecord {
  record: CollectedRecord;
  event: CompletionEvent;
  output: string;
  /** The chat messages, or undefined for a plain prompt. */
  messages: ChatMessage[] | undefined;
  prompt: string | undefined;
}

/** The record's text, when it has all a line needs. */
function textOf(record: CollectedRecord): TextRecord | undefined {
  const event = record.completion;
  if (event === undefined || !event.text_captured || event.text_complete === false) return undefined;
  const output = event.output_text;
  if (output === undefined) return undefined;
  const messages = event.messages !== undefined && event.messages.length > 0 ? event.messages : undefined;
  if (messages === undefined && event.prompt === undefined) return undefined;
  return { record, event, output, messages, prompt: event.prompt };
}

/** Lowercase, whitespace runs as one space, trimmed, Unicode NFC (so composed and decomposed accents agree). */
function normaliseText(text: string): string {
  return text.normalize('NFC').replace(/\s+/gu, ' ').trim().toLowerCase();
}

/**
 * The key two requests share when they asked the same thing: the normalised prompt, or for a chat
 * request each message's normalised `role:content`, one per line (normalised text has no line
 * break, so lines cannot run together). A `chat` or `prompt` prefix keeps a plain prompt from
 * matching a chat with the same words: their lines differ in shape.
 */
export function promptKey(event: Pick<CompletionEvent, 'prompt' | 'messages'>): string {
  if (event.messages !== undefined && event.messages.length > 0) {
    return [
      'chat',
      ...event.messages.map((m) => `${normaliseText(m.role)}:${normaliseText(m.content)}`),
    ].join('\n');
  }
  return `prompt\n${normaliseText(event.prompt ?? '')}`;
}

/** Only `role` and `content`, in that order, whatever else a stored message held. */
function cleanMessages(messages: readonly ChatMessage[]): ChatMessage[] {
  return messages.map((m) => ({ role: m.role, content: m.content }));
}

function assistant(content: string): ChatMessage[] {
  return [{ role: 'assistant', content }];
}

function sftLine(t: TextRecord): SftChatLine | SftCompletionLine {
  const target = t.record.feedback?.correction ?? t.output;
  if (t.messages !== undefined) return { messages: [...cleanMessages(t.messages), ...assistant(target)] };
  return { prompt: t.prompt ?? '', completion: target };
}

function preferenceLine(t: TextRecord): PreferenceLine | undefined {
  const correction = t.record.feedback?.correction;
  // A "correction" equal to the output is no preference: the pair would teach nothing.
  if (correction === undefined || correction === t.output) return undefined;
  if (t.messages !== undefined) {
    return {
      prompt: cleanMessages(t.messages),
      chosen: assistant(correction),
      rejected: assistant(t.output),
    };
  }
  return { prompt: t.prompt ?? '', chosen: correction, rejected: t.output };
}

function ktoLine(t: TextRecord): KtoLine | undefined {
  const feedback = t.record.feedback;
  if (feedback === undefined) return undefined;
  const label =
    feedback.thumbs !== undefined ? feedback.thumbs === 'up' : feedback.rating >= KTO_DESIRABLE_MIN_RATING;
  if (t.messages !== undefined)
    return { prompt: cleanMessages(t.messages), completion: assistant(t.output), label };
  return { prompt: t.prompt ?? '', completion: t.output, label };
}

/** The line a record gives in a format, or undefined when the format has none for it. */
function lineFor(format: DatasetFormat, t: TextRecord): object | undefined {
  switch (format) {
    case 'sft':
      return sftLine(t);
    case 'preference':
      return preferenceLine(t);
    case 'kto':
      return ktoLine(t);
  }
}

/** Sequence for ordering; a record without one (none the collector writes) sorts last. */
function seqOf(record: CollectedRecord): number {
  return record.completion_seq ?? Number.MAX_SAFE_INTEGER;
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Stream order: completion sequence, then request id (a total order, whatever order records came in). */
function inStreamOrder(a: CollectedRecord, b: CollectedRecord): number {
  return seqOf(a) - seqOf(b) || byCodeUnit(a.request_id, b.request_id);
}

/**
 * Whether `a` is kept over `b` when both have the same normalised prompt: the one with feedback
 * (a human looked at it), then the higher rating, then the earlier in the stream (the first
 * answer to a prompt; a later duplicate is often a retry of it). A total order, so the kept
 * record does not depend on the order records came in.
 */
function keepsOver(a: CollectedRecord, b: CollectedRecord): boolean {
  const fa = a.feedback;
  const fb = b.feedback;
  if ((fa !== undefined) !== (fb !== undefined)) return fa !== undefined;
  if (fa !== undefined && fb !== undefined && fa.rating !== fb.rating) return fa.rating > fb.rating;
  return inStreamOrder(a, b) < 0;
}

/**
 * The dataset lines of `format` from `records`: completed requests (`stop` or `length`, no
 * error) that pass `filters` and have their text, one line each where the format has one, in
 * completion-sequence order (then request id). Deduplicated by normalised prompt
 * ({@link promptKey}): of the records with one prompt, the one kept has feedback, then the
 * highest rating, then the lowest completion sequence. Deduplication runs after the format's own
 * selection, so a preference export keeps a prompt's corrected record even when an uncorrected
 * one has a higher rating.
 * Throws InvalidRequestError for a bad filter.
 */
export function exportDataset(
  records: Iterable<CollectedRecord>,
  format: DatasetFormat,
  filters: DatasetFilters = {},
): DatasetExport {
  const checked = checkDatasetFilters(filters);
  const counts: DatasetCounts = {
    records: 0,
    not_completed: 0,
    filtered_out: 0,
    no_text: 0,
    not_in_format: 0,
    duplicates: 0,
    exported: 0,
  };
  const kept = new Map<string, { record: CollectedRecord; line: object }>();
  for (const record of records) {
    counts.records += 1;
    if (!isCompleted(record)) {
      counts.not_completed += 1;
      continue;
    }
    if (!matchesFilters(record, checked)) {
      counts.filtered_out += 1;
      continue;
    }
    const text = textOf(record);
    if (text === undefined) {
      counts.no_text += 1;
      continue;
    }
    const line = lineFor(format, text);
    if (line === undefined) {
      counts.not_in_format += 1;
      continue;
    }
    const key = promptKey(text.event);
    const other = kept.get(key);
    if (other !== undefined) counts.duplicates += 1;
    if (other === undefined || keepsOver(record, other.record)) kept.set(key, { record, line });
  }
  const chosen = [...kept.values()].sort((a, b) => inStreamOrder(a.record, b.record));
  const lines = chosen.map((c) => JSON.stringify(c.line));
  counts.exported = lines.length;
  // A loop, not Math.min(...seqs): spreading a large export would overflow the call stack.
  let seqRange: SeqRange | null = null;
  for (const { record } of chosen) {
    const seq = record.completion_seq;
    if (seq === undefined) continue;
    seqRange =
      seqRange === null
        ? { first: seq, last: seq }
        : { first: Math.min(seqRange.first, seq), last: Math.max(seqRange.last, seq) };
  }
  return { lines, counts, seqRange };
}
