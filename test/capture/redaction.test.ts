import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import type { CompletionEvent, RedactionKind } from '../../src/cluster/messages/capture.ts';
import { redactCompletion, redactText } from '../../src/capture/redaction.ts';
import { REDACTION_PATTERNS, placeholder } from '../../src/capture/redaction-patterns.ts';
import { ibanValid, isIpv6, luhnValid } from '../../src/capture/redaction-checks.ts';

/** A positive: replaced whole (in a sentence), or a text and what redaction makes of it. */
type Positive = string | readonly [text: string, redacted: string];

/**
 * True positives and true negatives per kind. A positive string is checked inside a sentence
 * (`before X after`), so the edges of each pattern are exercised too; a negative must come back
 * as the very same string, with no kinds.
 */
const CASES: Record<RedactionKind, { positives: Positive[]; negatives: string[] }> = {
  EMAIL: {
    positives: [
      'alice@example.com',
      'first.last+tag@mail.example.co.uk',
      'x_y%z@sub-domain.example.org',
      'UPPER.CASE@EXAMPLE.COM',
      'user123@domain.io',
      ['mailto:bob@example.net.', 'mailto:<EMAIL>.'],
      ['<alice@example.com>', '<<EMAIL>>'],
    ],
    negatives: [
      '@alice said hi',
      'the @Override annotation',
      'ssh root@localhost',
      'pip install pkg@1.2.3',
      'alice at example dot com',
      'email me: alice@',
      'meet @ 5pm at example.com',
    ],
  },
  PHONE: {
    positives: [
      '+1 (555) 123-4567',
      '+44 20 7946 0958',
      '+4915112345678',
      '+49 (0)30 1234567',
      '+33 6 12 34 56 78',
      '(555) 123-4567',
      '555-123-4567',
      '555.123.4567',
      '020 7946 0958',
      '06 12 34 56 78',
      '0151 12345678',
      '1-800-555-1234',
      ['+1 (555) 123-4567 85483 calls', '<PHONE> 85483 calls'],
      ['call 555-123-4567 2 times', 'call <PHONE> 2 times'],
    ],
    negatives: [
      'we shipped 12345 units',
      'pi is about 3.14',
      'released on 2024-01-15',
      'the 05.01.2024 meeting',
      'upgrade to 1.2.3 or v2.10.3',
      'score +100 points',
      'order 123-45-678',
      'call id 5551234567',
      'from 10:30-11:45',
      'costs $1,234.56 or 1 000 000 yen',
      '2+3=5 and +3.14159265358',
      'at 01.02.2023 12:00',
      'ids 0123 4567 8901 2345 and 0000 0000 0000 0000',
      'isbn 978-3-16-148410-0, ssn 123-45-6789',
    ],
  },
  CARD: {
    positives: [
      '4111 1111 1111 1111',
      '4111-1111-1111-1111',
      '4111111111111111',
      '5555555555554444',
      '378282246310005',
      '3782 822463 10005',
      '6011111111111117',
      '4000 0566 5566 5556',
      ['card 4111 1111 1111 1111 2026', 'card <CARD> 2026'],
    ],
    negatives: [
      'card 4111 1111 1111 1112',
      'card 4111111111111112',
      'card 5555 5555 5555 4445',
      'at 1733097600000 ms',
      'order 12345678901234567890',
      'sha a4111111111111111b',
      'amex 3782 822463 10006',
      'mixed 4111-1111 1111-1111',
      'tail 4111 0111 1111 1112',
      'uuid 123e4567-e89b-12d3-a456-426614174000',
      'weights [0.1234567890123, 2.5] and 4,111,111,111,111,111',
    ],
  },
  IBAN: {
    positives: [
      'DE89 3704 0044 0532 0130 00',
      'DE89370400440532013000',
      'GB82 WEST 1234 5698 7654 32',
      'GB82WEST12345698765432',
      'FR14 2004 1010 0505 0001 3M02 606',
      'NL91ABNA0417164300',
      'NO9386011117947',
      'CH9300762011623852957',
    ],
    negatives: [
      'DE89 3704 0044 0532 0130 01',
      'GB82WEST12345698765433',
      'NL91ABNA0417164301',
      'code AB12 CDEF GHIJ',
      'lower de89370400440532013000',
      'see ISO 8601 and RFC 3339',
      'part XY12ABCD',
    ],
  },
  IP: {
    positives: [
      '192.168.1.10',
      '10.0.0.0/8',
      '8.8.8.8',
      // A version-looking 1.2.3.4 is a valid IPv4 address, and redaction cannot know intent: redacted.
      '1.2.3.4',
      '255.255.255.255',
      '2001:0db8:85a3:0000:0000:8a2e:0370:7334',
      '2001:db8::1',
      'fe80::1%eth0',
      '::ffff:192.168.0.1',
      ['connect to 10.1.2.3:8080 now', 'connect to <IP>:8080 now'],
      ['http://[2001:db8::2]:443/', 'http://[<IP>]:443/'],
    ],
    negatives: [
      'host 999.1.1.1',
      'host 256.1.1.1',
      'version 1.2.3.4.5',
      'tag v1.2.3.4',
      'date 01.02.03.04',
      'semver 1.2.3',
      'at 12:30:45',
      'mac 00:1A:2B:3C:4D:5E',
      'python a[1::2] and b[::2]',
      'std::vector<int>',
      'loopback ::1',
      'pi 3.14159',
    ],
  },
  SECRET: {
    positives: [
      'sk-proj-4f9XcB2mQ7rT1vL8nK3pZ6wY',
      'sk-ant-api03-AbCdEf123456GhIjKl7890',
      'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
      'ghp_16C7e42F292c6912E7710c838347Ae178B4a',
      'AKIAIOSFODNN7EXAMPLE',
      'xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy',
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
      'AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY',
      ['Authorization: Bearer mF_9.B5f-4.1JqM7gS2xQz', 'Authorization: Bearer <SECRET>'],
      ['Authorization: Basic dXNlcjpwYXNz', 'Authorization: Basic <SECRET>'],
      ['api_key=9f86d081884c7d659a2feaa0c55ad015&x=1', 'api_key=<SECRET>&x=1'],
      ['token: Zm9vYmFyYmF6cXV4MTIzNDU2', 'token: <SECRET>'],
      ['{"client_secret": "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg="}', '{"client_secret": "<SECRET>"}'],
      ['password=hunter2', 'password=<SECRET>'],
      ['DB_PASSWORD: "P@ssw0rd!"', 'DB_PASSWORD: "<SECRET>"'],
      ['postgres://admin:s3cr3t!@db.internal/app', 'postgres://admin:<SECRET>@db.internal/app'],
      [
        'key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\nq1w2e3r4==\n-----END RSA PRIVATE KEY-----\nend',
        'key:\n<SECRET>\nend',
      ],
    ],
    negatives: [
      'the task-force met at the desk-top',
      'pip install sk-learn; sk-learn-is-a-great-library-for-ml',
      'risk_live_updates and pk_live_4eC39HqLyjWDarjtT1zdp7dc',
      'token: verification_required',
      'set max_tokens=256 and prompt_tokens: 12',
      'Bearer tokens are short-lived',
      'password: required',
      'xoxo, gossip girl',
      'AKIA alone, AKIAIOSFODNN7EXAMPLE2 too long',
      'header eyJhbGciOiJIUzI1NiJ9 only',
      'the api key is in the vault',
      'sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      'token = 0000000000000000',
      '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----',
    ],
  },
};

/** What a positive becomes, and the text it was. */
function expectation(kind: RedactionKind, p: Positive): { text: string; want: string } {
  if (typeof p !== 'string') return { text: p[0], want: p[1] };
  return { text: `before ${p} after`, want: `before ${placeholder(kind)} after` };
}

/** mulberry32: a seeded generator, so a failing random case reproduces. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random element of `xs`. */
function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)] as T;
}

/**
 * Random prose that no pattern can match: words (some capitalised, some not ASCII), short
 * numbers and decimals never next to one another, punctuation without `@`, `:`, `=`, `+`, `-`.
 */
function innocentText(rand: () => number): string {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const specials = ['é', 'ü', 'ß', '中文', 'ñ', 'ø', '😀'];
  const punct = ['', '', '', ',', '.', ';', '!', '?', ')'];
  const tokens: string[] = [];
  let lastWasNumber = false;
  const n = 1 + Math.floor(rand() * 60);
  for (let i = 0; i < n; i++) {
    let token: string;
    if (!lastWasNumber && rand() < 0.25) {
      const digits = String(Math.floor(rand() * 100_000));
      token = rand() < 0.3 ? `${digits.slice(0, 3)}.${Math.floor(rand() * 100)}` : digits;
      lastWasNumber = true;
    } else {
      const len = 1 + Math.floor(rand() * 10);
      token = '';
      for (let j = 0; j < len; j++) token += rand() < 0.05 ? pick(rand, specials) : pick(rand, [...letters]);
      if (rand() < 0.2) token = token.charAt(0).toUpperCase() + token.slice(1);
      lastWasNumber = false;
    }
    tokens.push(token + pick(rand, punct));
  }
  return tokens.join(rand() < 0.1 ? '\n' : ' ');
}

/** A bare completion event. */
function event(over: Partial<CompletionEvent> = {}): CompletionEvent {
  return {
    v: 1,
    request_id: 'req-1',
    requester: 'bridge',
    final: true,
    attempt: 1,
    router: 'router-a',
    model: 'tiny',
    prompt_tokens: 5,
    completion_tokens: 3,
    text_complete: true,
    sampling: { temperature: 0, seed: 7 },
    attempts: 1,
    failovers: [],
    duration_ms: 12,
    text_captured: true,
    started_at: '2026-12-02T00:00:00.000Z',
    ended_at: '2026-12-02T00:00:01.000Z',
    ...over,
  };
}

describe('redaction: the table of true and false positives', () => {
  for (const [kind, { positives, negatives }] of Object.entries(CASES) as Array<
    [RedactionKind, (typeof CASES)[RedactionKind]]
  >) {
    it(`${kind}: at least 6 positives and 6 negatives`, () => {
      assert.ok(positives.length >= 6, `${kind} positives`);
      assert.ok(negatives.length >= 6, `${kind} negatives`);
    });
    for (const p of positives) {
      const { text, want } = expectation(kind, p);
      it(`${kind} redacts ${JSON.stringify(text)}`, () => {
        const r = redactText(text);
        assert.equal(r.text, want);
        assert.deepEqual(r.kinds, [kind]);
      });
    }
    for (const text of negatives) {
      it(`${kind} leaves ${JSON.stringify(text)}`, () => {
        const r = redactText(text);
        assert.equal(r.text, text);
        assert.deepEqual(r.kinds, []);
      });
    }
  }

  it("every row's own examples and counterexamples hold", () => {
    for (const p of REDACTION_PATTERNS) {
      assert.ok(p.examples.length > 0, `${p.name} has an example`);
      for (const ex of p.examples) {
        const [text, want] = typeof ex === 'string' ? [ex, p.placeholder] : ex;
        assert.equal(redactText(text).text, want, `${p.name}: ${text}`);
      }
      for (const text of p.counterexamples) {
        assert.equal(redactText(text).text, text, `${p.name} counterexample: ${text}`);
      }
    }
  });

  it('the negatives fail for the reason documented: Luhn, mod 97, IPv6 form', () => {
    assert.equal(luhnValid('4111 1111 1111 1111'), true);
    assert.equal(luhnValid('4111 1111 1111 1112'), false);
    assert.equal(ibanValid('DE89 3704 0044 0532 0130 00'), true);
    assert.equal(ibanValid('DE89 3704 0044 0532 0130 01'), false);
    assert.equal(isIpv6('2001:db8::1'), true);
    assert.equal(isIpv6('1::2'), false);
    assert.equal(isIpv6('1:2:3:4:5:6:7'), false);
    assert.equal(isIpv6('1::2::3'), false);
  });

  it('base64 data (an inline image) is left alone: its alphabet lacks the separators patterns need', () => {
    const rand = mulberry32(42);
    const bytes = Uint8Array.from({ length: 48 * 1024 }, () => Math.floor(rand() * 256));
    const text = `![img](data:image/png;base64,${Buffer.from(bytes).toString('base64')})`;
    assert.equal(redactText(text).text, text);
  });

  it('every row is in docs/redaction.md', () => {
    const doc = readFileSync(new URL('../../docs/redaction.md', import.meta.url), 'utf8');
    for (const p of REDACTION_PATTERNS) assert.ok(doc.includes(`\`${p.name}\``), `${p.name} documented`);
  });
});

describe('redaction: one pass over mixed text', () => {
  const mixed =
    'Hi, I am alice@example.com (+44 20 7946 0958). Pay with 4111 1111 1111 1111 or to ' +
    'DE89 3704 0044 0532 0130 00; the server is 10.0.0.5 / 2001:db8::7 and the key is ' +
    'sk-proj-4f9XcB2mQ7rT1vL8nK3pZ6wY. Order 12345 of 2024-01-15 costs 3.14.';

  it('replaces each kind and keeps the rest', () => {
    const r = redactText(mixed);
    assert.equal(
      r.text,
      'Hi, I am <EMAIL> (<PHONE>). Pay with <CARD> or to <IBAN>; the server is <IP> / <IP> and ' +
        'the key is <SECRET>. Order 12345 of 2024-01-15 costs 3.14.',
    );
    assert.deepEqual(r.kinds, ['CARD', 'EMAIL', 'IBAN', 'IP', 'PHONE', 'SECRET']);
  });

  it('overlaps: the leftmost match wins, then the longest', () => {
    // The JWT is also a keyed token value and a Bearer token: one placeholder.
    const jwt =
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
    assert.equal(redactText(`Authorization: Bearer ${jwt}`).text, 'Authorization: Bearer <SECRET>');
    // An address in a URL with credentials: the e-mail-shaped `pass@host` is the longer match.
    assert.equal(redactText('https://u:secret1@example.com/x').text, 'https://u:<EMAIL>/x');
    // A card followed by a year: the card, not a longer invalid run.
    assert.equal(redactText('4111 1111 1111 1111 2026').text, '<CARD> 2026');
  });

  it('is idempotent: redacting twice is redacting once, and the second pass returns the same string', () => {
    const once = redactText(mixed);
    const twice = redactText(once.text);
    assert.equal(twice.text, once.text);
    assert.strictEqual(twice.text, once.text);
    assert.deepEqual(twice.kinds, []);
  });

  it('is idempotent over random mixes of positives and filler, and nothing redacted survives', () => {
    const rand = mulberry32(7);
    const secrets = (Object.entries(CASES) as Array<[RedactionKind, (typeof CASES)[RedactionKind]]>).flatMap(
      ([kind, c]) => c.positives.filter((p): p is string => typeof p === 'string').map((p) => ({ kind, p })),
    );
    // Separators hold a word: a phone number right after another number is documented to stay.
    const seps = [' and ', ', see ', '; x ', '\nthen ', ' (or ', ' or) ', ' x '];
    for (let round = 0; round < 300; round++) {
      const parts: string[] = [];
      const used: string[] = [];
      const n = 1 + Math.floor(rand() * 6);
      for (let i = 0; i < n; i++) {
        parts.push(innocentText(rand).slice(0, 40));
        const s = pick(rand, secrets);
        used.push(s.p);
        parts.push(pick(rand, seps), s.p, pick(rand, seps));
      }
      const text = parts.join('');
      const once = redactText(text);
      assert.equal(redactText(once.text).text, once.text, `idempotent on ${JSON.stringify(text)}`);
      for (const s of used) assert.ok(!once.text.includes(s), `${s} leaked from ${JSON.stringify(text)}`);
    }
  });

  it('returns random text without any match unchanged (the same string object)', () => {
    const rand = mulberry32(1234);
    for (let round = 0; round < 500; round++) {
      const text = innocentText(rand);
      const r = redactText(text);
      assert.strictEqual(r.text, text, JSON.stringify(text));
      assert.deepEqual(r.kinds, []);
    }
  });

  it('handles the empty string and a 256 KiB prompt (linear scan: adversarial repeats finish)', () => {
    assert.deepEqual(redactText(''), { text: '', kinds: [] });
    for (const unit of [
      'a',
      '1',
      ':',
      'a.',
      '1.',
      '0 ',
      'a@',
      '+1 ',
      'token=',
      '-----BEGIN PRIVATE KEY-----',
    ]) {
      const text = unit.repeat(Math.ceil((256 * 1024) / unit.length));
      const r = redactText(text);
      assert.equal(redactText(r.text).text, r.text, `idempotent on ${unit} repeated`);
    }
  });
});

describe('redaction: completion events', () => {
  it('returns the same event when nothing matched', () => {
    const e = event({ prompt: 'hello', output_text: ' world', output_token_ids: [1, 2, 3] });
    assert.strictEqual(redactCompletion(e), e);
  });

  it('drops output token ids when the output changed', () => {
    const e = event({ prompt: 'who?', output_text: ' mail bob@example.com', output_token_ids: [5, 6, 7] });
    const r = redactCompletion(e);
    assert.equal(r.output_text, ' mail <EMAIL>');
    assert.equal('output_token_ids' in r, false);
    assert.deepEqual(r.redacted, ['EMAIL']);
    assert.equal(r.prompt, 'who?');
    assert.equal(e.output_token_ids?.length, 3, 'the input event is not mutated');
  });

  it('keeps output token ids when only the prompt, messages or stop changed', () => {
    const e = event({
      prompt: 'card 4111 1111 1111 1111',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'call +44 20 7946 0958' },
      ],
      output_text: ' ok',
      output_token_ids: [9, 10],
      sampling: { temperature: 0, stop: ['\n', 'from 10.0.0.1'] },
    });
    const r = redactCompletion(e);
    assert.equal(r.prompt, 'card <CARD>');
    assert.deepEqual(r.messages, [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'call <PHONE>' },
    ]);
    assert.strictEqual(r.messages?.[0], e.messages?.[0], 'an unchanged message is kept as it was');
    assert.deepEqual(r.sampling, { temperature: 0, stop: ['\n', 'from <IP>'] });
    assert.deepEqual(r.output_token_ids, [9, 10]);
    assert.equal(r.output_text, ' ok');
    assert.deepEqual(r.redacted, ['CARD', 'IP', 'PHONE']);
  });

  it('unions kinds already listed, sorted, and is idempotent', () => {
    const e = event({ prompt: 'ip 8.8.8.8', redacted: ['SECRET'] });
    const once = redactCompletion(e);
    assert.deepEqual(once.redacted, ['IP', 'SECRET']);
    const twice = redactCompletion(once);
    assert.strictEqual(twice, once);
  });

  it('leaves an event without text (capture-text off) alone', () => {
    const e = event();
    assert.strictEqual(redactCompletion(e), e);
    assert.equal('redacted' in redactCompletion(e), false);
  });

  it('nothing redacted survives anywhere in the stored JSON', () => {
    const e = event({
      prompt: 'key sk-proj-4f9XcB2mQ7rT1vL8nK3pZ6wY',
      messages: [{ role: 'user', content: 'iban GB82WEST12345698765432' }],
      output_text: ' sure: alice@example.com',
      output_token_ids: [1, 2, 3, 4],
      sampling: { stop: ['AKIAIOSFODNN7EXAMPLE'] },
    });
    const json = JSON.stringify(redactCompletion(e));
    for (const leaked of ['sk-proj', 'GB82WEST', 'alice@', 'AKIAIOSF', 'output_token_ids']) {
      assert.equal(json.includes(leaked), false, leaked);
    }
  });
});
