/**
 * Error codes a user can see, with the CLI exit code each maps to (documented in README.md "Exit codes").
 * One code per condition; messages say what failed in the operator's terms, hints say what to do next.
 */
export const ERROR_CODES = {
  E_USAGE: 2,
  E_INVENTORY: 3,
  E_PLAYBOOK: 3,
  E_INPUT: 3,
  E_SSH_HOSTKEY: 10,
  E_SSH_AUTH: 11,
  E_SSH_CONNECT: 12,
  E_SSH_EXEC: 13,
  E_SFTP: 13,
  E_VAULT_CONFIG: 20,
  E_VAULT_DENIED: 21,
  E_VAULT: 22,
  E_VAULT_WRAP: 23,
  E_KMS_CONFIG: 30,
  E_KMS_CONTEXT: 31,
  E_KMS_DENIED: 32,
  E_KMS: 33,
  E_PLAN_CONFLICT: 40,
  E_FACT: 41,
  E_TIMEOUT: 42,
  E_ENGINE_AUTH: 50,
  E_ENGINE_UNREACHABLE: 51,
  /** The laptop–host clock skew is beyond what the Engine API's `iat` check allows (±60 s), or verify's bound. */
  E_CLOCK_SKEW: 52,
  E_VERIFY: 60,
  E_HALTED: 61,
  E_INTERNAL: 70,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Exit code when one or more hosts failed (the per-host codes are in the summary). */
export const EXIT_HOSTS_FAILED = 1;

export interface KryptonErrorOptions {
  /** What to do next, in one line. */
  hint?: string;
  /** Inventory name of the host the error belongs to. */
  host?: string;
  /** Task id (`family.verb`) the error belongs to. */
  task?: string;
  /** The underlying error, already scrubbed of tokens and secret values (see {@link scrubCause}). */
  cause?: unknown;
}

/**
 * The one error class users see: `code`, a `message` in the operator's words, a `hint`, and where it happened.
 * Never carries a secret value, a token or a raw library error object (library errors are passed through
 * {@link scrubCause} first).
 */
export class KryptonError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  host: string | undefined;
  task: string | undefined;

  constructor(code: ErrorCode, message: string, opts: KryptonErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: scrubCause(opts.cause) });
    this.name = 'KryptonError';
    this.code = code;
    this.hint = opts.hint;
    this.host = opts.host;
    this.task = opts.task;
  }

  /** `{code, message, hint?}`: the shape put in `--json` output. */
  toJSON(): { code: ErrorCode; message: string; hint?: string } {
    return { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}) };
  }
}

/** Wraps anything thrown into a KryptonError (unknown errors become E_INTERNAL with a scrubbed message). */
export function toKryptonError(err: unknown, fallback: ErrorCode = 'E_INTERNAL'): KryptonError {
  if (err instanceof KryptonError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new KryptonError(fallback, scrubText(msg), { cause: err });
}

const TOKEN_PATTERNS: RegExp[] = [
  /\b(hvs|hvb|hvr|s|b|r)\.[A-Za-z0-9_-]{20,}/g, // Vault/OpenBao service, batch and recovery tokens
  /(?<![0-9a-f])(?:0x)?[0-9a-f]{64}(?![0-9a-f])/gi, // 32-byte hex secrets (the Engine-API JWT), with or without 0x
  /\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, // JWTs
  /(X-Vault-Token|Authorization)["']?\s*[:=]\s*["']?(?:(?:Bearer|Basic|Token)\s+)?[^\s"',}]+/gi,
  /\bAKIA[0-9A-Z]{16}\b/g,
  /(aws_secret_access_key|SecretAccessKey|secret_id|wrapping_token|client_token)["']?\s*[:=]\s*["']?[^\s"',}]+/gi,
];

/** Replaces anything that looks like a token, key or 32-byte hex secret in `text` with `[redacted]`. */
export function scrubText(text: string): string {
  let out = text;
  for (const re of TOKEN_PATTERNS) out = out.replace(re, '[redacted]');
  return out;
}

/**
 * Reduces a library error to a plain Error holding only its name, scrubbed message and (numeric/short)
 * status fields. node-vault re-throws request errors carrying the client token in `options.headers`, and
 * AWS SDK errors carry request metadata: neither object may travel further as a `cause`.
 */
export function scrubCause(err: unknown): Error {
  if (err instanceof KryptonError) return err;
  const e = err as { name?: unknown; message?: unknown; code?: unknown; statusCode?: unknown };
  const out = new Error(scrubText(typeof e?.message === 'string' ? e.message : String(err)));
  out.name = typeof e?.name === 'string' ? e.name : 'Error';
  // The stack of where it was thrown (for --debug): the original frames under the scrubbed message line.
  const frames = err instanceof Error && typeof err.stack === 'string' ? err.stack.split('\n').filter((l) => /^\s+at /.test(l)) : [];
  if (frames.length) out.stack = [`${out.name}: ${out.message}`, ...frames.map(scrubText)].join('\n');
  if (typeof e?.code === 'string' || typeof e?.code === 'number') (out as Error & { code?: unknown }).code = e.code;
  if (typeof e?.statusCode === 'number') (out as Error & { statusCode?: number }).statusCode = e.statusCode;
  return out;
}
