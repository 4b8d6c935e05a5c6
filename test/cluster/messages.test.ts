import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidRequestError } from '../../src/errors/errors.ts';
import {
  decodeGenerateRequest,
  encodeGenerateRequest,
  type GenerateRequest,
} from '../../src/cluster/messages/generate.ts';
import { validateGenerateParams } from '../../src/cluster/messages/params.ts';
import {
  decodeSwapCommand,
  decodeSwapReply,
  encodeSwapCommand,
  encodeSwapReply,
} from '../../src/cluster/messages/swap.ts';
import { decodeCompletionEvent, decodeFeedback } from '../../src/cluster/messages/capture.ts';
import { decodeExportRequest, decodePageRequest } from '../../src/cluster/messages/collector.ts';
import {
  decodeAck,
  decodeCancel,
  decodeChunk,
  decodeEnd,
  encodeAck,
  encodeCancel,
  encodeChunk,
  encodeEnd,
  RESUMED_TEXT_MAX_LENGTH,
  type End,
} from '../../src/cluster/messages/stream.ts';
import {
  decodeReplicaHeartbeat,
  decodeRouterHeartbeat,
  encodeReplicaHeartbeat,
  encodeRouterHeartbeat,
  type ReplicaHeartbeat,
} from '../../src/cluster/messages/heartbeat.ts';
import {
  ALL_REPLICA_HEARTBEATS,
  GENERATE_SUBJECT,
  heartbeatSubjectId,
  replicaCancelSubject,
  replicaGenerateSubject,
  replicaHeartbeatSubject,
  routerCancelSubject,
  routerHeartbeatSubject,
} from '../../src/cluster/subjects.ts';

/** Asserts that `fn` throws InvalidRequestError whose message matches `message`. */
function rejects(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidRequestError, `expected InvalidRequestError, got ${String(err)}`);
    assert.equal(err.code, 'invalid_request');
    assert.match(err.message, message);
    return true;
  });
}

const body = (value: unknown): string => JSON.stringify(value);

describe('generate request', () => {
  const valid = { model: 'tiny-gpt2', prompt: 'Hello' };

  it('decodes a minimal and a full request', () => {
    assert.deepEqual(decodeGenerateRequest(body(valid)), { model: 'tiny-gpt2', prompt: 'Hello' });
    const full: GenerateRequest = {
      model: 'tiny_gpt2',
      version: '1.2.0-rc.1',
      promptTokenIds: [1, 2, 3],
      resumeTokenIds: [4, 5],
      maxTokens: 16,
      temperature: 0.7,
      topP: 0.9,
      topK: 40,
      presencePenalty: -1.5,
      frequencyPenalty: 2,
      seed: Number.MAX_SAFE_INTEGER,
      stop: ['\n', 'END'],
    };
    assert.deepEqual(decodeGenerateRequest(encodeGenerateRequest(full)), full);
  });

  it('uses snake_case on the wire and treats null as absent', () => {
    const wire: unknown = JSON.parse(
      new TextDecoder().decode(encodeGenerateRequest({ model: 'm', promptTokenIds: [1], maxTokens: 2 })),
    );
    assert.deepEqual(wire, { model: 'm', prompt_token_ids: [1], max_tokens: 2 });
    assert.deepEqual(decodeGenerateRequest(body({ ...valid, stop: null, seed: null })), valid);
  });

  it('ignores unknown fields (additive protocol changes)', () => {
    assert.deepEqual(decodeGenerateRequest(body({ ...valid, future_field: 1 })), valid);
  });

  it('rejects bodies that are not a JSON object', () => {
    rejects(() => decodeGenerateRequest('{nope'), /generate request body is not valid JSON/);
    rejects(() => decodeGenerateRequest('[1]'), /generate request must be a JSON object, got an array of 1/);
    rejects(() => decodeGenerateRequest(new Uint8Array([0xff, 0xfe])), /not valid UTF-8/);
  });

  it('rejects bad model ids and versions', () => {
    rejects(
      () => decodeGenerateRequest(body({ prompt: 'x' })),
      /^model must be a string matching .*, got nothing$/,
    );
    rejects(() => decodeGenerateRequest(body({ ...valid, model: 'a.b' })), /model must be .*got "a\.b"/);
    rejects(() => decodeGenerateRequest(body({ ...valid, model: 'x'.repeat(65) })), /model must be/);
    rejects(() => decodeGenerateRequest(body({ ...valid, version: 'v 1' })), /version must be .*got "v 1"/);
  });

  it('needs exactly one of prompt, prompt_token_ids and messages', () => {
    rejects(() => decodeGenerateRequest(body({ model: 'm' })), /a prompt is required/);
    rejects(() => decodeGenerateRequest(body({ ...valid, prompt_token_ids: [1] })), /not several/);
    rejects(() => decodeGenerateRequest(body({ model: 'm', prompt: '' })), /prompt must not be empty/);
    rejects(() => decodeGenerateRequest(body({ model: 'm', prompt: 7 })), /prompt must be a string, got 7/);
    rejects(
      () => decodeGenerateRequest(body({ model: 'm', prompt_token_ids: [] })),
      /prompt must not be empty/,
    );
    rejects(
      () => decodeGenerateRequest(body({ model: 'm', prompt_token_ids: [1, -2] })),
      /prompt_token_ids\[1\] must be an integer between 0 and 2147483647, got -2/,
    );
    rejects(
      () => decodeGenerateRequest(body({ model: 'm', prompt_token_ids: [1.5] })),
      /prompt_token_ids\[0\] must be an integer/,
    );
  });

  it('checks resume_token_ids', () => {
    rejects(
      () => decodeGenerateRequest(body({ ...valid, resume_token_ids: 'abc' })),
      /resume_token_ids must be an array of integers/,
    );
    assert.deepEqual(decodeGenerateRequest(body({ ...valid, resume_token_ids: [] })).resumeTokenIds, []);
  });

  const cases: [string, unknown, RegExp][] = [
    ['max_tokens', -3, /^max_tokens must be an integer between 1 and 1048576, got -3$/],
    ['max_tokens', 0, /max_tokens must be an integer/],
    ['max_tokens', 1.5, /max_tokens must be an integer/],
    ['max_tokens', '10', /max_tokens must be an integer .*, got "10"/],
    ['temperature', 2.5, /^temperature must be a number between 0 and 2, got 2.5$/],
    ['temperature', -0.1, /temperature must be a number between 0 and 2/],
    ['temperature', true, /temperature must be a number .*, got true/],
    ['top_p', 0, /^top_p must be a number in \(0, 1\], got 0$/],
    ['top_p', 1.01, /top_p must be a number in \(0, 1\]/],
    ['top_k', -1, /^top_k must be an integer >= 0, got -1$/],
    ['top_k', 2.5, /top_k must be an integer >= 0, got 2.5/],
    ['presence_penalty', -2.5, /^presence_penalty must be a number between -2 and 2, got -2.5$/],
    ['frequency_penalty', 3, /^frequency_penalty must be a number between -2 and 2, got 3$/],
    ['seed', -1, /^seed must be an integer between 0 and 9007199254740991, got -1$/],
    ['seed', 2 ** 53, /seed must be an integer/],
    ['stop', 'END', /^stop must be an array of strings, got "END"$/],
    ['stop', ['a', 'b', 'c', 'd', 'e'], /^stop must have at most 4 entries, got 5$/],
    ['stop', ['a', ''], /^stop\[1\] must be a string of 1 to 256 characters, got 0 characters$/],
    ['stop', [3], /^stop\[0\] must be a string, got 3$/],
  ];
  for (const [field, value, message] of cases) {
    it(`rejects ${field} = ${JSON.stringify(value)}`, () => {
      rejects(() => decodeGenerateRequest(body({ ...valid, [field]: value })), message);
    });
  }

  it('validateGenerateParams catches what JSON cannot carry (NaN, Infinity)', () => {
    rejects(
      () => validateGenerateParams({ prompt: 'x', temperature: NaN }),
      /temperature must be a number between 0 and 2, got NaN/,
    );
    rejects(
      () => validateGenerateParams({ prompt: 'x', maxTokens: Infinity }),
      /max_tokens must be an integer/,
    );
    assert.deepEqual(validateGenerateParams({ prompt: 'x', temperature: 0, topP: 1, topK: 0, stop: [] }), {
      prompt: 'x',
      temperature: 0,
      topP: 1,
      topK: 0,
      stop: [],
    });
  });
});

describe('stream messages', () => {
  it('round-trip ack, chunk, end and cancel', () => {
    assert.deepEqual(decodeAck(encodeAck({ by: 'router-1', seed: 42, attempt: 1 })), {
      by: 'router-1',
      seed: 42,
      attempt: 1,
    });
    assert.deepEqual(decodeAck(encodeAck({ by: 'r1' })), { by: 'r1' });
    const chunk = { seq: 0, attempt: 2, tokenIds: [1, 2], text: 'hé', seed: 7 };
    assert.deepEqual(decodeChunk(encodeChunk(chunk)), chunk);
    const end: End = {
      seq: 3,
      attempt: 2,
      finishReason: 'length',
      usage: { promptTokens: 5, completionTokens: 9 },
      attempts: 2,
    };
    assert.deepEqual(decodeEnd(encodeEnd(end)), end);
    const cancel = { requestId: 'cmpl-abc:1', attempt: 1, reason: 'client gone' };
    assert.deepEqual(decodeCancel(encodeCancel(cancel)), cancel);
  });

  it('round-trip and check the fields added for exact ends and peer identity', () => {
    const chunk = { seq: 0, attempt: 1, tokenIds: [1], text: 'a', maxTokens: 0 };
    assert.deepEqual(decodeChunk(encodeChunk(chunk)), chunk);
    const end: End = {
      seq: 1,
      attempt: 1,
      finishReason: 'stop',
      usage: { promptTokens: 1, completionTokens: 1 },
      attempts: 1,
      text: ' held',
    };
    assert.deepEqual(decodeEnd(encodeEnd(end)), end);
    const cancel = { requestId: 'r1', origin: 'router-a', reply: '_INBOX_client.x.1', attempt: 2 };
    assert.deepEqual(decodeCancel(encodeCancel(cancel)), cancel);
    const base = { seq: 0, attempt: 1, token_ids: [1], text: 'a' };
    rejects(() => decodeChunk(body({ ...base, max_tokens: -1 })), /^max_tokens must be an integer >= 0/);
    rejects(() => decodeChunk(body({ ...base, max_tokens: '5' })), /^max_tokens must be an integer/);
    const wireEnd = {
      seq: 0,
      attempt: 1,
      finish_reason: 'stop',
      usage: { prompt_tokens: 1, completion_tokens: 0 },
      attempts: 1,
    };
    rejects(() => decodeEnd(body({ ...wireEnd, text: 7 })), /^text must be a string/);
    rejects(
      () => decodeEnd(body({ ...wireEnd, text: 'x'.repeat(70_000) })),
      /^text must be a string of at most 65536 characters/,
    );
    rejects(
      () => decodeCancel(body({ request_id: 'r', origin: 'a.b' })),
      /^origin must be a string matching/,
    );
    rejects(() => decodeCancel(body({ request_id: 'r', reply: 'sy.v1.>' })), /^reply must be/);
  });

  it('reject malformed bodies naming the field', () => {
    rejects(() => decodeAck(body({ by: 'a b' })), /^by must be a string matching/);
    rejects(
      () => decodeAck(body({ by: 'r', attempt: 0 })),
      /^attempt must be an integer between 1 and 1000, got 0$/,
    );
    rejects(
      () => decodeChunk(body({ seq: -1, attempt: 1, token_ids: [], text: '' })),
      /^seq must be an integer >= 0, got -1$/,
    );
    rejects(
      () => decodeChunk(body({ seq: 0, attempt: 1, token_ids: [1], text: null })),
      /^text must be a string, got null$/,
    );
    rejects(
      () => decodeChunk(body({ seq: 0, attempt: 1, text: '' })),
      /^token_ids must be an array of integers, got nothing$/,
    );
    const end = {
      seq: 0,
      attempt: 1,
      finish_reason: 'stop',
      usage: { prompt_tokens: 1, completion_tokens: 0 },
      attempts: 1,
    };
    assert.equal(decodeEnd(body(end)).finishReason, 'stop');
    rejects(
      () => decodeEnd(body({ ...end, finish_reason: 'eos' })),
      /^finish_reason must be one of 'stop', 'length', 'cancelled', got "eos"$/,
    );
    rejects(() => decodeEnd(body({ ...end, usage: [] })), /^usage must be a JSON object, got an array of 0$/);
    rejects(
      () => decodeEnd(body({ ...end, usage: { prompt_tokens: 1 } })),
      /^usage.completion_tokens must be an integer >= 0, got nothing$/,
    );
    rejects(() => decodeCancel(body({ request_id: 'has space' })), /^request_id must be a string matching/);
    rejects(
      () => decodeCancel(body({ request_id: 'x', reason: 'r'.repeat(300) })),
      /^reason must be a string of at most 256 characters, got 300/,
    );
  });
});

describe('heartbeats', () => {
  const replica: ReplicaHeartbeat = {
    id: 'replica-0',
    model: 'tiny-gpt2',
    modelVersion: '1.0.0',
    device: 'cuda:0',
    state: 'ready',
    queueDepth: 2,
    activeSequences: 8,
    maxBatchSize: 32,
    maxQueue: 64,
    freeTokenBudget: 1000,
    tokenBudget: 16384,
    progress: 12345,
    busySince: 1_700_000_000_000,
    stepStartedAt: 1_700_000_000_400,
    stepTokens: 4096,
    stepExpectedMs: 5200,
    sentAt: 1_700_000_000_500,
    intervalMs: 500,
  };

  it('round-trip; busy_since null or absent means idle', () => {
    assert.deepEqual(decodeReplicaHeartbeat(encodeReplicaHeartbeat(replica)), replica);
    assert.equal(
      decodeReplicaHeartbeat(encodeReplicaHeartbeat({ ...replica, busySince: null })).busySince,
      null,
    );
    const { busy_since: _, ...wire } = JSON.parse(
      new TextDecoder().decode(encodeReplicaHeartbeat(replica)),
    ) as Record<string, unknown>;
    assert.equal(decodeReplicaHeartbeat(body(wire)).busySince, null);
    const router = { id: 'router-a', state: 'draining' as const, inFlight: 3, sentAt: 1, intervalMs: 1000 };
    assert.deepEqual(decodeRouterHeartbeat(encodeRouterHeartbeat(router)), router);
  });

  it('step_started_at and step_tokens are optional: absent (an older replica) means no step running', () => {
    const {
      step_started_at: _s,
      step_tokens: _t,
      step_expected_ms: _e,
      ...wire
    } = JSON.parse(new TextDecoder().decode(encodeReplicaHeartbeat(replica))) as Record<string, unknown>;
    const decoded = decodeReplicaHeartbeat(body(wire));
    assert.equal(decoded.stepStartedAt, null);
    assert.equal(decoded.stepTokens, 0);
    assert.equal(decoded.stepExpectedMs, 0);
    assert.equal(decodeReplicaHeartbeat(body({ ...wire, step_started_at: null })).stepStartedAt, null);
    rejects(() => decodeReplicaHeartbeat(body({ ...wire, step_expected_ms: -5 })), /step_expected_ms/);
    rejects(() => decodeReplicaHeartbeat(body({ ...wire, step_expected_ms: '9e99' })), /step_expected_ms/);
    rejects(() => decodeReplicaHeartbeat(body({ ...wire, step_expected_ms: 1.5 })), /step_expected_ms/);
    rejects(
      () => decodeReplicaHeartbeat(body({ ...wire, step_tokens: -1 })),
      /^step_tokens must be an integer >= 0/,
    );
    rejects(
      () => decodeReplicaHeartbeat(body({ ...wire, step_started_at: 'soon' })),
      /^step_started_at must be an integer >= 0/,
    );
  });

  it('reject bad fields', () => {
    const wire = JSON.parse(new TextDecoder().decode(encodeReplicaHeartbeat(replica))) as Record<
      string,
      unknown
    >;
    rejects(
      () => decodeReplicaHeartbeat(body({ ...wire, state: 'dead' })),
      /^state must be one of 'starting', 'ready', 'draining', 'stopped', got "dead"$/,
    );
    rejects(
      () => decodeReplicaHeartbeat(body({ ...wire, progress: -1 })),
      /^progress must be an integer >= 0/,
    );
    rejects(
      () => decodeReplicaHeartbeat(body({ ...wire, interval_ms: 0 })),
      /^interval_ms must be an integer between 1 and 60000, got 0$/,
    );
    rejects(
      () => decodeReplicaHeartbeat(body({ ...wire, max_batch_size: 0 })),
      /^max_batch_size must be an integer >= 1/,
    );
    rejects(
      () => decodeRouterHeartbeat(body({ id: 'r', state: 'ready', sent_at: 1, interval_ms: 1 })),
      /^in_flight must be an integer >= 0, got nothing$/,
    );
  });
});

describe('subjects', () => {
  it('are built from validated ids under the version prefix', () => {
    assert.equal(GENERATE_SUBJECT, 'sy.v1.generate');
    assert.equal(replicaGenerateSubject('r-1'), 'sy.v1.replica.r-1.generate');
    assert.equal(replicaCancelSubject('r_1'), 'sy.v1.replica.r_1.cancel');
    assert.equal(routerCancelSubject('a'), 'sy.v1.router.a.cancel');
    assert.equal(replicaHeartbeatSubject('r1'), 'sy.v1.hb.replica.r1');
    assert.equal(routerHeartbeatSubject('a'), 'sy.v1.hb.router.a');
    assert.equal(ALL_REPLICA_HEARTBEATS, 'sy.v1.hb.replica.*');
    rejects(
      () => replicaGenerateSubject('r.1'),
      /^replica id must match \[A-Za-z0-9_-\]\{1,64\}, got "r\.1"$/,
    );
    rejects(() => routerCancelSubject('>'), /router id must match/);
    rejects(() => replicaHeartbeatSubject(''), /replica id must match/);
  });

  it('parse heartbeat subjects back to role and id', () => {
    assert.deepEqual(heartbeatSubjectId(replicaHeartbeatSubject('r1')), { role: 'replica', id: 'r1' });
    assert.deepEqual(heartbeatSubjectId(routerHeartbeatSubject('a-b')), { role: 'router', id: 'a-b' });
    assert.equal(heartbeatSubjectId('sy.v2.hb.replica.r1'), undefined);
    assert.equal(heartbeatSubjectId('sy.v1.hb.other.r1'), undefined);
    assert.equal(heartbeatSubjectId(GENERATE_SUBJECT), undefined);
  });
});

describe('capture fields on the wire', () => {
  it('cancel `resending`, end `resumed_text` and `model_sha256` round-trip and refuse the wrong shape', () => {
    const cancel = { requestId: 'r1', reply: '_INBOX_client.x.1', resending: true };
    assert.deepEqual(decodeCancel(encodeCancel(cancel)), cancel);
    rejects(() => decodeCancel(body({ request_id: 'r1', resending: 'yes' })), /^resending must be a boolean/);
    const end: End = {
      seq: 1,
      attempt: 2,
      finishReason: 'length',
      usage: { promptTokens: 1, completionTokens: 1 },
      attempts: 2,
      resumedText: 'earlier',
      modelSha256: 'a'.repeat(64),
    };
    assert.deepEqual(decodeEnd(encodeEnd(end)), end);
    const wire = {
      seq: 0,
      attempt: 1,
      finish_reason: 'stop',
      usage: { prompt_tokens: 1, completion_tokens: 0 },
      attempts: 1,
    };
    rejects(
      () => decodeEnd(body({ ...wire, model_sha256: 'not-hex' })),
      /^model_sha256 must be a string matching 64 hex digits/,
    );
    rejects(() => decodeEnd(body({ ...wire, resumed_text: 5 })), /^resumed_text must be a string/);
    rejects(
      () => decodeEnd(body({ ...wire, resumed_text: 'x'.repeat(RESUMED_TEXT_MAX_LENGTH + 1) })),
      /^resumed_text must be a string of at most 262144 characters/,
    );
    // Past the limit the sender leaves it out (the router marks the text incomplete) rather than fail the end.
    const long = decodeEnd(encodeEnd({ ...end, resumedText: 'x'.repeat(RESUMED_TEXT_MAX_LENGTH + 1) }));
    assert.equal(long.resumedText, undefined);
  });

  it('feedback and dataset requests refuse forged or malformed fields, naming them', () => {
    const fb = { request_id: 'r1', rating: 1, received_at: '2026-12-01T00:00:00.000Z' };
    assert.equal(
      decodeFeedback(body({ ...fb, requester: '_INBOX_client.a.b' })).requester,
      '_INBOX_client.a.b',
    );
    rejects(
      () => decodeFeedback(body({ ...fb, requester: 'a b' })),
      /^requester must be a string matching a NATS inbox prefix/,
    );
    rejects(() => decodeFeedback(body({ ...fb, rating: 2 })), /^rating must be/);
    rejects(
      () => decodeFeedback(body({ ...fb, request_id: 'x'.repeat(200) })),
      /^request_id must be a string matching/,
    );
    rejects(
      () => decodeFeedback(body({ ...fb, tags: Array(17).fill('t') })),
      /^tags must be an array of at most 16/,
    );
    rejects(
      () => decodeExportRequest(body({ format: 'csv' })),
      /^format must be one of 'sft', 'preference', 'kto'/,
    );
    rejects(
      () => decodeExportRequest(body({ format: 'sft', filters: { min_rating: 'high' } })),
      /^min_rating must be/,
    );
    rejects(
      () => decodeExportRequest(body({ format: 'sft', filters: { modle: 'x' } })),
      /^unknown dataset filter modle/,
    );
    rejects(
      () => decodePageRequest(body({ snapshot: '', offset: 0 })),
      /^snapshot must be a string of 1 to 64/,
    );
    rejects(
      () => decodePageRequest(body({ snapshot: 's', offset: -1 })),
      /^offset must be an integer between 0 and/,
    );
    rejects(() => decodeCompletionEvent(body({ v: 1, request_id: 'r1' })), /must be/);
  });
});

describe('version fields on the wire (hot swap, pinning)', () => {
  const hb: ReplicaHeartbeat = {
    id: 'replica-0',
    model: 'tiny-gpt2',
    modelVersion: '2',
    device: 'cpu',
    state: 'ready',
    queueDepth: 0,
    activeSequences: 1,
    maxBatchSize: 8,
    maxQueue: 8,
    freeTokenBudget: 100,
    tokenBudget: 100,
    progress: 1,
    busySince: null,
    stepStartedAt: null,
    stepTokens: 0,
    stepExpectedMs: 0,
    sentAt: 1,
    intervalMs: 200,
    modelDigest: 'b'.repeat(64),
    retiringVersions: ['1'],
    swappingTo: '3',
    swapError: 'swap to registry://tiny-gpt2@4 failed: corrupt',
  };
  const wire = (): Record<string, unknown> =>
    JSON.parse(new TextDecoder().decode(encodeReplicaHeartbeat(hb))) as Record<string, unknown>;

  it('heartbeat digest, retiring versions and swap state round-trip and refuse the wrong shape', () => {
    assert.deepEqual(decodeReplicaHeartbeat(encodeReplicaHeartbeat(hb)), hb);
    rejects(() => decodeReplicaHeartbeat(body({ ...wire(), model_digest: 'xyz' })), /^model_digest/);
    rejects(() => decodeReplicaHeartbeat(body({ ...wire(), retiring_versions: '1' })), /^retiring_versions/);
    rejects(
      () =>
        decodeReplicaHeartbeat(body({ ...wire(), retiring_versions: Array.from({ length: 17 }, () => '1') })),
      /^retiring_versions/,
    );
    rejects(
      () => decodeReplicaHeartbeat(body({ ...wire(), retiring_versions: ['a b'] })),
      /retiring_versions\[0\]/,
    );
    rejects(() => decodeReplicaHeartbeat(body({ ...wire(), swapping_to: 7 })), /^swapping_to/);
    rejects(() => decodeReplicaHeartbeat(body({ ...wire(), swap_error: 'x'.repeat(513) })), /^swap_error/);
    // A swap error longer than the wire allows is cut by the sender, never refused by its monitors.
    const long = { ...hb, swapError: 'y'.repeat(2_000) };
    assert.equal(decodeReplicaHeartbeat(encodeReplicaHeartbeat(long)).swapError?.length, 512);
  });

  it('the pinned version in acks and chunks round-trips and refuses the wrong shape', () => {
    const ack = { by: 'router-1', seed: 3, modelVersion: '2' };
    assert.deepEqual(decodeAck(encodeAck(ack)), ack);
    rejects(() => decodeAck(body({ by: 'router-1', model_version: 2 })), /^model_version/);
    rejects(() => decodeAck(body({ by: 'router-1', model_version: '../etc' })), /^model_version/);
    const chunk = { seq: 0, attempt: 1, tokenIds: [1], text: 'a', modelVersion: '1.0' };
    assert.deepEqual(decodeChunk(encodeChunk(chunk)), chunk);
    rejects(
      () => decodeChunk(body({ seq: 0, attempt: 1, token_ids: [], text: '', model_version: 'v'.repeat(65) })),
      /^model_version/,
    );
  });

  it('swap commands and replies refuse the wrong shape; a failed swap comes back typed', () => {
    assert.deepEqual(decodeSwapCommand(encodeSwapCommand({ model: 'registry://m@2' })), {
      model: 'registry://m@2',
    });
    rejects(() => decodeSwapCommand(body({ model: 5 })), /^model/);
    rejects(() => decodeSwapCommand(body({ model: '' })), /^model/);
    rejects(() => decodeSwapCommand(body({ model: 'x'.repeat(4_097) })), /^model/);
    rejects(() => decodeSwapCommand('not json'), /swap command/);
    const done = { version: '2', digest: 'c'.repeat(64), swapped: true };
    assert.deepEqual(decodeSwapReply(encodeSwapReply(done)), done);
    const failed = decodeSwapReply(encodeSwapReply({ error: new InvalidRequestError('other model') }));
    assert.ok(
      'error' in failed && failed.error.code === 'invalid_request' && failed.error.message === 'other model',
    );
    // An unknown code from a peer is internal, never trusted as something else.
    const odd = decodeSwapReply(body({ error: { code: 'nonsense', message: 'x' } }));
    assert.ok('error' in odd && odd.error.code === 'internal');
    rejects(() => decodeSwapReply(body({ version: '2', digest: 'short' })), /^digest/);
  });
});
