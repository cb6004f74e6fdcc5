import { createHash, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';

/** How many hex characters of a SHA-256 fingerprint are shown to people (the full digest is compared). */
export const FINGERPRINT_SHOWN_HEX = 12;

/** Full lowercase-hex SHA-256 of `bytes` (64 characters). */
export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** `sha256:` plus the first {@link FINGERPRINT_SHOWN_HEX} hex characters of a full digest, for display. */
export function shortFingerprint(fullHex: string): string {
  return `sha256:${fullHex.slice(0, FINGERPRINT_SHOWN_HEX)}`;
}

/**
 * A secret value: bytes that redact themselves whenever printed, logged or serialised.
 *
 * `String(s)`, `JSON.stringify(s)`, template literals and `util.inspect` all give `[secret sha256:ab12cd34ef56]`.
 * Only a transport's stdin/SFTP write or a backend call may {@link Secret.reveal} it. Secrets are compared by
 * SHA-256 fingerprint ({@link Secret.fingerprint}), never by printing.
 */
export class Secret {
  readonly #bytes: Buffer;
  #fingerprint: string | undefined;

  constructor(bytes: Uint8Array | string) {
    this.#bytes = Buffer.from(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
  }

  /** `n` bytes from the OS CSPRNG. */
  static random(n: number): Secret {
    return new Secret(randomBytes(n));
  }

  /** Length in bytes. */
  get length(): number {
    return this.#bytes.length;
  }

  /** Full lowercase-hex SHA-256 of the bytes (64 characters). Not secret: safe to log and compare. */
  fingerprint(): string {
    this.#fingerprint ??= sha256Hex(this.#bytes);
    return this.#fingerprint;
  }

  /** `sha256:` and the first 12 hex characters of {@link fingerprint}. */
  shortFingerprint(): string {
    return shortFingerprint(this.fingerprint());
  }

  /** True when both hold the same bytes (compared by fingerprint). */
  equals(other: Secret): boolean {
    return this.fingerprint() === other.fingerprint();
  }

  /**
   * The raw bytes (a copy). Call only at a boundary that must send the value: a transport's stdin or SFTP
   * write, or a backend request body. Never log, format or persist the result.
   */
  reveal(): Buffer {
    return Buffer.from(this.#bytes);
  }

  /** The bytes as UTF-8 text (same rules as {@link reveal}). */
  revealText(): string {
    return this.#bytes.toString('utf8');
  }

  toString(): string {
    return `[secret ${this.shortFingerprint()}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** True when `v` is a {@link Secret}. */
export function isSecret(v: unknown): v is Secret {
  return v instanceof Secret;
}

/**
 * An Engine-API JWT secret: 32 random bytes as exactly 64 lowercase hex characters, no `0x`, no newline
 * (ethereum/execution-apis src/engine/authentication.md; clients disagree on prefix and newline, so we
 * write the strictest form).
 */
export function mintEngineJwtHex(): Secret {
  return new Secret(randomBytes(32).toString('hex'));
}

const HEX64 = /^[0-9a-f]{64}$/;

/** True when the secret is exactly 64 lowercase hex characters. */
export function isEngineJwtHex(s: Secret): boolean {
  return s.length === 64 && HEX64.test(s.revealText());
}

/**
 * Normalise an imported Engine-API JWT (e.g. the old plaintext `jwt.hex`): strips surrounding whitespace and
 * one `0x` prefix and lowercases. Returns undefined when what remains is not 64 hex characters.
 */
export function normaliseEngineJwtHex(s: Secret): Secret | undefined {
  let t = s.revealText().trim();
  if (t.startsWith('0x') || t.startsWith('0X')) t = t.slice(2);
  t = t.toLowerCase();
  return HEX64.test(t) ? new Secret(t) : undefined;
}
