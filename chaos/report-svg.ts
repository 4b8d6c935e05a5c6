/**
 * A scenario's `<scenario>.svg`: latency of each completed request by its end time, and tokens/s
 * in 1 s bins, over the run, with the fault windows shaded and error outcomes marked in red.
 * Hand-written SVG (no dependency), readable in a browser.
 */
import type { History } from './history/types.ts';
import { latencyMs, loadStart } from './timings.ts';

/** Canvas and panel geometry, in SVG user units (px). */
const WIDTH = 1000;
const HEIGHT = 700;
const MARGIN_LEFT = 80;
const MARGIN_RIGHT = 30;
const TITLE_HEIGHT = 50;
const PANEL_HEIGHT = 250;
const PANEL_GAP = 80;
/** Throughput bins (ms). */
export const THROUGHPUT_BIN_MS = 1000;
/** Narrowest a shaded fault is drawn, so that an instant SIGKILL still shows (px). */
const MIN_FAULT_WIDTH = 3;
/** Ticks per axis, about. */
const TICKS = 6;

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A "nice" tick step (1, 2 or 5 × 10^k) for a range. */
function step(range: number): number {
  const raw = Math.max(range, 1e-9) / TICKS;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n < 1.5 ? 1 : n < 3.5 ? 2 : n < 7.5 ? 5 : 10) * mag;
}

function ticks(max: number): number[] {
  const s = step(max);
  const out: number[] = [];
  for (let v = 0; v <= max + s / 1e6; v += s) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Tokens received per bin of THROUGHPUT_BIN_MS from `start`, as tokens/s. */
export function throughputBins(history: History, start: number, end: number): number[] {
  const bins = new Array<number>(Math.max(1, Math.ceil((end - start) / THROUGHPUT_BIN_MS))).fill(0);
  for (const c of history.operations.flatMap((o) => o.chunks)) {
    const i = Math.floor((c.at - start) / THROUGHPUT_BIN_MS);
    if (i >= 0 && c.at <= end) bins[Math.min(i, bins.length - 1)]! += c.tokenIds.length;
  }
  // The last bin may be cut short by the end of the run: its rate is over the time it covers.
  return bins.map((n, i) => n / (Math.min(THROUGHPUT_BIN_MS, end - start - i * THROUGHPUT_BIN_MS) / 1000));
}

/** The SVG document of one scenario's history. */
export function renderSvg(history: History): string {
  const ops = history.operations;
  const start = loadStart(history);
  const end = Math.max(
    start + THROUGHPUT_BIN_MS,
    ...ops.map((o) => o.outcome.at),
    ...history.faults.map((f) => f.endedAt ?? f.startedAt),
  );
  const plotW = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
  const spanS = (end - start) / 1000;
  const x = (t: number): number => MARGIN_LEFT + ((t - start) / (end - start)) * plotW;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(
      `${history.scenario} (seed ${history.seed}): ${ops.length} requests`,
    )}</text>`,
    `<text x="${WIDTH / 2}" y="42" text-anchor="middle" fill="#555">shaded: fault windows; red ✕: requests that ended in an error or without an answer</text>`,
  ];
  const panel = (
    top: number,
    title: string,
    yLabel: string,
    yMax: number,
    body: (y: (v: number) => number) => string[],
  ): void => {
    const bottom = top + PANEL_HEIGHT;
    const y = (v: number): number => bottom - (v / yMax) * PANEL_HEIGHT;
    out.push(`<text x="${MARGIN_LEFT}" y="${top - 8}" font-weight="bold">${esc(title)}</text>`);
    for (const f of history.faults) {
      const x0 = x(f.startedAt);
      const w = Math.max(MIN_FAULT_WIDTH, x(f.endedAt ?? f.startedAt) - x0);
      out.push(
        `<rect x="${x0.toFixed(1)}" y="${top}" width="${w.toFixed(1)}" height="${PANEL_HEIGHT}" fill="#f4a261" fill-opacity="0.35"><title>${esc(
          `${f.name} on ${f.target}`,
        )}</title></rect>`,
        `<text x="${(x0 + 3).toFixed(1)}" y="${top + 12}" fill="#b5561b">${esc(f.name)}</text>`,
      );
    }
    for (const v of ticks(yMax)) {
      out.push(
        `<line x1="${MARGIN_LEFT}" x2="${WIDTH - MARGIN_RIGHT}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`,
        `<text x="${MARGIN_LEFT - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`,
      );
    }
    for (const s of ticks(spanS)) {
      const tx = x(start + s * 1000);
      out.push(
        `<line x1="${tx.toFixed(1)}" x2="${tx.toFixed(1)}" y1="${bottom}" y2="${bottom + 5}" stroke="black"/>`,
        `<text x="${tx.toFixed(1)}" y="${bottom + 18}" text-anchor="middle">${s}</text>`,
      );
    }
    out.push(
      `<line x1="${MARGIN_LEFT}" x2="${MARGIN_LEFT}" y1="${top}" y2="${bottom}" stroke="black"/>`,
      `<line x1="${MARGIN_LEFT}" x2="${WIDTH - MARGIN_RIGHT}" y1="${bottom}" y2="${bottom}" stroke="black"/>`,
      `<text x="${MARGIN_LEFT + plotW / 2}" y="${bottom + 34}" text-anchor="middle">time since the load started (s)</text>`,
      `<text transform="translate(${MARGIN_LEFT - 52} ${top + PANEL_HEIGHT / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
      ...body(y),
    );
  };
  const done = ops.filter((o) => latencyMs(o) !== undefined);
  const maxLatencyS = Math.max(1, ...done.map((o) => latencyMs(o)! / 1000)) * 1.1;
  const latencyTop = TITLE_HEIGHT + 30;
  panel(latencyTop, 'Latency of each completed request, by end time', 'latency (s)', maxLatencyS, (y) => [
    ...done.map(
      (o) =>
        `<circle cx="${x(o.outcome.at).toFixed(1)}" cy="${y(latencyMs(o)! / 1000).toFixed(1)}" r="3" fill="#1d4ed8" fill-opacity="0.7"><title>${esc(
          `${o.id}: ${latencyMs(o)} ms`,
        )}</title></circle>`,
    ),
    ...ops
      .filter((o) => o.outcome.kind !== 'ok')
      .map((o) => {
        const cx = x(o.outcome.at);
        const cy = y(Math.min((o.outcome.at - o.invokedAt) / 1000, maxLatencyS));
        const what = o.outcome.kind === 'error' ? `error ${o.outcome.code}` : 'no answer (unknown)';
        return `<path d="M${(cx - 5).toFixed(1)} ${(cy - 5).toFixed(1)}l10 10m0 -10l-10 10" stroke="#dc2626" stroke-width="2.5"><title>${esc(
          `${o.id}: ${what}`,
        )}</title></path>`;
      }),
  ]);
  const bins = throughputBins(history, start, end);
  const maxRate = Math.max(1, ...bins) * 1.1;
  const rateTop = latencyTop + PANEL_HEIGHT + PANEL_GAP;
  panel(
    rateTop,
    `Throughput: tokens/s received by clients, ${THROUGHPUT_BIN_MS / 1000} s bins`,
    'tokens/s',
    maxRate,
    (y) => {
      // One step per bin: the rate held over the whole second it was measured in.
      const points = bins.flatMap((r, i) => {
        const x0 = x(start + i * THROUGHPUT_BIN_MS).toFixed(1);
        const x1 = x(Math.min(start + (i + 1) * THROUGHPUT_BIN_MS, end)).toFixed(1);
        const yr = y(r).toFixed(1);
        return [`${x0},${yr}`, `${x1},${yr}`];
      });
      return [`<polyline points="${points.join(' ')}" fill="none" stroke="#059669" stroke-width="2"/>`];
    },
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
