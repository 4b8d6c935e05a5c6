/**
 * The checks that turn a pattern's candidate into a match: a regular expression alone cannot tell a
 * card number from any other 16 digits, nor an IBAN from any other code, and a false positive in a
 * stored prompt is a corrupted training example. Each check is linear in its input and allocates
 * little, because it runs on every candidate of every completion event (src/capture/redaction.ts).
 */

/** Code of the character '0'. */
const CODE_0 = 48;
/** Code of the character '9'. */
const CODE_9 = 57;
/** Code of the character 'A'. */
const CODE_A = 65;
/** Code of the character 'Z'. */
const CODE_Z = 90;
/** What an IBAN letter is worth in its mod-97 check: A = 10 … Z = 35. */
const IBAN_LETTER_OFFSET = 10;
/** The modulus of the IBAN check (ISO 13616, ISO 7064 MOD 97-10). */
const IBAN_MODULUS = 97;
/** The remainder a valid IBAN leaves. */
const IBAN_VALID_REMAINDER = 1;
/** Characters of an IBAN's country code and check digits, moved to the end for the check. */
const IBAN_HEAD_LENGTH = 4;
/** Shortest IBAN (Norway), in characters without spaces. */
export const IBAN_MIN_LENGTH = 15;
/** Longest IBAN the standard allows, in characters without spaces. */
export const IBAN_MAX_LENGTH = 34;
/** Fewest digits of a payment card number (13: old Visa). */
export const CARD_MIN_DIGITS = 13;
/** Most digits of a payment card number (19: Visa, UnionPay, Maestro). */
export const CARD_MAX_DIGITS = 19;
/** Fewest digits of a phone number with its country code (E.164 numbers are rarely shorter). */
export const PHONE_INTL_MIN_DIGITS = 8;
/** Most digits of a phone number with its country code (E.164's limit). */
export const PHONE_INTL_MAX_DIGITS = 15;
/** Fewest digits of a national phone number with a trunk 0 (an 8-digit `05.01.2024` is a date). */
export const PHONE_NATIONAL_MIN_DIGITS = 9;
/** Most digits of a national phone number with a trunk 0. */
export const PHONE_NATIONAL_MAX_DIGITS = 12;
/** 16-bit groups of an IPv6 address. */
const IPV6_GROUPS = 8;
/** Groups a compressed IPv6 address needs, short of a four-digit group, to read as an address. */
const IPV6_COMPRESSED_MIN_GROUPS = 3;
/** Shannon entropy, in bits per character, below which a keyed value reads as words, not a key. */
export const SECRET_MIN_ENTROPY_BITS = 2.5;

/** Counts the decimal digits in `text`. */
export function countDigits(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= CODE_0 && c <= CODE_9) n++;
  }
  return n;
}

/** Whether `text` holds at least one decimal digit and one ASCII letter (random keys do; words rarely). */
export function hasDigitAndLetter(text: string): boolean {
  return /\d/.test(text) && /[A-Za-z]/.test(text);
}

/**
 * The Luhn check of a card number (ISO/IEC 7812): every second digit from the right doubled. Only
 * digits count, so `4111 1111 1111 1111` and `4111-1111-1111-1111` check as the bare number.
 */
export function luhnValid(text: string): boolean {
  let sum = 0;
  let double = false;
  let digits = 0;
  for (let i = text.length - 1; i >= 0; i--) {
    const c = text.charCodeAt(i);
    if (c < CODE_0 || c > CODE_9) continue;
    let d = c - CODE_0;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
    digits++;
  }
  return digits > 0 && sum % 10 === 0;
}

/** A card number: 13 to 19 digits that pass the Luhn check. */
export function isCardNumber(text: string): boolean {
  const digits = countDigits(text);
  return digits >= CARD_MIN_DIGITS && digits <= CARD_MAX_DIGITS && luhnValid(text);
}

/**
 * The IBAN check (ISO 13616): the first four characters moved to the end, letters read as 10–35,
 * the whole number mod 97 is 1. Computed digit by digit, so no big integers. Spaces are skipped;
 * the length without them must be 15 to 34.
 */
export function ibanValid(text: string): boolean {
  const compact = text.replaceAll(' ', '');
  if (compact.length < IBAN_MIN_LENGTH || compact.length > IBAN_MAX_LENGTH) return false;
  const rearranged = compact.slice(IBAN_HEAD_LENGTH) + compact.slice(0, IBAN_HEAD_LENGTH);
  let remainder = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i);
    if (c >= CODE_0 && c <= CODE_9) {
      remainder = (remainder * 10 + (c - CODE_0)) % IBAN_MODULUS;
    } else if (c >= CODE_A && c <= CODE_Z) {
      remainder = (remainder * 100 + (c - CODE_A + IBAN_LETTER_OFFSET)) % IBAN_MODULUS;
    } else {
      return false;
    }
  }
  return remainder === IBAN_VALID_REMAINDER;
}

/**
 * How much of `text` is a phone number of `min` to `max` digits: the longest prefix that ends at
 * the end of a digit group (before a space, dot or dash, or at the end) and holds at most `max`
 * digits, if it holds at least `min`; else 0. So `+1 (555) 123-4567 85483` is the number and a
 * count after it, not 16 digits that fit no phone.
 */
export function phonePrefixLength(text: string, min: number, max: number): number {
  let digits = 0;
  let best = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= CODE_0 && c <= CODE_9) {
      digits++;
      if (digits > max) break;
      const next = text.charAt(i + 1);
      if ((next === '' || next === ' ' || next === '.' || next === '-') && digits >= min) best = i + 1;
    }
  }
  return best;
}

/** {@link phonePrefixLength} of an international number: 8 to 15 digits, the country code's included. */
export function intlPhoneLength(text: string): number {
  return phonePrefixLength(text, PHONE_INTL_MIN_DIGITS, PHONE_INTL_MAX_DIGITS);
}

/**
 * A national number with a trunk 0: 9 to 12 digits (fewer is a date like `05.01.2024`; more, in
 * one chain of one separator, is some other grouped number, so no prefix of it is taken).
 */
export function isNationalPhone(text: string): boolean {
  const digits = countDigits(text);
  return digits >= PHONE_NATIONAL_MIN_DIGITS && digits <= PHONE_NATIONAL_MAX_DIGITS;
}

/** Dotted-quad IPv4: four decimal octets 0–255 without leading zeros. */
export function isIpv4(text: string): boolean {
  return /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(text);
}

/** Counts the 16-bit groups of `part` (groups joined by `:`, an IPv4 tail worth two); -1 if malformed. */
function countIpv6Groups(part: string, tailAllowed: boolean): number {
  if (part === '') return 0;
  const groups = part.split(':');
  let n = 0;
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i] ?? '';
    if (tailAllowed && i === groups.length - 1 && g.includes('.')) {
      if (!isIpv4(g)) return -1;
      n += 2;
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) {
      n += 1;
    } else {
      return -1;
    }
  }
  return n;
}

/**
 * An IPv6 address (RFC 4291 text forms): eight groups, or fewer with one `::`, optionally ending in
 * an IPv4 address, optionally with a `%zone`. A compressed form must also look like an address
 * rather than code: a decimal digit somewhere, and three groups or a full four-digit group
 * (`fe80::1`, `2001:db8::`, `::ffff:10.0.0.1`). So Python's `a[1::2]` and `[::2]`, C++'s
 * `Add::bad` and a bare `::` stay text, and so does the loopback `::1`, which identifies no one.
 */
export function isIpv6(text: string): boolean {
  const zone = text.indexOf('%');
  const address = zone >= 0 ? text.slice(0, zone) : text;
  const halves = address.split('::');
  if (halves.length > 2) return false;
  if (halves.length === 1) return countIpv6Groups(address, true) === IPV6_GROUPS;
  const head = countIpv6Groups(halves[0] ?? '', false);
  const tail = countIpv6Groups(halves[1] ?? '', true);
  if (head < 0 || tail < 0 || head + tail > IPV6_GROUPS - 1) return false;
  const addressLike = head + tail >= IPV6_COMPRESSED_MIN_GROUPS || /[0-9A-Fa-f]{4}/.test(address);
  return addressLike && /\d/.test(address);
}

/** Shannon entropy of `text`'s characters, in bits per character. */
export function entropyBits(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/**
 * A value after a key word (`api_key=…`, `token: …`) that reads as a generated key: letters and
 * digits both, and at least 2.5 bits of entropy per character (`verification_required` has no
 * digit; `aaaaaaaa11111111` has 1 bit).
 */
export function isHighEntropySecret(text: string): boolean {
  return hasDigitAndLetter(text) && entropyBits(text) >= SECRET_MIN_ENTROPY_BITS;
}

/** A password value: anything but letters only (`hunter2`, `P@ssw0rd`; not `required`). */
export function isPasswordValue(text: string): boolean {
  return /[^A-Za-z]/.test(text);
}

/**
 * A credential after `Authorization:`: anything but a plain word, so `dXNlcjpwYXNz` (Basic's
 * base64, letters only but mixed case) counts and `required` or `Required` does not.
 */
export function isCredentialValue(text: string): boolean {
  return /[^A-Za-z]/.test(text) || (/[a-z]/.test(text) && /.[A-Z]/.test(text));
}
