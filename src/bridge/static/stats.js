// The collector's statistics per model version, from /v1/collector/stats: requests, error rate,
// time to first token (p50, p99), time per output token (p50) and feedback (count, mean rating).

import { $, el } from './dom.js';
import { renderRollouts } from './rollouts.js';

function ms(value) {
  if (typeof value !== 'number') return '–';
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ms`;
}

function percent(ratio) {
  return typeof ratio === 'number' ? `${(ratio * 100).toFixed(1)}%` : '–';
}

function row(v) {
  const tr = el('tr');
  tr.dataset.version = `${v.model}@${v.version}`;
  const model = el('td');
  model.append(el('div', 'nowrap', v.model ?? '?'), el('span', 'chip version', v.version ?? '?'));
  const cell = (text, name) => {
    const td = el('td', 'num mono', text);
    td.dataset.field = name;
    return td;
  };
  const feedback = v.feedback ?? {};
  const mean =
    feedback.count > 0 && typeof feedback.rating_mean === 'number' ? feedback.rating_mean.toFixed(2) : '–';
  tr.append(
    model,
    cell(String(v.requests ?? 0), 'requests'),
    cell(percent(v.error_rate), 'error_rate'),
    cell(ms(v.latency_ms?.ttft?.p50), 'ttft_p50'),
    cell(ms(v.latency_ms?.ttft?.p99), 'ttft_p99'),
    cell(ms(v.latency_ms?.tpot?.p50), 'tpot_p50'),
    cell(String(feedback.count ?? 0), 'feedback_count'),
    cell(mean, 'rating_mean'),
  );
  return tr;
}

/** Shows one stats document; `message` replaces the table when there is nothing to show. */
export function renderStats(doc, message) {
  const versions = [...(doc?.versions ?? [])].sort((a, b) =>
    `${a.model}@${a.version}`.localeCompare(`${b.model}@${b.version}`),
  );
  $('stats').tBodies[0].replaceChildren(...versions.map(row));
  const empty = $('stats-empty');
  empty.hidden = versions.length > 0;
  empty.textContent = message ?? 'No captured request yet.';
  $('stats-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  renderRollouts(doc?.rollouts ?? []);
}
