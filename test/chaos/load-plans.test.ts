/** How the load is split over clients and doors (no processes started). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { shares } from '../../chaos/load-plans.ts';
import { itemsFor, loadRequests } from '../../chaos/references.ts';

describe('load plans', () => {
  it('shares a count over clients, the remainder on the first ones', () => {
    assert.deepEqual(shares(60, 3), [20, 20, 20]);
    assert.deepEqual(shares(601, 4), [151, 150, 150, 150]);
    assert.equal(
      shares(7, 5).reduce((a, b) => a + b, 0),
      7,
    );
  });

  it('sends every request over NATS; completions over HTTP both ways, chats streamed', () => {
    const items = loadRequests(8).map((request) => ({ request }));
    assert.ok(items.some((i) => i.request.messages !== undefined));
    assert.ok(items.some((i) => i.request.temperature === 1 && i.request.seed === undefined));
    assert.ok(itemsFor(items, 'nats').every((i) => i.via === 'nats'));
    const http = itemsFor(items, 'http');
    for (const i of http) {
      assert.equal(i.via === 'http-chat', i.request.messages !== undefined, JSON.stringify(i));
    }
    assert.deepEqual(new Set(http.map((i) => i.via)), new Set(['http', 'http-stream', 'http-chat']));
  });
});
