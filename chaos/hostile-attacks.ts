/**
 * The catalogue of hostile messages (chaos/hostile.ts sends them): one attack class per kind of
 * subject the cluster uses, each with malformed, mistyped, forged and oversized variants. What a
 * message should get back is the protocol's answer (docs/protocol.md): an `error` for a bad
 * generate request, `{ok:false}` for a bad fault command, nothing for a bad heartbeat or cancel.
 */
import { HEADERS } from '../src/cluster/headers.ts';
import {
  GENERATE_SUBJECT,
  replicaCancelSubject,
  replicaFaultSubject,
  replicaGenerateSubject,
  replicaHeartbeatSubject,
  routerCancelSubject,
  routerHeartbeatSubject,
} from '../src/cluster/subjects.ts';
import { NATS_MAX_PAYLOAD_BYTES, forged, type Attack, type HostileMessage } from './hostile.ts';

/** Room left under max_payload for the subject, reply and headers of a just-under body. */
const JUST_UNDER_MARGIN_BYTES = 4_096;
/** Tokens a valid hostile request asks for: enough to be a real stream, cheap on 2 cores. */
const HOSTILE_MAX_TOKENS = 4;
/** A tracestate far over the 1024 characters the actors keep. */
const LONG_HEADER_CHARS = 4_000;

/** What the catalogue needs to know about the running cluster. */
export interface AttackTargets {
  routers: string[];
  replicas: string[];
  /** The model the load uses. */
  model: string;
  /** Request ids of the load that are in flight or done (cancels and resends of others' requests). */
  loadIds: string[];
  /** The sender's own id, for "its own subject" variants (a replica's own heartbeat). */
  selfId: string;
  /**
   * The request id the front-door "another requester's id" variant reuses: a live load request's
   * (routers key requests by requester and id, so it is another request and the owner's goes
   * on), or a fresh one when no load stream has started yet.
   */
  squatId: string;
}

const body = (o: unknown): string => JSON.stringify(o);

/** Bodies that no decoder may accept: not JSON, not an object, wrong types, out of range. */
function garbage(model: string): Array<[string, string | Uint8Array]> {
  return [
    ['malformed JSON', '{"model": "tiny'],
    ['binary', new Uint8Array([0xff, 0xfe, 0x00, 0x80])],
    ['empty body', ''],
    ['JSON array', '[1,2,3]'],
    ['JSON null', 'null'],
    ['wrong type: model is a number', body({ model: 5, prompt: 'x' })],
    ['wrong type: prompt is an array', body({ model, prompt: ['x'], max_tokens: 4 })],
    ['wrong type: max_tokens is a string', body({ model, prompt: 'x', max_tokens: '4' })],
    ['out of range: max_tokens -3', body({ model, prompt: 'x', max_tokens: -3 })],
    ['out of range: token id 2^40', body({ model, prompt_token_ids: [2 ** 40], max_tokens: 4 })],
    ['both prompt and prompt_token_ids', body({ model, prompt: 'x', prompt_token_ids: [1], max_tokens: 4 })],
  ];
}

/** Headers that readRequestMeta must refuse (a garbled deadline is not "no deadline"). */
const BAD_HEADERS: Array<[string, Record<string, string>]> = [
  ['Sy-Attempt abc', { [HEADERS.attempt]: 'abc' }],
  ['Sy-Attempt 0', { [HEADERS.attempt]: '0' }],
  ['Sy-Attempt 1001', { [HEADERS.attempt]: '1001' }],
  ['Sy-Deadline -5', { [HEADERS.deadline]: '-5' }],
  ['Sy-Deadline soon', { [HEADERS.deadline]: 'soon' }],
  ['Sy-Request-Id with a space', { [HEADERS.requestId]: 'a b' }],
  ['Sy-Request-Id of 200 chars', { [HEADERS.requestId]: 'r'.repeat(200) }],
  ['Sy-Origin a.b', { [HEADERS.origin]: 'rt1.x' }],
];

/** Generate-request attacks onto `subject` (the front door or a replica's work subject). */
function generateAttack(name: string, subject: string, t: AttackTargets, forgedOrigin: string): Attack {
  const valid = body({ model: t.model, prompt: 'hostile', max_tokens: HOSTILE_MAX_TOKENS, temperature: 0 });
  const messages: HostileMessage[] = garbage(t.model).map(([label, data]) => ({
    label,
    subject,
    data,
    expect: 'error',
  }));
  for (const [label, h] of BAD_HEADERS) {
    messages.push({
      label: `forged header ${label}`,
      subject,
      data: valid,
      headers: forged(h),
      expect: 'error',
    });
  }
  const loadId = t.squatId;
  const wellFormed: Array<[string, Record<string, string>]> = [
    [`forged Sy-Origin ${forgedOrigin}`, { [HEADERS.origin]: forgedOrigin, [HEADERS.attempt]: '1' }],
    [
      'forged traceparent garbage',
      { traceparent: 'not-a-trace-context', tracestate: 'x'.repeat(LONG_HEADER_CHARS) },
    ],
    ['Sy-Deadline in the past', { [HEADERS.deadline]: String(Date.now() - 1_000) }],
    ['Sy-Attempt 1000 (budget spent)', { [HEADERS.attempt]: '1000' }],
    [
      `another requester's request id ${loadId}`,
      { [HEADERS.requestId]: loadId, [HEADERS.origin]: forgedOrigin, [HEADERS.attempt]: '1' },
    ],
  ];
  for (const [label, h] of wellFormed) {
    messages.push({ label, subject, data: valid, headers: forged(h), expect: 'end-or-error' });
  }
  const prompt = 'a'.repeat(NATS_MAX_PAYLOAD_BYTES - JUST_UNDER_MARGIN_BYTES);
  messages.push({
    label: 'just under max_payload (prompt over 262144 characters)',
    subject,
    data: body({ model: t.model, prompt, max_tokens: HOSTILE_MAX_TOKENS }),
    expect: 'error',
  });
  return { name, messages };
}

/** Every attack class with its messages, for one sender. */
export function attackCatalogue(t: AttackTargets): Attack[] {
  const rt = t.routers[0]!;
  const rp = t.replicas[0]!;
  const other = (ids: string[], self: string): string => ids.find((i) => i !== self) ?? `${self}x`;
  const cancels = (subject: string, origin?: string): HostileMessage[] => [
    ...t.loadIds.map((id): HostileMessage => ({
      label: `cancel of another's request ${id}${origin ? ` forging origin ${origin}` : ''} (no reply proof)`,
      subject,
      data: body({ request_id: id, reason: 'hostile', ...(origin ? { origin } : {}) }),
      expect: 'any',
    })),
    ...t.loadIds.map((id): HostileMessage => ({
      label: `cancel of ${id} with a guessed reply subject`,
      subject,
      data: body({ request_id: id, reply: '_INBOX_client.guess.1', ...(origin ? { origin } : {}) }),
      expect: 'any',
    })),
    { label: 'cancel: malformed JSON', subject, data: '{"request_id"', expect: 'none' },
    { label: 'cancel: request_id is a number', subject, data: body({ request_id: 5 }), expect: 'none' },
    {
      label: 'cancel: reason of 10000 chars',
      subject,
      data: body({ request_id: 'x', reason: 'r'.repeat(10_000) }),
      expect: 'none',
    },
  ];
  const hbGarbage = (subject: string, id: string): HostileMessage[] => [
    { label: 'heartbeat: malformed JSON', subject, data: '{"id":', expect: 'none' },
    {
      label: 'heartbeat: wrong types',
      subject,
      data: body({ id, state: 7, progress: 'lots' }),
      expect: 'none',
    },
    {
      label: 'heartbeat: body id differs from the subject',
      subject,
      data: body({ id: `${id}zz`, state: 'ready', in_flight: 0, sent_at: Date.now(), interval_ms: 100 }),
      expect: 'none',
    },
    {
      label: 'heartbeat: interval_ms 0',
      subject,
      data: body({ id, state: 'ready', in_flight: 0, sent_at: Date.now(), interval_ms: 0 }),
      expect: 'none',
    },
  ];
  const selfReplica = t.replicas.includes(t.selfId) ? t.selfId : rp;
  const selfRouter = t.routers.includes(t.selfId) ? t.selfId : rt;
  const forgedReply = (subject: string): HostileMessage => ({
    label: `forged chunk onto ${subject}`,
    subject,
    data: body({ seq: 0, attempt: 1, token_ids: [1], text: 'forged' }),
    headers: forged({ [HEADERS.kind]: 'chunk', [HEADERS.requestId]: t.loadIds[0] ?? 'load1-0' }),
    expect: 'none',
  });
  return [
    generateAttack('front door (sy.v1.generate)', GENERATE_SUBJECT, t, rt),
    {
      name: "router cancel of others' requests",
      messages: t.routers.flatMap((r) => cancels(routerCancelSubject(r))),
    },
    generateAttack(`replica work subject (${rp})`, replicaGenerateSubject(rp), t, other(t.routers, '')),
    {
      name: "replica cancel of others' work",
      messages: t.routers.flatMap((o) => cancels(replicaCancelSubject(rp), o)),
    },
    {
      name: 'replica fault subject (malformed commands)',
      messages: [
        ['not JSON', 'stall please'],
        ['stall is a string', body({ stall: 'yes' })],
        ['crash everything', body({ crash: 'everything' })],
        ['fail_steps -1', body({ fail_steps: -1 })],
      ].map(([label, data]) => ({
        label: label!,
        subject: replicaFaultSubject(rp),
        data: data!,
        expect: 'any' as const,
        replyOk: (b: string) => b.includes('"ok":false'),
      })),
    },
    {
      name: 'replica heartbeats (own subject, another replica)',
      messages: [
        ...hbGarbage(replicaHeartbeatSubject(selfReplica), selfReplica),
        ...hbGarbage(replicaHeartbeatSubject(other(t.replicas, selfReplica)), other(t.replicas, selfReplica)),
      ],
    },
    {
      name: 'router heartbeats (own subject, another router)',
      messages: [
        ...hbGarbage(routerHeartbeatSubject(selfRouter), selfRouter),
        ...hbGarbage(routerHeartbeatSubject(other(t.routers, selfRouter)), other(t.routers, selfRouter)),
      ],
    },
    {
      name: "replies onto other actors' inboxes",
      messages: [
        forgedReply(`_INBOX_router.${rt}.guessed.1`),
        forgedReply('_INBOX_client.guessed.1'),
        forgedReply('_INBOX_bridge.br1.guessed.1'),
        forgedReply(`_INBOX_replica.${rp}.guessed.1`),
      ],
    },
  ];
}
