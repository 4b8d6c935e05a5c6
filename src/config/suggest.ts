/** "Did you mean …?" for mistyped flags and config keys: the cheapest fix a message can offer. */

/** Edit distance between two short strings (Levenshtein, one row at a time). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[b.length] ?? Math.max(a.length, b.length);
}

/** The candidate closest to `wrong`, when it is close enough to be a likely typo. */
export function closest(wrong: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(wrong.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const allowed = Math.max(2, Math.floor(wrong.length / 3));
  return bestDistance <= allowed ? best : undefined;
}

/** ` (did you mean X?)`, or nothing. */
export function didYouMean(wrong: string, candidates: Iterable<string>, format = (s: string) => s): string {
  const best = closest(wrong, candidates);
  return best === undefined ? '' : ` (did you mean ${format(best)}?)`;
}
