// Thumbs buttons under a chat reply: each click POSTs /v1/feedback with the reply's response id
// (the `id` of its stream chunks) and says whether the bridge stored it (202) or why not.

import { el } from './dom.js';

const LABELS = { up: ['👍', 'Good reply'], down: ['👎', 'Bad reply'] };

/**
 * The buttons for the reply `responseId`. `api` is the page's fetch with the API key; `errorText`
 * reads an error answer's message.
 */
export function feedbackButtons(responseId, { api, errorText }) {
  const wrap = el('div', 'feedback');
  const status = el('span', 'feedback-status muted small');
  const buttons = Object.entries(LABELS).map(([rating, [glyph, title]]) => {
    const button = el('button', 'thumb ghost small', glyph);
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
