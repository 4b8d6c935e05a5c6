// The switchyard web page: a chat playground that streams from /v1/chat/completions (with thumbs
// on each reply, sent to /v1/feedback), a live view of the cluster from /v1/cluster, and the
// collector's per-version stats from /v1/collector/stats. Plain JS served as is (no build step,
// no external URL). Everything the bridge sends is shown with textContent, never parsed as HTML.

import { renderCluster } from './cluster.js';
import { $, el } from './dom.js';
import { feedbackButtons } from './feedback.js';
import { renderStats } from './stats.js';

const KEY_STORAGE = 'switchyard.apiKey';
/** How often the cluster view refreshes. */
const CLUSTER_POLL_MS = 1000;
/** Wait before polling again after the bridge could not be reached. */
const OFFLINE_RETRY_MS = 2000;
/** How often the collector's stats refresh (they change with traffic, not by the second). */
const STATS_POLL_MS = 5000;

const state = {
  apiKey: sessionStorage.getItem(KEY_STORAGE) ?? '',
  /** The conversation sent with each request. */
  history: [],
  /** AbortController of the reply being streamed. */
  streaming: undefined,
  /** Models as last listed, to reload the picker only when they change. */
  modelsSeen: '',
};

// ---- API key --------------------------------------------------------------------------------

let keyRequest;
let keySaved = deferred();

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** Opens the key dialog (once for any number of callers); resolves when a key is saved. */
function requestKey(reason) {
  if (!keyRequest) {
    keyRequest = deferred();
    $('key-reason').textContent = reason;
    $('key-input').value = '';
    if (!$('key-dialog').open) $('key-dialog').showModal();
    setStatus('locked', 'API key required');
  }
  return keyRequest.promise;
}

function saveKey(key) {
  state.apiKey = key;
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  $('key-button-text').textContent = key ? 'Key set' : 'API key';
  if (key) {
    keyRequest?.resolve();
    keyRequest = undefined;
    keySaved.resolve();
    keySaved = deferred();
  }
}

function setupKeyDialog() {
  const dialog = $('key-dialog');
  saveKey(state.apiKey);
  $('key-button').addEventListener('click', () => {
    $('key-reason').textContent = state.apiKey ? 'A key is set for this tab.' : 'Set the key this tab sends.';
    dialog.showModal();
  });
  $('key-form').addEventListener('submit', () => {
    const key = $('key-input').value.trim();
    if (key) saveKey(key);
  });
  $('key-forget').addEventListener('click', () => {
    saveKey('');
    $('key-input').value = '';
  });
  $('key-cancel').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => {
    if (keyRequest && !state.apiKey) {
      keyRequest.reject(new Error('an API key is required'));
      keyRequest = undefined;
    }
  });
}

/** fetch with the key; on 401 asks for a key and tries again. */
async function api(path, init = {}) {
  for (;;) {
    const headers = { ...init.headers };
    if (state.apiKey) headers.authorization = `Bearer ${state.apiKey}`;
    const res = await fetch(path, { ...init, headers });
    if (res.status !== 401) return res;
    await requestKey(await errorText(res));
  }
}

async function errorText(res) {
  const text = await res.text().catch(() => '');
  try {
    return JSON.parse(text).error?.message ?? `HTTP ${res.status}`;
  } catch {
    return text.trim() || `HTTP ${res.status}`;
  }
}

// ---- status and models ----------------------------------------------------------------------

function setStatus(kind, text) {
  $('status').dataset.state = kind;
  $('status-text').textContent = text;
}

async function loadModels() {
  const res = await api('/v1/models');
  if (!res.ok) throw new Error(await errorText(res));
  const models = (await res.json()).data ?? [];
  const select = $('model');
  const previous = select.value;
  select.replaceChildren();
  for (const m of models) {
    const versions = Array.isArray(m.versions) && m.versions.length > 0 ? ` (${m.versions.join(', ')})` : '';
    const option = el('option', '', `${m.id}${versions}`);
    option.value = m.id;
    select.append(option);
  }
  if (models.length === 0) {
    const option = el('option', '', 'no model served yet');
    option.value = '';
    select.append(option);
  }
  if (models.some((m) => m.id === previous)) select.value = previous;
}

// ---- chat -----------------------------------------------------------------------------------

function addMessage(role, text) {
  $('empty')?.remove();
  const wrap = el('div', `msg ${role}`);
  wrap.append(el('div', 'role', role === 'user' ? 'You' : 'switchyard'));
  const content = el('div', 'content', text);
  wrap.append(content);
  const meta = el('div', 'meta');
  wrap.append(meta);
  $('messages').append(wrap);
  scrollToEnd();
  return { wrap, content, meta };
}

function scrollToEnd() {
  const box = $('messages');
  box.scrollTop = box.scrollHeight;
}

/** Yields the data of each Server-Sent Event in a fetch body. */
async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const events = buffer.split(/\r?\n\r?\n/);
    buffer = events.pop() ?? '';
    for (const event of events) {
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''));
      if (data.length > 0) yield data.join('\n');
    }
  }
}

function setStreaming(controller) {
  state.streaming = controller;
  const send = $('send');
  send.textContent = controller ? 'Stop' : 'Send';
  send.classList.toggle('stop', Boolean(controller));
}

async function sendPrompt(text) {
  const model = $('model').value;
  if (!model) {
    addMessage('error', 'No model is served yet: start a replica, then try again.');
    return;
  }
  const controller = new AbortController();
  setStreaming(controller);
  state.history.push({ role: 'user', content: text });
  addMessage('user', text);
  const reply = addMessage('assistant', '');
  reply.wrap.classList.add('streaming');
  const started = performance.now();
  let firstAt;
  let content = '';
  let usage;
  let finish;
  let cache;
  let responseId;
  try {
    const res = await api('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model,
        messages: state.history,
        stream: true,
        stream_options: { include_usage: true },
        temperature: Number($('temperature').value),
        max_tokens: Number($('max-tokens').value) || undefined,
      }),
      signal: controller.signal,
    });
    if (!res.ok) {
      const retry = res.headers.get('retry-after');
      throw new Error((await errorText(res)) + (retry ? ` (retry after ${retry} s)` : ''));
    }
    cache = res.headers.get('x-switchyard-cache');
    for await (const data of sseData(res.body)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message ?? 'the stream failed');
      responseId ??= chunk.id;
      const choice = chunk.choices?.[0];
      const delta = choice?.delta?.content;
      if (delta) {
        firstAt ??= performance.now();
        content += delta;
        reply.content.textContent = content;
        scrollToEnd();
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    state.history.push({ role: 'assistant', content });
  } catch (err) {
    if (controller.signal.aborted) {
      finish = 'stopped';
      state.history.push({ role: 'assistant', content });
    } else {
      state.history.pop(); // the turn failed: do not send it again with the next prompt
      reply.wrap.classList.add('failed');
      reply.content.textContent = content;
      reply.wrap.append(el('div', 'error-text', err instanceof Error ? err.message : String(err)));
    }
  } finally {
    reply.wrap.classList.remove('streaming');
    if (!content && !reply.wrap.classList.contains('failed')) reply.content.textContent = '∅';
    reply.meta.replaceChildren(...replyStats({ started, firstAt, usage, finish, cache }));
    if (responseId && !reply.wrap.classList.contains('failed')) {
      reply.wrap.dataset.responseId = responseId;
      reply.wrap.append(feedbackButtons(responseId, { api, errorText }));
    }
    setStreaming(undefined);
    scrollToEnd();
  }
}

function replyStats({ started, firstAt, usage, finish, cache }) {
  const parts = [];
  const total = performance.now() - started;
  if (usage?.completion_tokens !== undefined) {
    const decodeS = firstAt !== undefined ? (performance.now() - firstAt) / 1000 : 0;
    const rate = decodeS > 0 ? ` · ${(usage.completion_tokens / decodeS).toFixed(0)} tok/s` : '';
    parts.push(el('span', '', `${usage.completion_tokens} tokens${rate}`));
  }
  if (firstAt !== undefined) parts.push(el('span', '', `first token ${(firstAt - started).toFixed(0)} ms`));
  parts.push(el('span', '', `${(total / 1000).toFixed(2)} s`));
  if (finish) parts.push(el('span', `chip finish-${finish}`, finish));
  if (cache === 'hit') parts.push(el('span', 'chip cache-hit', 'cached'));
  return parts;
}

function setupChat() {
  const prompt = $('prompt');
  $('temperature').addEventListener('input', (e) => {
    $('temperature-value').textContent = Number(e.target.value).toFixed(1);
  });
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    if (state.streaming) {
      state.streaming.abort();
      return;
    }
    const text = prompt.value.trim();
    if (!text) return;
    prompt.value = '';
    void sendPrompt(text);
  });
  prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('clear').addEventListener('click', () => {
    state.streaming?.abort();
    state.history = [];
    $('messages').replaceChildren();
    prompt.focus();
  });
}

async function pollCluster() {
  for (;;) {
    let wait = CLUSTER_POLL_MS;
    try {
      const res = await api('/v1/cluster');
      if (!res.ok) throw new Error(await errorText(res));
      const models = renderCluster(await res.json());
      if (models !== state.modelsSeen) {
        state.modelsSeen = models;
        loadModels().catch(() => undefined);
      }
      setStatus('live', 'live');
    } catch (err) {
      if (err instanceof Error && /API key/.test(err.message)) {
        setStatus('locked', 'API key required');
        await keySaved.promise; // resume once a key is set
        continue;
      }
      setStatus('offline', 'bridge unreachable');
      wait = OFFLINE_RETRY_MS;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

async function pollStats() {
  for (;;) {
    try {
      const res = await api('/v1/collector/stats');
      if (res.ok) renderStats(await res.json());
      else renderStats(undefined, await errorText(res));
    } catch (err) {
      if (err instanceof Error && /API key/.test(err.message)) {
        await keySaved.promise;
        continue;
      }
      renderStats(undefined, 'The bridge cannot be reached.');
    }
    await new Promise((resolve) => setTimeout(resolve, STATS_POLL_MS));
  }
}

setupKeyDialog();
setupChat();
void loadModels().catch(() => undefined);
void pollCluster();
void pollStats();
$('prompt').focus();
