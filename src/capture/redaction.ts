/**
 * Redaction before storage (issue 12): the router that ends a request passes its completion event
 * through {@link redactCompletion} before the event leaves the process, so e-mail addresses, phone
 * numbers, card numbers, IBANs, IP addresses and secrets in prompts and outputs never reach
 * JetStream, the collector, or a dataset export. What is replaced is one table,
 * src/capture/redaction-patterns.ts (docs/redaction.md); this file is the scan and the event rules.
 *
 * The scan is one pass, left to right: at each step every pattern offers its next match at or after
 * the current position, the leftmost wins, then the longest, then the table's first; the text up to
 * its end is settled and never scanned again, so a placeholder is never matched again. Each
 * pattern's regex moves forward only, which keeps the whole scan linear in the text (a 256 KiB
 * prompt takes a few milliseconds; see the test). Pure: no I/O, no clock.
 */
import type { CompletionEvent, RedactionKind } from '../cluster/messages/capture.ts';
import { REDACTION_PATTERNS, type RedactionPattern } from './redaction-patterns.ts';

/** What {@link redactText} made of a text. */
export interface RedactionResult {
  /** The text with every match replaced by its placeholder; the same string when nothing matched. */
  text: string;
  /** The kinds replaced, once each, sorted. */
  kinds: RedactionKind[];
}

/** A pattern's next match: the span of its group. */
interface Span {
  start: number;
  end: number;
}

/** The first match of `pattern` that starts at `from` or later and passes its check. */
function nextMatch(pattern: RedactionPattern, text: string, from: number): Span | null {
  const re = pattern.regex;
  re.lastIndex = from;
  for (;;) {
    const m = re.exec(text);
    if (m === null) return null;
    const span = checkedSpan(pattern, text, m);
    if (span !== null) return span;
    // Rejected: look again one character on (the lookbehinds keep this from rescanning a token).
    re.lastIndex = m.index + 1;
  }
}

/** The span that match `m` replaces once the row's trim and check have had their say; null: none. */
function checkedSpan(pattern: RedactionPattern, text: string, m: RegExpExecArray): Span | null {
  const span = groupSpan(pattern, m);
  if (span === null) return null;
  if (pattern.trim !== undefined) {
    const length = pattern.trim(text.slice(span.start, span.end));
    if (length === 0) return null;
    span.end = span.start + length;
  }
  if (pattern.accept !== undefined && !pattern.accept(text.slice(span.start, span.end))) return null;
  return span;
}

/** The span of the replaced group of match `m` (null when the group did not take part). */
function groupSpan(pattern: RedactionPattern, m: RegExpExecArray): Span | null {
  if (pattern.group === 0) return { start: m.index, end: m.index + m[0].length };
  const range = m.indices?.[pattern.group];
  if (range === undefined || range[0] === range[1]) return null;
  return { start: range[0], end: range[1] };
}

/** Kinds in their stored order: unique, sorted. */
function sortedKinds(kinds: Iterable<RedactionKind>): RedactionKind[] {
  return [...new Set(kinds)].sort();
}

/**
 * Replaces everything the table matches in `text` by its placeholder (`<EMAIL>`, `<CARD>`, …).
 * Returns the same string object, and no kinds, when nothing matched, so callers can tell "changed"
 * by identity.
 */
export function redactText(text: string): RedactionResult {
  const patterns = REDACTION_PATTERNS;
  // Per pattern: its next match (undefined: not looked for yet; null: none left).
  const next: Array<Span | null | undefined> = new Array<Span | null | undefined>(patterns.length);
  const parts: string[] = [];
  const kinds = new Set<RedactionKind>();
  let pos = 0;
  for (;;) {
    let best: Span | null = null;
    let bestPattern: RedactionPattern | null = null;
    for (let i = 0; i < patterns.length; i++) {
      const pattern = patterns[i] as RedactionPattern;
      let span = next[i];
      if (span === null) continue;
      if (span === undefined || span.start < pos) {
        span = nextMatch(pattern, text, pos);
        next[i] = span;
        if (span === null) continue;
      }
      if (best === null || span.start < best.start || (span.start === best.start && span.end > best.end)) {
        best = span;
        bestPattern = pattern;
      }
    }
    if (best === null || bestPattern === null) break;
    parts.push(text.slice(pos, best.start), bestPattern.placeholder);
    kinds.add(bestPattern.kind);
    pos = best.end;
  }
  if (parts.length === 0) return { text, kinds: [] };
  parts.push(text.slice(pos));
  return { text: parts.join(''), kinds: sortedKinds(kinds) };
}

/**
 * The completion event as it may be stored: `prompt`, every message's `content`, `output_text`
 * and each `sampling.stop` entry redacted. Where the output text changed, `output_token_ids` go
 * too (they would decode to what was redacted); the event holds no prompt token ids, so a changed
 * prompt drops nothing else. `redacted` becomes the sorted union of the kinds replaced now and any
 * the event already listed, and is absent when there are none. Returns the same event object when
 * nothing matched (so redacting twice is redacting once, by identity too).
 */
export function redactCompletion(event: CompletionEvent): CompletionEvent {
  const kinds: RedactionKind[] = [];
  let changed = false;
  const redact = (text: string): string => {
    const r = redactText(text);
    if (r.text !== text) {
      changed = true;
      kinds.push(...r.kinds);
    }
    return r.text;
  };

  const prompt = event.prompt === undefined ? undefined : redact(event.prompt);
  let messages = event.messages;
  if (messages !== undefined) {
    const redacted = messages.map((m) => {
      const content = redact(m.content);
      return content === m.content ? m : { ...m, content };
    });
    if (redacted.some((m, i) => m !== messages?.[i])) messages = redacted;
  }
  const outputText = event.output_text === undefined ? undefined : redact(event.output_text);
  const outputChanged = outputText !== event.output_text;
  let stop = event.sampling.stop;
  if (stop !== undefined) {
    const redacted = stop.map(redact);
    if (redacted.some((s, i) => s !== stop?.[i])) stop = redacted;
  }
  if (!changed) return event;

  const out: CompletionEvent = { ...event };
  if (prompt !== undefined) out.prompt = prompt;
  if (messages !== undefined) out.messages = messages;
  if (outputText !== undefined) out.output_text = outputText;
  if (outputChanged) delete out.output_token_ids;
  if (stop !== event.sampling.stop) out.sampling = { ...event.sampling, stop };
  const all = sortedKinds([...(event.redacted ?? []), ...kinds]);
  if (all.length > 0) out.redacted = all;
  else delete out.redacted;
  return out;
}
