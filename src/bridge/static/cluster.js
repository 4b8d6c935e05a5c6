// The cluster view of the web page: a table of replicas (state badges, batch and KV budget
// bars) and summary tiles, updated in place from /v1/cluster snapshots so that bars animate.

import { $, el } from './dom.js';

const rows = new Map();

function bar(kind) {
  const wrap = el('div', `bar ${kind}`);
  const track = el('div', 'track');
  const fill = el('div', 'fill');
  const label = el('span', 'bar-label');
  track.append(fill);
  wrap.append(track, label);
  return { wrap, fill, label };
}

function setBar(b, used, total, text) {
  const ratio = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
  b.fill.style.width = `${(ratio * 100).toFixed(1)}%`;
  b.wrap.dataset.level = ratio >= 0.9 ? 'high' : ratio >= 0.6 ? 'mid' : 'low';
  b.label.textContent = text;
}

function newRow(id) {
  const tr = el('tr');
  const cells = {
    id: el('div', 'mono', id),
    device: el('div', 'muted small'),
    model: el('div', 'nowrap'),
    version: el('span', 'chip version'),
    badge: el('span', 'badge'),
    batch: bar('batch'),
    kv: bar('kv'),
    queue: el('td', 'num mono'),
    seen: el('td', 'num muted small'),
  };
  const replica = el('td');
  replica.append(cells.id, cells.device);
  const model = el('td');
  model.append(cells.model, cells.version);
  const badge = el('td');
  badge.append(cells.badge);
  const batch = el('td');
  batch.append(cells.batch.wrap);
  const kv = el('td');
  kv.append(cells.kv.wrap);
  tr.append(replica, model, badge, batch, kv, cells.queue, cells.seen);
  return { tr, cells };
}

function replicaState(r) {
  if (r.stuck) return 'stuck';
  if (r.state === 'ready' && r.live === false) return 'silent';
  return r.state;
}

/** Shows one snapshot; returns the models' JSON so the caller can tell when they change. */
export function renderCluster(snapshot) {
  const replicas = [...(snapshot.replicas ?? [])].sort((a, b) => a.id.localeCompare(b.id));
  const tbody = $('replicas').tBodies[0];
  const seen = new Set();
  for (const r of replicas) {
    seen.add(r.id);
    let row = rows.get(r.id);
    if (!row) {
      row = newRow(r.id);
      rows.set(r.id, row);
    }
    tbody.append(row.tr); // keeps sorted order; moving an existing row keeps its bar transitions
    const c = row.cells;
    c.device.textContent = r.device;
    c.model.textContent = r.model;
    c.version.textContent = r.version;
    const s = replicaState(r);
    c.badge.textContent = s;
    c.badge.dataset.state = s;
    setBar(c.batch, r.active_sequences, r.max_batch_size, `${r.active_sequences} / ${r.max_batch_size}`);
    const used = r.token_budget - r.free_token_budget;
    const pct = r.token_budget > 0 ? Math.round((100 * used) / r.token_budget) : 0;
    setBar(c.kv, used, r.token_budget, `${pct}%`);
    c.queue.textContent =
      r.max_queue !== undefined ? `${r.queue_depth} / ${r.max_queue}` : String(r.queue_depth);
    c.seen.textContent = `${((r.last_seen_ms_ago ?? 0) / 1000).toFixed(1)} s`;
  }
  for (const [id, row] of rows) {
    if (!seen.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  $('cluster-empty').hidden = replicas.length > 0;
  const live = replicas.filter((r) => r.live !== false && r.state === 'ready').length;
  $('tile-replicas').textContent = replicas.length > 0 ? `${live} / ${replicas.length}` : '0';
  $('tile-models').textContent = String((snapshot.models ?? []).length);
  $('tile-active').textContent = String(replicas.reduce((n, r) => n + (r.active_sequences ?? 0), 0));
  $('tile-queued').textContent = String(replicas.reduce((n, r) => n + (r.queue_depth ?? 0), 0));
  $('tile-inflight').textContent = String(snapshot.bridge?.in_flight ?? '–');
  $('cluster-updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  return JSON.stringify(snapshot.models ?? []);
}
