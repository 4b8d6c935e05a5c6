/** Start-up against a JetStream cluster that is still forming: "not yet" is retried, "never" is not. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TimeoutError } from '@nats-io/nats-core';
import { JetStreamApiError } from '@nats-io/jetstream';
import { isJetStreamForming, whileJetStreamForms } from '../../src/cluster/jetstream-forming.ts';

const apiError = (code: number, description: string): Error =>
  new JetStreamApiError({ err_code: code, code: 500, description });

describe('a forming JetStream cluster', () => {
  it('tells "not yet" from "never"', () => {
    assert.equal(isJetStreamForming(apiError(10005, 'no suitable peers for placement')), true);
    assert.equal(isJetStreamForming(apiError(10008, 'JetStream system temporarily unavailable')), true);
    assert.equal(isJetStreamForming(new TimeoutError()), true);
    assert.equal(isJetStreamForming(new Error('no suitable peers for placement')), true);
    assert.equal(isJetStreamForming(apiError(10039, 'jetstream not enabled for account')), false);
    assert.equal(isJetStreamForming(new Error('503')), false);
  });

  it('retries while the cluster forms, and fails at once otherwise', async () => {
    let calls = 0;
    const made = await whileJetStreamForms(() => {
      calls++;
      return calls < 3
        ? Promise.reject(apiError(10005, 'no suitable peers for placement'))
        : Promise.resolve('made');
    });
    assert.deepEqual([made, calls], ['made', 3]);
    calls = 0;
    await assert.rejects(
      whileJetStreamForms(() => {
        calls++;
        return Promise.reject(apiError(10039, 'jetstream not enabled for account'));
      }),
      /not enabled/,
    );
    assert.equal(calls, 1, 'a permanent error is not retried');
    await assert.rejects(
      whileJetStreamForms(() => Promise.reject(apiError(10008, 'temporarily unavailable')), 600),
      /temporarily unavailable/,
      'gives up after its wait',
    );
  });
});
