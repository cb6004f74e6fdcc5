/**
 * Canary values and the forms they are searched in (issue 10, the canary leak matrix).
 *
 * A canary is a secret value the test knows (one it chose, or one the run made and the test captured from the
 * store or OpenBao's audit device). Each is searched as bytes in every form a leak could take:
 * - its text, upper- and lower-cased when it is hex, JSON-escaped (inside a JSON string) and URL-encoded;
 * - hex (lower, upper) of its text's bytes (a `Buffer` printed as hex);
 * - base64 and base64url of its text's bytes, at each of the 3 byte alignments (so it is found inside the
 *   base64 of a larger file or script that holds it at any offset);
 * - for a value that is an encoding of bytes (a 64-hex JWT, a base64 Horcrux key): the raw bytes, their hex
 *   (lower/upper) and their base64/base64url at each alignment.
 * A hit names the place, the canary's kind and the form, and the value's fingerprint — never the value.
 */
import { createHash } from 'node:crypto';

export type CanaryKind =
  | 'jwt'
  | 'env-value'
  | 'horcrux-ecies-key'
  | 'horcrux-shard'
  | 'wrapping-token'
  | 'role_id'
  | 'secret_id'
  | 'vault-token'
  | 'aws-secret-key';

export interface Canary {
  kind: CanaryKind;
  /** The value as text (64 hex, base64, a token, an env value). */
  text: string;
  /** How the text encodes bytes, if it does: the raw bytes are searched too. */
  encoding?: 'hex' | 'base64';
}

/** One searchable form of a canary. */
export interface Form {
  form: string;
  bytes: Buffer;
}

/** Shortest form searched (shorter ones would match by chance). */
const MIN_FORM = 12;

/** First 12 hex of SHA-256 of the text: how a canary is named in a failure (never its value). */
export function fingerprint(c: Canary): string {
  return `sha256:${createHash('sha256').update(c.text).digest('hex').slice(0, 12)}`;
}

/** base64 of `b` starting at each of its first 3 bytes, cut to whole 3-byte groups: one is in any base64 holding `b`. */
function aligned(b: Buffer, url: boolean): string[] {
  const out: string[] = [];
  for (let s = 0; s < 3 && b.length - s >= 3; s++) {
    const n = Math.floor((b.length - s) / 3) * 3;
    const enc = b.subarray(s, s + n).toString('base64');
    out.push(url ? enc.replace(/\+/g, '-').replace(/\//g, '_') : enc);
  }
  return out;
}

function byteForms(prefix: string, b: Buffer): Form[] {
  const forms: Form[] = [
    { form: `${prefix}raw`, bytes: b },
    { form: `${prefix}hex`, bytes: Buffer.from(b.toString('hex')) },
    { form: `${prefix}HEX`, bytes: Buffer.from(b.toString('hex').toUpperCase()) },
  ];
  aligned(b, false).forEach((s, i) => forms.push({ form: `${prefix}base64@${i}`, bytes: Buffer.from(s) }));
  aligned(b, true).forEach((s, i) => forms.push({ form: `${prefix}base64url@${i}`, bytes: Buffer.from(s) }));
  return forms;
}

/** Every form of `c` searched (deduplicated by bytes, none shorter than 12 bytes). */
export function formsOf(c: Canary): Form[] {
  const t = c.text;
  const forms: Form[] = [{ form: 'text', bytes: Buffer.from(t) }];
  if (/^[0-9a-fA-F]+$/.test(t)) {
    forms.push({ form: 'text lower-case', bytes: Buffer.from(t.toLowerCase()) }, { form: 'text upper-case', bytes: Buffer.from(t.toUpperCase()) });
  }
  forms.push({ form: 'JSON-escaped', bytes: Buffer.from(JSON.stringify(t).slice(1, -1)) });
  forms.push({ form: 'URL-encoded', bytes: Buffer.from(encodeURIComponent(t)) });
  forms.push(...byteForms('text as ', Buffer.from(t)).filter((f) => f.form !== 'text as raw'));
  if (c.encoding === 'hex') forms.push(...byteForms('decoded ', Buffer.from(t, 'hex')));
  if (c.encoding === 'base64') forms.push(...byteForms('decoded ', Buffer.from(t, 'base64')));
  const seen = new Set<string>();
  return forms.filter((f) => {
    const k = f.bytes.toString('latin1');
    if (f.bytes.length < MIN_FORM || seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** A hit: where, which canary (kind + fingerprint), which form. Safe to print. */
export interface Hit {
  place: string;
  kind: CanaryKind;
  fingerprint: string;
  form: string;
  /** A file path or process, when the place has several. */
  where?: string;
}

/** The canaries a run is searched for, with their forms computed once. */
export class CanarySet {
  private readonly entries: { canary: Canary; forms: Form[]; fp: string }[] = [];
  private readonly texts = new Set<string>();

  /** Adds a canary (ignored when its text is already in the set, or too short to search). */
  add(c: Canary): void {
    if (c.text.length < MIN_FORM || this.texts.has(c.text)) return;
    this.texts.add(c.text);
    this.entries.push({ canary: c, forms: formsOf(c), fp: fingerprint(c) });
  }

  get size(): number {
    return this.entries.length;
  }

  /** How many canaries of each kind (for the test's own checks that capture worked). */
  kinds(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.entries) out[e.canary.kind] = (out[e.canary.kind] ?? 0) + 1;
    return out;
  }

  /** Whether `text` is one of the canaries' texts. */
  has(text: string): boolean {
    return this.texts.has(text);
  }

  /** Every canary form found in `data` (at most one hit per canary: its first form found). */
  search(place: string, data: Buffer | string, where?: string): Hit[] {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const hits: Hit[] = [];
    for (const e of this.entries) {
      const f = e.forms.find((x) => buf.includes(x.bytes));
      if (f) hits.push({ place, kind: e.canary.kind, fingerprint: e.fp, form: f.form, ...(where ? { where } : {}) });
    }
    return hits;
  }
}

/** One line per hit, e.g. `val-1 persistent dirs (deploy/.env): env-value sha256:ab12… as JSON-escaped`. */
export function describeHit(h: Hit): string {
  return `${h.place}${h.where ? ` (${h.where})` : ''}: ${h.kind} ${h.fingerprint} as ${h.form}`;
}
