/**
 * The web page in headless Chromium against a real cluster (nats-server, a router and two
 * replica processes, a bridge with API keys): the page asks for a key when the bridge says 401,
 * lists the replicas, streams a reply token by token (the same text the API gives for the same
 * greedy request), its thumbs store feedback on the reply in the SY_FEEDBACK stream, its stats
 * panel shows what a (fake) collector answers, and its stop button cancels the generation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Msg, Subscription } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { createAuthenticator } from '../../src/bridge/auth.ts';
import { ensureCaptureStreams } from '../../src/capture/streams.ts';
import { decodeFeedback } from '../../src/cluster/messages/capture.ts';
import { FEEDBACK_STREAM, FEEDBACK_SUBJECT, collectorSubject } from '../../src/cluster/subjects.ts';
import { injectFault } from '../helpers/cluster.ts';
import { browserSkipReason, launchBrowser, type TestBrowser } from '../helpers/browser.ts';
import { MODEL, startCluster, waitFor, type TestCluster } from './harness.ts';

const KEY = 'sy-browser-test-key-0123456789abcdef';
/** Page interactions wait this long at most (model load and first steps on a busy 2-core machine). */
const UI_TIMEOUT_MS = 30_000;
/** A stopped reply must leave the replica's batch within this (heartbeats come every ~0.5 s). */
const STOP_WITHIN_MS = 5_000;

const skip = browserSkipReason();

/** What the fake collector answers once it has stats (the shape `switchyard dataset stats --json` has). */
const STATS = {
  versions: [
    {
      model: MODEL,
      version: '1',
      requests: 10,
      completed: 9,
      errors: { busy: 1 },
      error_rate: 0.1,
      latency_ms: {
        ttft: { p50: 12, p90: 20, p99: 30, count: 9 },
        tpot: { p50: 2, p90: 3, p99: 4, count: 9 },
        duration: { p50: 100, p90: 150, p99: 200, count: 9 },
      },
      tokens: { prompt: 50, completion: 90 },
      feedback: { count: 3, rating_mean: 0.6667, thumbs_up: 2, thumbs_down: 1, corrections: 0 },
    },
  ],
};

describe('web page', { skip }, () => {
  let cluster: TestCluster;
  let browser: TestBrowser;
  let url: string;
  let collector: Subscription;
  /** What the fake collector answers now: no version until the stats test sets STATS. */
  let stats: object = { versions: [] };

  const api = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${KEY}`, ...init.headers } });

  before(async () => {
    cluster = await startCluster([{ id: 'r1' }, { id: 'r2' }], {
      policies: { auth: createAuthenticator({ keys: [{ id: 'browser', key: KEY }] }) },
    });
    url = cluster.bridges[0]!.url;
    // The collector's parts the page uses: the feedback stream, and a stats responder.
    await ensureCaptureStreams(cluster.nc, { storage: 'memory' });
    collector = cluster.nc.subscribe(collectorSubject('stats'), {
      callback: (_err, msg: Msg) => void msg.respond(JSON.stringify(stats)),
    });
    await cluster.nc.flush();
    browser = await launchBrowser();
  });

  after(async () => {
    collector?.unsubscribe();
    await browser?.close();
    await cluster?.close();
  });

  it('loads and asks for an API key when the bridge answers 401', async () => {
    const { page } = browser;
    await page.goto(url);
    assert.equal(await page.title(), 'switchyard');
    await page.locator('#key-dialog[open]').waitFor({ timeout: UI_TIMEOUT_MS });
    assert.match(await page.locator('#key-reason').innerText(), /missing API key/);
    await page.fill('#key-input', KEY);
    await page.click('#key-save');
    await page.locator('#status[data-state="live"]').waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await page.evaluate('sessionStorage.getItem("switchyard.apiKey")'), KEY);
  });

  it('lists the replicas with their model, version, state and load', async () => {
    const { page } = browser;
    const rows = page.locator('#replicas tbody tr');
    await waitFor('both replicas in the table', async () => (await rows.count()) === 2, UI_TIMEOUT_MS);
    const text = await page.locator('#replicas tbody').innerText();
    assert.match(text, /r1/);
    assert.match(text, /r2/);
    assert.match(text, new RegExp(MODEL));
    assert.equal(await page.locator('#replicas .badge[data-state="ready"]').count(), 2);
    assert.equal(await page.locator('#replicas .bar.batch').count(), 2);
    assert.equal(await page.locator('#tile-replicas').innerText(), '2 / 2');
    const option = page.locator(`#model option[value="${MODEL}"]`);
    await option.waitFor({ state: 'attached', timeout: UI_TIMEOUT_MS });
  });

  it('streams a reply into the page, token by token, the same text the API gives', async () => {
    const { page } = browser;
    await page.selectOption('#model', MODEL);
    await page.locator('#temperature').fill('0');
    await page.fill('#max-tokens', '40');
    // Count the text updates of the reply as they happen: more than one means it streamed.
    await page.evaluate(`
      window.syUpdates = 0;
      new MutationObserver(() => window.syUpdates++).observe(document.getElementById('messages'), {
        subtree: true,
        characterData: true,
        childList: true,
      });
    `);
    const prompt = 'The cluster said';
    await page.fill('#prompt', prompt);
    await page.press('#prompt', 'Enter');
    const reply = page.locator('.msg.assistant').last();
    await reply.locator('.meta .chip').first().waitFor({ timeout: UI_TIMEOUT_MS });
    const shown = await reply.locator('.content').innerText();
    const updates = Number(await page.evaluate('window.syUpdates'));
    assert.ok(updates > 3, `the reply arrived in ${updates} updates: it did not stream`);
    assert.match(await reply.locator('.meta').innerText(), /tokens/);

    const res = await api('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: MODEL,
        messages: [{ role: 'user', content: prompt }],
        temperature: 0,
        max_tokens: 40,
      }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { choices: Array<{ message: { content: string } }> };
    const expected = body.choices[0]?.message.content ?? '';
    assert.ok(expected.length > 0);
    // innerText trims trailing whitespace of the bubble; compare what is visible.
    assert.equal(shown.trim(), expected.trim());
    // The 401s that made the page ask for a key are logged by Chromium; nothing else may be.
    assert.deepEqual(
      browser.errors.filter((e) => !/status of 401/.test(e)),
      [],
    );
  });

  it('thumbs up on a reply stores feedback on that reply in the feedback stream', async () => {
    const { page } = browser;
    const reply = page.locator('.msg.assistant').last();
    const responseId = await reply.getAttribute('data-response-id');
    assert.match(responseId ?? '', /^chatcmpl-browser:/);
    await reply.locator('.feedback button[data-rating="up"]').click();
    await reply.locator('.feedback-status[data-state="stored"]').waitFor({ timeout: UI_TIMEOUT_MS });
    assert.equal(await reply.locator('.feedback button.chosen').getAttribute('data-rating'), 'up');
    const jsm = await jetstreamManager(cluster.nc);
    const stored = await jsm.streams.getMessage(FEEDBACK_STREAM, { last_by_subj: FEEDBACK_SUBJECT });
    assert.ok(stored !== null, 'the feedback stream holds the item');
    const item = decodeFeedback(stored.data);
    assert.equal(item.request_id, responseId?.slice('chatcmpl-'.length));
    assert.equal(item.thumbs, 'up');
    assert.equal(item.rating, 1);
    assert.equal(item.api_key_id, 'browser');
  });

  it("the stats panel shows the collector's numbers per version", async () => {
    const { page } = browser;
    await page
      .locator('#stats-empty', { hasText: 'No captured request yet' })
      .waitFor({ timeout: UI_TIMEOUT_MS });
    stats = STATS;
    const row = page.locator(`#stats tbody tr[data-version="${MODEL}@1"]`);
    await row.waitFor({ timeout: UI_TIMEOUT_MS });
    const field = (name: string): Promise<string> => row.locator(`td[data-field="${name}"]`).innerText();
    assert.equal(await field('requests'), '10');
    assert.equal(await field('error_rate'), '10.0%');
    assert.equal(await field('ttft_p50'), '12 ms');
    assert.equal(await field('ttft_p99'), '30 ms');
    assert.equal(await field('tpot_p50'), '2.0 ms');
    assert.equal(await field('feedback_count'), '3');
    assert.equal(await field('rating_mean'), '0.67');
    assert.ok(await page.locator('#stats-empty').isHidden());
  });

  it('the stop button cancels the generation', async () => {
    const { page } = browser;
    // Slow both replicas so the reply is still running when the button is pressed.
    await Promise.all(['r1', 'r2'].map((id) => injectFault(cluster.nc, id, { step_delay_ms: 100 })));
    try {
      await page.fill('#max-tokens', '400');
      await page.fill('#prompt', 'Go on for a long time');
      await page.press('#prompt', 'Enter');
      const reply = page.locator('.msg.assistant').last();
      await page.locator('#send.stop').waitFor({ timeout: UI_TIMEOUT_MS });
      await waitFor('the first tokens', async () => (await reply.locator('.content').innerText()).length > 0);
      await page.click('#send');
      await reply.locator('.chip.finish-stopped').waitFor({ timeout: UI_TIMEOUT_MS });
      assert.equal(await page.locator('#send').innerText(), 'Send');
      // 400 tokens at >= 100 ms a step would run for 40 s: only a cancel frees the batch this soon.
      const stoppedAt = Date.now();
      await waitFor(
        'the replicas to drop the cancelled sequence',
        async () => {
          const snap = (await (await api('/v1/cluster')).json()) as {
            replicas: Array<{ active_sequences: number }>;
          };
          return snap.replicas.every((r) => r.active_sequences === 0);
        },
        STOP_WITHIN_MS,
      );
      assert.ok(Date.now() - stoppedAt < STOP_WITHIN_MS);
    } finally {
      await Promise.all(['r1', 'r2'].map((id) => injectFault(cluster.nc, id, { step_delay_ms: 0 })));
    }
  });
});
