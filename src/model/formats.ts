/**
 * The bytes of each secret kind, and how each backend holds them — pure codecs, one place.
 *
 * - `hex64` (Engine-API JWT): exactly 64 lowercase hex characters, no `0x`, no newline
 *   (ethereum/execution-apis src/engine/authentication.md; clients disagree on prefix and newline, so we write
 *   the strictest form and describe precisely what is wrong with anything else).
 * - `env` (node env-secrets): a compose env file in canonical form — one `NAME='value'` line per variable,
 *   sorted by name (byte order, as Go's text/template ranges over a map, so the Vault Agent renders the same
 *   bytes), `'` escaped as `\'` (Docker Compose "Syntax for environment files": single-quoted values are used
 *   literally). Names match `[A-Za-z_][A-Za-z0-9_]*`; values hold no newline, CR or NUL, and no backslash
 *   before a quote or at the end (ambiguous in that syntax); `JWT_PATH` is refused (the tool owns it).
 * - `json` (Horcrux key files): the file's bytes verbatim (validated by src/horcrux/keys.ts at import).
 *
 * In KV v2 a single-field kind is one field (`hex`, `json`); env is one field per variable. In Secrets Manager
 * hex64/json are the SecretString itself and env is a JSON object of strings.
 *
 * Every function that rejects a value throws KryptonError E_INPUT whose message says what is wrong without the
 * value (a length, an offset, a name) — never the value itself.
 */
import { KryptonError } from '../core/errors.ts';
import { Secret } from '../core/secret.ts';
import type { SecretFormat } from './layout.ts';

// ------------------------------------------------------------------------------------------------------------
// hex64
// ------------------------------------------------------------------------------------------------------------

/**
 * What to do about a stored Engine-API JWT that is not canonical. Not "rotate": a rotation refuses the same
 * stored value before it starts (the run's preflight reads it first).
 */
export const HEX64_HINT =
  'if only the form is wrong (0x, uppercase, CR LF), run apply playbooks/provision.yml (or rotate-jwt.yml) with --fix-format to write the canonical form as a new version; otherwise write 64 lowercase hex characters (no 0x, no newline) as a new version in the store';

/**
 * What is wrong with an Engine-API JWT value, in words without the value ("31 bytes, expected 32 (64 hex)",
 * "byte 0: `0x` prefix", "trailing CR LF", "uppercase hex at byte 4"), or undefined when it is canonical.
 */
export function hex64Problem(s: Secret): string | undefined {
  const t = s.revealText();
  if (/^[0-9a-f]{64}$/.test(t)) return undefined;
  const problems: string[] = [];
  let body = t;
  const trail = /(\r?\n|\r|[ \t])+$/.exec(body);
  if (trail) {
    const names: Record<string, string> = { '\r': 'CR', '\n': 'LF', ' ': 'space', '\t': 'TAB' };
    problems.push(`trailing ${[...trail[0]].map((c) => names[c]).join(' ')}`);
    body = body.slice(0, trail.index);
  }
  const lead = /^[ \t\r\n]+/.exec(body);
  if (lead) {
    problems.push('leading whitespace');
    body = body.slice(lead[0].length);
  }
  let offset = t.length - t.trimStart().length;
  if (/^0[xX]/.test(body)) {
    problems.push(`byte ${offset}: \`${body.slice(0, 2)}\` prefix`);
    body = body.slice(2);
    offset += 2;
  }
  const bad = /[^0-9a-fA-F]/.exec(body);
  if (bad) problems.push(`byte ${offset + bad.index}: not a hex digit`);
  else {
    const upper = /[A-F]/.exec(body);
    if (upper) problems.push(`uppercase hex at byte ${offset + upper.index}`);
    if (body.length !== 64) problems.push(`${body.length % 2 === 0 ? `${body.length / 2} bytes` : `${body.length} hex characters`}, expected 32 (64 hex)`);
  }
  return problems.length ? problems.join('; ') : 'not exactly 64 lowercase hex characters';
}

/**
 * The canonical form of an Engine-API JWT written in another form (`0x`, uppercase, surrounding whitespace),
 * or undefined when no canonical form exists (wrong length, not hex). Used only by an explicit `--fix-format`
 * or an import, never silently.
 */
export function canonicalHex64(s: Secret): Secret | undefined {
  let t = s.revealText().trim();
  if (/^0[xX]/.test(t)) t = t.slice(2);
  t = t.toLowerCase();
  return /^[0-9a-f]{64}$/.test(t) ? new Secret(t) : undefined;
}

// ------------------------------------------------------------------------------------------------------------
// env
// ------------------------------------------------------------------------------------------------------------

/** A variable name compose and POSIX shells accept. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Names the tool manages itself in the compose env file; an env-secret may not shadow them. */
export const RESERVED_ENV_NAMES: readonly string[] = ['JWT_PATH'];

/** Why `name` cannot be an env-secret, or undefined. */
export function envNameProblem(name: string): string | undefined {
  if (!ENV_NAME.test(name)) return `${JSON.stringify(name.slice(0, 64))} is not a variable name (expected [A-Za-z_][A-Za-z0-9_]*)`;
  if (RESERVED_ENV_NAMES.includes(name)) return `${name} would shadow the JWT_PATH krypton-secrets manages in the compose env file`;
  return undefined;
}

/** Why the value of `name` cannot go into a compose env file literally, or undefined (the value is never quoted back). */
export function envValueProblem(name: string, value: string): string | undefined {
  const at = (re: RegExp) => re.exec(value)?.index;
  const nl = at(/[\r\n]/);
  if (nl !== undefined) return `${name}: the value has a line break at character ${nl}`;
  const nul = at(/\u0000/);
  if (nul !== undefined) return `${name}: the value has a NUL at character ${nul}`;
  const bq = at(/\\'/);
  if (bq !== undefined) return `${name}: the value has a backslash before a quote at character ${bq} (ambiguous in a compose env file)`;
  if (value.endsWith('\\')) return `${name}: the value ends with a backslash (ambiguous in a compose env file)`;
  return undefined;
}

/**
 * Checks variables and renders the canonical env file (see the file comment).
 * @throws KryptonError E_INPUT listing every bad name/value (by name and offset, never by value), with `where`
 * (a store path, a file) in the message.
 */
export function renderEnvFile(vars: Readonly<Record<string, string>>, where: string): Secret {
  const names = Object.keys(vars).sort(byteOrder);
  const problems = names.flatMap((n) => {
    const p = envNameProblem(n) ?? envValueProblem(n, vars[n]!);
    return p ? [p] : [];
  });
  if (problems.length) {
    throw new KryptonError('E_INPUT', `${where}: ${problems.join('; ')}`, {
      hint: 'fix these variables in the store (names [A-Za-z_][A-Za-z0-9_]*, one-line values, no JWT_PATH)',
    });
  }
  return new Secret(names.map((n) => `${n}='${vars[n]!.replace(/'/g, "\\'")}'\n`).join(''));
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A line of an env file that could not be read. */
export interface EnvLineProblem {
  /** 1-based line number. */
  line: number;
  message: string;
}

/**
 * Parses a plaintext env file as operators write them (`NAME=value`, optional `export `, `#` comments, blank
 * lines, values unquoted, `'single'` (literal) or `"double"` (with `\n \t \\ \"` escapes)) — for import-env.
 * Returns the variables, or every problem with its line number (never the value). Duplicate names, bad names,
 * `JWT_PATH`, multi-line values and anything that is not `NAME=value` are problems.
 */
export function parseEnvText(text: string): { ok: true; vars: Record<string, string> } | { ok: false; problems: EnvLineProblem[] } {
  const vars: Record<string, string> = {};
  const problems: EnvLineProblem[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/\r$/, '');
    const n = i + 1;
    if (/^\s*(#.*)?$/.test(line)) continue;
    const m = /^\s*(?:export\s+)?([^=\s]+)\s*=(.*)$/.exec(line);
    if (!m) {
      problems.push({ line: n, message: 'expected NAME=value' });
      continue;
    }
    const name = m[1]!;
    const nameProblem = envNameProblem(name);
    if (nameProblem) {
      problems.push({ line: n, message: nameProblem });
      continue;
    }
    const value = unquote(m[2]!.trim());
    if (value === undefined) {
      problems.push({ line: n, message: `${name}: unterminated or malformed quoted value` });
      continue;
    }
    const vp = envValueProblem(name, value);
    if (vp) {
      problems.push({ line: n, message: vp });
      continue;
    }
    if (name in vars) {
      problems.push({ line: n, message: `${name} is set twice` });
      continue;
    }
    vars[name] = value;
  }
  return problems.length ? { ok: false, problems } : { ok: true, vars };
}

function unquote(v: string): string | undefined {
  if (v.startsWith("'")) {
    const end = v.lastIndexOf("'");
    if (end === 0 || !/^\s*(#.*)?$/.test(v.slice(end + 1))) return undefined;
    return v.slice(1, end).replace(/\\'/g, "'");
  }
  if (v.startsWith('"')) {
    let out = '';
    for (let i = 1; i < v.length; i++) {
      const c = v[i]!;
      if (c === '\\' && i + 1 < v.length) {
        const e = v[++i]!;
        out += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
      } else if (c === '"') {
        return /^\s*(#.*)?$/.test(v.slice(i + 1)) ? out : undefined;
      } else out += c;
    }
    return undefined;
  }
  // Unquoted: an inline comment needs a space before `#` (compose's rule).
  return v.replace(/\s+#.*$/, '');
}

/**
 * The variables of a canonical env file (what {@link renderEnvFile} made), e.g. to write them back to a store.
 * @throws KryptonError E_INPUT when `s` is not in canonical form.
 */
export function envVarsOf(s: Secret, where: string): Record<string, string> {
  const parsed = parseEnvText(s.revealText());
  if (!parsed.ok) throw new KryptonError('E_INPUT', `${where}: ${parsed.problems.map((p) => `line ${p.line}: ${p.message}`).join('; ')}`, { hint: 'write the env-secrets again with import-env' });
  return parsed.vars;
}

// ------------------------------------------------------------------------------------------------------------
// Per format: checks and store codecs
// ------------------------------------------------------------------------------------------------------------

/**
 * Why `s` is not a valid value of `format` (in words without the value), or undefined. hex64: see
 * {@link hex64Problem}; env: must be canonical; json: non-empty, at most 4096 bytes (KMS Encrypt's limit),
 * parseable JSON.
 */
export function valueProblem(format: SecretFormat, s: Secret): string | undefined {
  if (format === 'hex64') return hex64Problem(s);
  if (format === 'env') {
    const parsed = parseEnvText(s.revealText());
    if (!parsed.ok) return parsed.problems.map((p) => `line ${p.line}: ${p.message}`).join('; ');
    return renderEnvFile(parsed.vars, 'env').fingerprint() === s.fingerprint() ? undefined : 'not in canonical form (sorted NAME=\'value\' lines)';
  }
  if (s.length === 0) return 'empty';
  if (s.length > 4096) return `${s.length} bytes, over 4096`;
  try {
    JSON.parse(s.revealText());
  } catch {
    return 'not JSON';
  }
  return undefined;
}

/**
 * The bytes of a KV v2 secret's fields for `format`: the one field `field` (hex64, json), or every field as a
 * variable (env). `where` names the store path and version in errors.
 * @throws KryptonError E_INPUT when the field is missing, or a value is invalid (hex64 problems are described).
 */
export function fromKvFields(format: SecretFormat, field: string | undefined, data: Readonly<Record<string, Secret>>, where: string): Secret {
  if (format === 'env') {
    return renderEnvFile(Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.revealText()])), where);
  }
  const v = field ? data[field] : undefined;
  if (!v) {
    const others = Object.keys(data);
    throw new KryptonError('E_INPUT', `${where} has no field "${field}"${others.length ? ` (it has ${others.map((k) => JSON.stringify(k)).join(', ')})` : ''}`, {
      hint: `write the value under the field "${field}"`,
    });
  }
  const p = valueProblem(format, v);
  if (p) throw new KryptonError('E_INPUT', `${where} field "${field}": ${p}`, { hint: format === 'hex64' ? HEX64_HINT : 'import the value again' });
  return v;
}

/** The KV v2 fields that hold `value` (see {@link fromKvFields}). */
export function toKvFields(format: SecretFormat, field: string | undefined, value: Secret, where: string): Record<string, Secret> {
  if (format === 'env') return Object.fromEntries(Object.entries(envVarsOf(value, where)).map(([k, v]) => [k, new Secret(v)]));
  if (!field) throw new Error(`internal: format ${format} needs a KV field`);
  return { [field]: value };
}

/** A value's bytes from a Secrets Manager SecretString (env: a JSON object of strings). */
export function fromSecretString(format: SecretFormat, s: Secret, where: string): Secret {
  if (format === 'env') {
    let obj: unknown;
    try {
      obj = JSON.parse(s.revealText());
    } catch {
      throw new KryptonError('E_INPUT', `${where} is not a JSON object of variables`, { hint: 'store the env-secrets with import-env (a JSON object of strings)' });
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj) || Object.values(obj).some((v) => typeof v !== 'string')) {
      throw new KryptonError('E_INPUT', `${where} is not a JSON object whose values are all strings`, { hint: 'store the env-secrets with import-env' });
    }
    return renderEnvFile(obj as Record<string, string>, where);
  }
  const p = valueProblem(format, s);
  if (p) throw new KryptonError('E_INPUT', `${where}: ${p}`, { hint: format === 'hex64' ? HEX64_HINT : 'import the value again' });
  return s;
}

/** The SecretString that holds `value` (env: a compact JSON object, names sorted). */
export function toSecretString(format: SecretFormat, value: Secret, where: string): Secret {
  if (format !== 'env') return value;
  const vars = envVarsOf(value, where);
  return new Secret(JSON.stringify(Object.fromEntries(Object.keys(vars).sort(byteOrder).map((k) => [k, vars[k]]))));
}

/** A value's bytes from a decrypted KMS blob (the blob holds the bytes themselves). */
export function fromBlobPlaintext(format: SecretFormat, s: Secret, where: string): Secret {
  const p = valueProblem(format, s);
  if (p) throw new KryptonError('E_INPUT', `${where} decrypts to a value that is not valid: ${p}`, { hint: format === 'hex64' ? HEX64_HINT : 'import the value again (a valid one) as a new version' });
  return s;
}
