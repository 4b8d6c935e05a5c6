/**
 * The hostile-traffic classifier of the chaos suite (chaos/hostile.ts): NATS wildcard matching,
 * and which role may publish where, as the permission table says; the catalogue's bodies stay
 * under max_payload where they mean to. No server: the scenarios check the classification
 * against nats-server's refusals.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attackCatalogue } from '../../chaos/hostile-attacks.ts';
import { NATS_MAX_PAYLOAD_BYTES, mayPublish, subjectMatches } from '../../chaos/hostile.ts';
import {
  GENERATE_SUBJECT,
  replicaFaultSubject,
  replicaGenerateSubject,
  replicaHeartbeatSubject,
  routerCancelSubject,
} from '../../src/cluster/subjects.ts';

const CTX = { kvBuckets: ['sy_rate_limits'] };

describe('hostile traffic classifier', () => {
  it('matches NATS wildcards token by token', () => {
    assert.equal(subjectMatches('sy.v1.replica.*.generate', 'sy.v1.replica.rp1.generate'), true);
    assert.equal(subjectMatches('sy.v1.replica.*.generate', 'sy.v1.replica.rp1.cancel'), false);
    assert.equal(subjectMatches('sy.v1.hb.>', 'sy.v1.hb.replica.rp1'), true);
    assert.equal(subjectMatches('sy.v1.hb.>', 'sy.v1.hb'), false);
    assert.equal(subjectMatches('>', '_INBOX.x'), true);
    assert.equal(subjectMatches('sy.v1.generate sy-routers', 'sy.v1.generate'), true);
    assert.equal(subjectMatches('sy.v1.generate', 'sy.v1.generate.x'), false);
  });

  it('classifies each role as the permission table does', () => {
    const front = GENERATE_SUBJECT;
    assert.equal(mayPublish('client', 'client', front, CTX), true);
    assert.equal(mayPublish('bridge', 'br1', front, CTX), true);
    assert.equal(mayPublish('router', 'rt1', front, CTX), false);
    assert.equal(mayPublish('replica', 'rp1', front, CTX), false);
    assert.equal(mayPublish('router', 'rt1', replicaGenerateSubject('rp1'), CTX), true);
    assert.equal(mayPublish('client', 'client', replicaGenerateSubject('rp1'), CTX), false);
    assert.equal(mayPublish('client', 'client', routerCancelSubject('rt2'), CTX), true);
    assert.equal(mayPublish('replica', 'rp1', replicaHeartbeatSubject('rp1'), CTX), true);
    assert.equal(mayPublish('replica', 'rp1', replicaHeartbeatSubject('rp2'), CTX), false);
    assert.equal(mayPublish('router', 'rt1', replicaFaultSubject('rp1'), CTX), false);
    assert.equal(mayPublish('operator', 'operator', replicaFaultSubject('rp1'), CTX), true);
    assert.equal(mayPublish('replica', 'rp1', '_INBOX_router.rt1.x.1', CTX), true);
    assert.equal(mayPublish('replica', 'rp1', '_INBOX_client.x.1', CTX), false);
    // No table (an insecure cluster): everything is permitted.
    assert.equal(mayPublish(undefined, 'anyone', replicaFaultSubject('rp1'), CTX), true);
  });

  it('keeps every catalogue body under max_payload, and has each class', () => {
    const attacks = attackCatalogue({
      routers: ['rt1', 'rt2'],
      replicas: ['rp1', 'rp2'],
      model: 'tiny-gpt2',
      loadIds: ['load1-0', 'load1-1'],
      selfId: 'rp1',
      squatId: 'load1-1',
    });
    assert.ok(attacks.length >= 8, `${attacks.length} classes`);
    for (const a of attacks) {
      assert.ok(a.messages.length > 0, a.name);
      for (const m of a.messages) {
        assert.ok(m.data.length < NATS_MAX_PAYLOAD_BYTES, `${a.name}: ${m.label}`);
      }
    }
    const labels = attacks.flatMap((a) => a.messages.map((m) => m.label)).join('\n');
    for (const kind of [
      'malformed JSON',
      'wrong type',
      'forged header',
      'just under max_payload',
      'cancel of',
    ]) {
      assert.ok(labels.includes(kind), kind);
    }
  });
});
