// Thumbs buttons under a chat reply: each click POSTs /v1/feedback with the reply's response id
// (the `id` of its stream chunks) and says whether the bridge stored it (202) or why not.

import { el } from './dom.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
/** Each rating's icon (thumbs outlines, drawn as paths: no emoji font needed) and label. */
const THUMBS = {
  up: {
    title: 'Good reply',
    path: 'M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.3a2 2 0 0 0 2-1.7l1.4-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3',
  },
  down: {
    title: 'Bad reply',
    path: 'M10 15v4a3 3 0 0 0 3 3l4-9V2H5.7a2 2 0 0 0-2 1.7l-1.4 9a2 2 0 0 0 2 2.3zm7-13h2.7A2.3 2.3 0 0 1 22 4v7a2.3 2.3 0 0 1-2.3 2H17',
  },
};

function icon(d) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', d);
  path.setAttribute('stroke-linejoin', 'round');
  svg.append(path);
  return svg;
}

/**
 * The buttons for the reply `responseId`. `api` is the page's fetch with the API key; `errorText`
 * reads an error answer's message.
 */
export function feedbackButtons(responseId, { api, errorText }) {
  const wrap = el('div', 'feedback');
  const status = el('span', 'feedback-status muted small');
  const buttons = Object.entries(THUMBS).map(([rating, { title, path }]) => {
    const button = el('button', 'thumb ghost small');
    button.append(icon(path));
    button.type = 'button';
    button.title = title;
    button.setAttribute('aria-label', title);
    button.dataset.rating = rating;
    button.addEventListener('click', () => void rate(rating));
    return button;
  });

  async function rate(rating) {
    for (const b of buttons) b.disabled = true;
    status.dataset.state = 'sending';
    status.textContent = 'sending…';
    try {
      const res = await api('/v1/feedback', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: responseId, rating }),
      });
      if (res.status !== 202) throw new Error(await errorText(res));
      for (const b of buttons) b.classList.toggle('chosen', b.dataset.rating === rating);
      status.dataset.state = 'stored';
      status.textContent = 'feedback stored';
    } catch (err) {
      status.dataset.state = 'failed';
      status.textContent = `feedback failed: ${err instanceof Error ? err.message : String(err)}`;
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  wrap.append(...buttons, status);
  return wrap;
}
