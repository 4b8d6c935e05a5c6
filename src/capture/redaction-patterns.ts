/**
 * The one table of what redaction replaces before a completion event is stored (issue 12,
 * "Redaction before storage"; docs/redaction.md is this table for readers). Each entry is a
 * candidate regular expression plus, where a regex cannot decide, a check (Luhn, mod 97, octets,
 * entropy) from src/capture/redaction-checks.ts.
 *
 * Rules every entry keeps, so that src/capture/redaction.ts stays linear on any input:
 * - global flag (`d` as well where `group` is not 0), never matches the empty string;
 * - starts with a literal or a lookbehind that admits one start per token, and every repetition
 *   that can fail late is bounded, so no input backtracks more than a constant per position;
 * - never matches inside a placeholder (`<KIND>` holds no digit, `@`, or key character after `<`),
 *   so redacting twice is redacting once.
 * The order breaks ties only: among candidates the leftmost wins, then the longest, then the first
 * in this table.
 */
import type { RedactionKind } from '../cluster/messages/capture.ts';
import {
  isCardNumber,
  isCredentialValue,
  ibanValid,
  hasDigitAndLetter,
  isHighEntropySecret,
  intlPhoneLength,
  isIpv6,
  isNationalPhone,
  isPasswordValue,
} from './redaction-checks.ts';

/** One row of the redaction table. */
export interface RedactionPattern {
  /** Stable name (tests and docs/redaction.md refer to it). */
  readonly name: string;
  /** What the replaced text was. */
  readonly kind: RedactionKind;
  /** What replaces it: `<KIND>`. */
  readonly placeholder: `<${RedactionKind}>`;
  /** The candidates (global; see the rules above). */
  readonly regex: RegExp;
  /** The capture group that is replaced: 0 the whole match, else only the value after a key word. */
  readonly group: number;
  /** Decides a candidate (the group's text); absent: every candidate is a match. */
  readonly accept?: (candidate: string) => boolean;
  /**
   * For rows whose candidates may run on past the match (a phone number and a count after it): the
   * length of the candidate's prefix that is the match, 0 for none. Applied before `accept`.
   */
  readonly trim?: (candidate: string) => number;
  /** What it matches, in words. */
  readonly matches: string;
  /** What it deliberately does not match, in words. */
  readonly excludes: string;
  /**
   * Texts it matches (the tests check each): a string is replaced whole; a pair is a text and what
   * redaction makes of it, for rows that replace only the value after a key word.
   */
  readonly examples: ReadonlyArray<string | readonly [text: string, redacted: string]>;
  /** Texts that stay as they are (the tests check each against the whole table). */
  readonly counterexamples: readonly string[];
}

/** The placeholder of a kind. */
export function placeholder(kind: RedactionKind): `<${RedactionKind}>` {
  return `<${kind}>`;
}

/** Builds a row (the placeholder follows from the kind). */
function row(r: Omit<RedactionPattern, 'placeholder' | 'group'> & { group?: number }): RedactionPattern {
  return { ...r, group: r.group ?? 0, placeholder: placeholder(r.kind) };
}

/** One IPv4 octet, 0–255, no leading zero (regex source). */
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/** A dotted-quad IPv4 address (regex source). */
const IPV4 = `(?:${OCTET}\\.){3}${OCTET}`;
/**
 * Left edge of a phone number that opens with a digit: not inside a word or a number, and not
 * after a digit and a separator (so the tail of `4111 0111 1111 1112` is no phone number).
 */
const PHONE_START = '(?<![\\w+.]|\\d[ .-])';
/** Left edge of a phone number that opens with `+` or `(`: not inside a word or a number. */
const PHONE_MARKED_START = '(?<![\\w+.])';
/** Right edge of a phone number: not followed by a word, nor by a dot or dash and more digits. */
const PHONE_END = '(?![\\w]|[.-]\\d)';
/**
 * Right edge of a phone number whose groups share one separator (captured as group 1): also not
 * followed by that separator and a digit, so `555 123 4567 8901` is a longer number, not a phone.
 */
const PHONE_CHAIN_END = '(?![\\w]|[.-]\\d|\\1\\d)';

/** The table, in tie-break order. */
export const REDACTION_PATTERNS: readonly RedactionPattern[] = [
  row({
    name: 'private-key',
    kind: 'SECRET',
    regex:
      /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:(?:(?!-----BEGIN)[\s\S]){0,8192}?-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s]{0,8192})/g,
    matches: 'a PEM private key block, BEGIN to END (or to the end of its base64 when END is missing)',
    excludes: 'public keys and certificates (`BEGIN PUBLIC KEY`, `BEGIN CERTIFICATE`)',
    examples: [
      '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\nq1w2e3r4==\n-----END RSA PRIVATE KEY-----',
      '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC',
    ],
    counterexamples: ['-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----'],
  }),
  row({
    name: 'jwt',
    kind: 'SECRET',
    regex: /(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g,
    matches: 'a JSON Web Token: base64url header and payload that both open with `{"` (`eyJ`), signature',
    excludes: 'a single base64 segment, or dotted words',
    examples: [
      'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
    ],
    counterexamples: ['eyJhbGciOiJIUzI1NiJ9', 'see config.eyes.json'],
  }),
  row({
    name: 'bearer',
    kind: 'SECRET',
    regex: /\bbearer[ \t]+([A-Za-z0-9\-._~+/]{12,}=*)/dgi,
    group: 1,
    accept: hasDigitAndLetter,
    matches: 'the token after `Bearer ` (12+ token characters, with a digit and a letter)',
    excludes: 'prose such as `bearer tokens expire` (no digit); the word `Bearer` itself stays',
    examples: [
      ['curl -H "Authorization: Bearer mF_9.B5f-4.1JqM7gS2xQz"', 'curl -H "Authorization: Bearer <SECRET>"'],
    ],
    counterexamples: ['the bearer authentication scheme', 'Bearer tokens are short-lived'],
  }),
  row({
    name: 'authorization',
    kind: 'SECRET',
    regex:
      /\bauthorization["']?[ \t]*[:=][ \t]*["']?(?:(?:basic|bearer|token|digest|negotiate)[ \t]+)?([A-Za-z0-9\-._~+/=:]{8,})/dgi,
    group: 1,
    accept: isCredentialValue,
    matches: 'the credential of an `Authorization:` header (`Basic dXNlcjpwYXNz`), after its scheme',
    excludes: 'a plain word after it (`Authorization: required`)',
    examples: [['Authorization: Basic dXNlcjpwYXNz', 'Authorization: Basic <SECRET>']],
    counterexamples: ['Authorization: required', 'authorization: Required'],
  }),
  row({
    name: 'openai-key',
    kind: 'SECRET',
    regex: /(?<![\w-])sk-[A-Za-z0-9_-]{20,}/g,
    accept: hasDigitAndLetter,
    matches:
      '`sk-` keys (OpenAI, Anthropic `sk-ant-…`, project keys `sk-proj-…`): 20+ characters with a digit',
    excludes: '`sk` inside words (`task-force`, `desk-top`), `sk-learn` and other short or digit-free names',
    examples: ['sk-proj-4f9XcB2mQ7rT1vL8nK3pZ6wY', 'sk-ant-api03-AbCdEf123456GhIjKl7890'],
    counterexamples: [
      'task-force-2024-planning-meeting-notes',
      'sk-learn',
      'sk-learn-is-a-great-library-for-ml',
    ],
  }),
  row({
    name: 'stripe-key',
    kind: 'SECRET',
    regex: /(?<![\w-])[sr]k_(?:live|test)_[A-Za-z0-9]{16,}/g,
    matches: 'Stripe secret and restricted keys `sk_live_…`, `sk_test_…`, `rk_live_…`',
    excludes: 'publishable keys `pk_…` (public by design)',
    examples: ['sk_live_4eC39HqLyjWDarjtT1zdp7dc', 'rk_test_51HxYzAbCdEfGhIjKl'],
    counterexamples: ['pk_live_4eC39HqLyjWDarjtT1zdp7dc', 'ask_live_questions'],
  }),
  row({
    name: 'github-token',
    kind: 'SECRET',
    regex: /(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})/g,
    matches: 'GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36, fine-grained `github_pat_…`',
    excludes: 'shorter `ghp_` names',
    examples: ['ghp_16C7e42F292c6912E7710c838347Ae178B4a', 'github_pat_11ABCDEFG0123456789_abcdefghijklmnop'],
    counterexamples: ['ghp_short'],
  }),
  row({
    name: 'aws-key-id',
    kind: 'SECRET',
    regex: /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
    matches: 'AWS access key ids: `AKIA` or `ASIA` and 16 upper-case letters or digits',
    excludes: 'the same prefix with another length (`AKIA` in a longer word)',
    examples: ['AKIAIOSFODNN7EXAMPLE', 'ASIAY34FZKBOKMUTVV7A'],
    counterexamples: ['AKIAIOSFODNN7EXAMPLE2', 'AKIA'],
  }),
  row({
    name: 'slack-token',
    kind: 'SECRET',
    regex: /(?<![\w-])xox[baprs]-[A-Za-z0-9-]{10,}/g,
    matches: 'Slack tokens `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-` and 10+ characters',
    excludes: '`xox` as a word (hugs and kisses)',
    examples: ['xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy', 'xoxp-4956-AbCdEf12345'],
    counterexamples: ['xoxo', 'xox-gossip'],
  }),
  row({
    name: 'google-api-key',
    kind: 'SECRET',
    regex: /(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])/g,
    matches: 'Google API keys: `AIza` and 35 characters',
    excludes: 'other lengths',
    examples: ['AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY'],
    counterexamples: ['AIzaShort'],
  }),
  row({
    name: 'url-credentials',
    kind: 'SECRET',
    regex: /:\/\/[^\s:/@<>]{1,128}:([^\s/@<>]{1,256})@/dg,
    group: 1,
    matches: 'the password of a URL with credentials (`postgres://user:PASSWORD@host`)',
    excludes: 'the user name; a URL with a port but no `@` (`http://host:8080/`)',
    examples: [['postgres://admin:s3cr3t!@db.internal/app', 'postgres://admin:<SECRET>@db.internal/app']],
    counterexamples: ['http://localhost:8080/v1/models'],
  }),
  row({
    name: 'keyed-secret',
    kind: 'SECRET',
    regex:
      /(?<![A-Za-z0-9])(?:api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|auth[_-]?token|access[_-]?token|refresh[_-]?token|session[_-]?token|token|secret)["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9+/_\-.~]{16,}={0,2})/dgi,
    group: 1,
    accept: isHighEntropySecret,
    matches:
      'the value after `api_key=`, `token:`, `secret=`, `client_secret:` and similar keys (also JSON `"key": "value"`): 16+ base64 or hex characters with a digit, a letter and 2.5+ bits of entropy per character',
    excludes:
      'short values (`token: 15`), word-like values (`token: verification_required`), `max_tokens=256`',
    examples: [
      ['api_key=9f86d081884c7d659a2feaa0c55ad015', 'api_key=<SECRET>'],
      ['{"client_secret": "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg="}', '{"client_secret": "<SECRET>"}'],
    ],
    counterexamples: [
      'token: verification_required',
      'max_tokens=256',
      'prompt_tokens: 12',
      'token = 0000000000000000',
    ],
  }),
  row({
    name: 'password',
    kind: 'SECRET',
    regex:
      /(?<![A-Za-z0-9])(?:password|passwd|passphrase|pwd)["']?[ \t]*[:=][ \t]*["']?([^\s"'`,;&<>]{6,})/dgi,
    group: 1,
    accept: isPasswordValue,
    matches: 'the value after `password=`, `passwd:`, `pwd=`: 6+ characters, not letters only',
    excludes: 'letters-only values (`password: required`); passwords in prose (`my password is hunter2`)',
    examples: [
      ['password=hunter2', 'password=<SECRET>'],
      ['DB_PASSWORD: "P@ssw0rd!"', 'DB_PASSWORD: "<SECRET>"'],
    ],
    counterexamples: ['password: required', 'Password: changeme', 'the password is hunter2'],
  }),
  row({
    name: 'email',
    kind: 'EMAIL',
    regex: /(?<![\w.+%-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![\w-])/g,
    matches:
      'an e-mail address: ASCII local part (64 at most), a dotted domain, a letters-only top-level domain',
    excludes:
      '`@` handles and decorators (`@user`, `@Override`), `user@localhost`, addresses with non-ASCII domains',
    examples: ['alice@example.com', 'first.last+tag@mail.example.co.uk', 'x_y%z@sub-domain.example.org'],
    counterexamples: ['@alice', '@Override', 'root@localhost', 'pip install pkg@1.2.3'],
  }),
  row({
    name: 'phone-international',
    kind: 'PHONE',
    regex: new RegExp(
      `${PHONE_MARKED_START}\\+\\d{1,15}(?:[ .-]?\\(\\d{1,5}\\)[ .-]?\\d{1,8})?(?:[ .-]\\d{1,8}){0,6}${PHONE_END}`,
      'g',
    ),
    trim: intlPhoneLength,
    matches: 'a `+` number of 8 to 15 digits, separated by spaces, dots or dashes, with an optional `(area)`',
    excludes: 'signed numbers (`+3.14`, `+100`), `+` inside sums (`2+3`)',
    examples: [
      '+1 (555) 123-4567',
      '+44 20 7946 0958',
      '+4915112345678',
      '+49 (0)30 1234567',
      '+33 6 12 34 56 78',
    ],
    counterexamples: ['+3.14159265358', '+100 points', '2+3=5', '+1.5%'],
  }),
  row({
    name: 'phone-nanp',
    kind: 'PHONE',
    regex: new RegExp(
      `(?:${PHONE_MARKED_START}\\(\\d{3}\\) ?\\d{3}[ .-]\\d{4}|${PHONE_START}(?:1[ .-])?\\d{3}([ .-])\\d{3}\\1\\d{4})${PHONE_CHAIN_END}`,
      'g',
    ),
    matches:
      'a North American number: `(555) 123-4567`, `555-123-4567`, `1-800-555-1234`, `555.123.4567`, `555 123 4567`',
    excludes: 'mixed separators (`555-123.4567`), bare 10-digit runs, ISO dates, longer digit chains',
    examples: ['(555) 123-4567', '555-123-4567', '1-800-555-1234', '555.123.4567', '555 123 4567'],
    counterexamples: ['5551234567', '2024-01-15', '555-123.4567', '123-45-6789'],
  }),
  row({
    name: 'phone-national',
    kind: 'PHONE',
    regex: new RegExp(
      `(?:${PHONE_START}0\\d{1,4}([ .-])\\d{2,8}(?:\\1\\d{2,8}){0,3}|${PHONE_MARKED_START}\\(0\\d{1,4}\\) ?\\d{2,8}(?:[ -]\\d{2,8}){0,2})${PHONE_CHAIN_END}`,
      'g',
    ),
    accept: isNationalPhone,
    matches:
      'a national number with a trunk 0, 9 to 12 digits, one kind of separator: `020 7946 0958`, `06 12 34 56 78`',
    excludes: 'dates (`05.01.2024`: 8 digits), times, bare digit runs (`0301234567`)',
    examples: ['020 7946 0958', '06 12 34 56 78', '030-1234567', '(030) 1234567', '0151 12345678'],
    counterexamples: ['05.01.2024', '01.02.2023 12:00', '0301234567', '0.5 0.25'],
  }),
  row({
    name: 'card-bare',
    kind: 'CARD',
    regex: /(?<![\w.-])[2-6]\d{12,18}(?![\w]|[.,]\d)/g,
    accept: isCardNumber,
    matches: '13 to 19 digits in one run, first digit 2–6 (the card networks), passing the Luhn check',
    excludes:
      'Luhn failures, runs starting 0, 1, 7, 8 or 9 (millisecond timestamps start with 1), runs inside words or hashes',
    examples: ['4111111111111111', '5555555555554444', '378282246310005', '6011111111111117'],
    counterexamples: ['4111111111111112', '1733097600000', 'a4111111111111111b', '12345678901234567890'],
  }),
  row({
    name: 'card-grouped',
    kind: 'CARD',
    regex: /(?<![\w.-])[2-6]\d{3}([ -])\d{4}\1\d{4}\1\d{4}(?:\1\d{3})?(?!\w)/g,
    accept: isCardNumber,
    matches: '16 or 19 digits in groups of four (and three), one kind of separator, Luhn-checked',
    excludes: 'Luhn failures; the groups of four around it stay (`4111 1111 1111 1111 2026`: the year stays)',
    examples: ['4111 1111 1111 1111', '5555-5555-5555-4444', '4000 0566 5566 5556'],
    counterexamples: ['4111 1111 1111 1112', '4111-1111 1111-1111', '2019 2020 2021 2022'],
  }),
  row({
    name: 'card-amex',
    kind: 'CARD',
    regex: /(?<![\w.-])3\d{3}([ -])\d{6}\1\d{4,5}(?!\w)/g,
    accept: isCardNumber,
    matches: 'American Express and Diners numbers grouped 4-6-5 or 4-6-4, Luhn-checked',
    excludes: 'Luhn failures',
    examples: ['3782 822463 10005', '3056-930902-5904'],
    counterexamples: ['3782 822463 10006'],
  }),
  row({
    name: 'iban',
    kind: 'IBAN',
    regex: /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])/g,
    accept: ibanValid,
    matches:
      'an IBAN: country code, two check digits, the account (15 to 34 characters in all), bare or in groups of four, mod-97 checked',
    excludes: 'mod-97 failures, lower-case IBANs, codes that merely start with two letters and two digits',
    examples: [
      'DE89 3704 0044 0532 0130 00',
      'GB82WEST12345698765432',
      'FR14 2004 1010 0505 0001 3M02 606',
      'NO9386011117947',
    ],
    counterexamples: ['DE89 3704 0044 0532 0130 01', 'GB82WEST12345698765433', 'AB12 CDEF GHIJ'],
  }),
  row({
    name: 'ipv4',
    kind: 'IP',
    regex: new RegExp(`(?<![\\w.])${IPV4}(?:/(?:3[0-2]|[12]?\\d))?(?![\\w]|\\.\\d)`, 'g'),
    matches:
      'a dotted-quad IPv4 address with octets 0–255, with an optional /prefix; `1.2.3.4` is an address, whatever it was meant as',
    excludes:
      'invalid octets (`999.1.1.1`), leading zeros (`01.02.03.04`), five parts (`1.2.3.4.5`), `v1.2.3.4`',
    examples: ['192.168.1.10', '10.0.0.0/8', '8.8.8.8', '1.2.3.4', '255.255.255.255'],
    counterexamples: ['999.1.1.1', '1.2.3.4.5', 'v1.2.3.4', '01.02.03.04', '1.2.3', '256.1.1.1'],
  }),
  row({
    name: 'ipv6',
    kind: 'IP',
    regex: new RegExp(
      `(?<![\\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:${IPV4}|[0-9A-Fa-f]{1,4})?(?:%[A-Za-z0-9_.-]{1,16})?(?![\\w:]|\\.\\d)`,
      'g',
    ),
    accept: isIpv6,
    matches:
      'an IPv6 address: eight groups, or `::`-compressed with a digit and 3+ groups or a 4-digit group; IPv4 tails, zones',
    excludes: 'times (`12:30:45`), MAC addresses (6 groups), `::`, `::1`, slices (`a[1::2]`), `std::vector`',
    examples: [
      '2001:0db8:85a3:0000:0000:8a2e:0370:7334',
      '2001:db8::1',
      'fe80::1%eth0',
      '::ffff:192.168.0.1',
    ],
    counterexamples: ['12:30:45', '00:1A:2B:3C:4D:5E', 'a[1::2]', 'std::vector', '::1', 'Add::bad'],
  }),
];
