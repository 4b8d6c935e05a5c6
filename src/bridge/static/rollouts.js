// The rollouts in the cluster view: each model's current or last canary rollout (from the
// collector's stats: /v1/collector/stats `rollouts`), its state and weight, the evidence of its
// last look check by check, and its latest decisions.

import { $, el } from './dom.js';

const SHOWN_DECISIONS = 5;

function check(c) {
  const li = el('li', 'rollout-check');
  li.dataset.check = c.check;
  li.dataset.verdict = c.verdict;
  li.append(
    el('span', 'badge', c.verdict),
    el('span', 'mono', ` ${c.check} `),
    el('span', 'muted small', c.reason),
  );
  return li;
}

function decision(d) {
  const li = el('li', 'small');
  li.dataset.action = d.action;
  li.append(
    el('span', 'mono muted', `${new Date(d.at).toLocaleTimeString()} `),
    el('span', 'chip', d.action),
    el('span', '', ` ${d.reason}`),
  );
  return li;
}

function card(r) {
  const div = el('div', 'rollout');
  div.dataset.model = r.model;
  div.dataset.state = r.state;
  const head = el('div', 'rollout-head');
  head.append(
    el('span', 'nowrap', r.model),
    el('span', 'chip version', `${r.stable} → ${r.canary}`),
    el('span', 'badge rollout-state', r.state),
    el('span', 'mono rollout-weight', `${r.weight}%`),
    el('span', 'muted small', `step ${r.step + 1}/${r.steps.length}`),
  );
  div.append(head, el('div', 'muted small rollout-reason', r.reason));
  const look = [...(r.decisions ?? [])].reverse().find((d) => (d.checks ?? []).length > 0);
  if (look !== undefined) {
    const checks = el('ul', 'rollout-checks');
    checks.append(...look.checks.map(check));
    div.append(checks);
  }
  const decisions = el('ul', 'rollout-decisions');
  decisions.append(...(r.decisions ?? []).slice(-SHOWN_DECISIONS).reverse().map(decision));
  div.append(decisions);
  return div;
}

/** Shows the rollouts (nothing when none was ever started). */
export function renderRollouts(rollouts) {
  const box = $('rollouts');
  box.replaceChildren(...(rollouts.length > 0 ? [el('h3', '', 'Rollouts'), ...rollouts.map(card)] : []));
}
