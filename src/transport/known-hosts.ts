/**
 * OpenSSH known_hosts: parse, match a host's key, fingerprint, append.
 *
 * Format: OpenSSH sshd(8), section "SSH_KNOWN_HOSTS FILE FORMAT". Each line is
 * `[@marker] hostpatterns keytype base64-key [comment]`, where
 * - `hostpatterns` is a comma list of names/addresses with `*`/`?` wildcards and `!` negation; a host on a
 *   port other than 22 is written `[host]:port`; or a single hashed entry `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`
 *   (ssh-keygen -H, `HashKnownHosts yes`);
 * - `@revoked` marks a key that must never be accepted; `@cert-authority` marks a CA key (ignored here: we
 *   verify plain host keys only);
 * - `#` comments and blank lines are skipped, as are lines that do not parse (OpenSSH skips them too).
 *
 * Everything here is pure except {@link readKnownHostsFiles} and {@link appendKnownHost}.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** One usable line of a known_hosts file. */
export interface KnownHostEntry {
  /** File the line came from (as given to {@link parseKnownHosts}), for messages. */
  file: string;
  /** 1-based line number in {@link file}. */
  line: number;
  /** `revoked`, `cert-authority`, or undefined for a plain host key line. */
  marker: 'revoked' | 'cert-authority' | undefined;
  /** The host field exactly as written (comma list of patterns, or one `|1|salt|hash`). */
  hostField: string;
  /** Key type as named inside the key blob, e.g. `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`. */
  keyType: string;
  /** The raw public key blob (RFC 4253 section 6.6 encoding: string type, then type-specific fields). */
  keyBlob: Buffer;
}

/** Outcome of {@link verifyHostKey}. `entry` / `known` say which known_hosts lines decided it. */
export type HostKeyVerdict =
  | { status: 'match'; entry: KnownHostEntry }
  /** The host is known, but with other key(s): `known` lists them, those of the offered key's type first. */
  | { status: 'mismatch'; known: KnownHostEntry[] }
  | { status: 'unknown' }
  | { status: 'revoked'; entry: KnownHostEntry };

/** Default port: a host on it is looked up by bare name, any other port as `[host]:port`. */
export const SSH_DEFAULT_PORT = 22;

const HASH_MAGIC = '|1|';

/**
 * Parse the text of a known_hosts file. Lines that do not parse (bad base64, a key type that disagrees with
 * the blob, old SSH-1 `bits e n` lines, unknown markers) are skipped, as OpenSSH does.
 * @param file name used in {@link KnownHostEntry.file} (for messages only; nothing is read).
 */
export function parseKnownHosts(text: string, file = 'known_hosts'): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const fields = raw.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0]!.startsWith('@')) {
      const m = fields.shift()!;
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else continue;
    }
    const [hostField, keyTypeField, keyB64] = fields;
    if (hostField === undefined || keyTypeField === undefined || keyB64 === undefined) continue;
    const keyBlob = decodeBase64Strict(keyB64);
    if (keyBlob === undefined) continue;
    const keyType = blobKeyType(keyBlob);
    if (keyType === undefined || keyType !== keyTypeField) continue;
    if (hostField.startsWith('|') && parseHashed(hostField) === undefined) continue;
    out.push({ file, line: i + 1, marker, hostField, keyType, keyBlob });
  }
  return out;
}

/**
 * Read and parse several known_hosts files (missing files count as empty; other read errors throw).
 * Entries keep their file name and line, in file order.
 */
export async function readKnownHostsFiles(files: string[]): Promise<KnownHostEntry[]> {
  const all: KnownHostEntry[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    all.push(...parseKnownHosts(text, f));
  }
  return all;
}

/**
 * The name a host is recorded under: `host` (lowercased) on port 22, `[host]:port` otherwise, exactly as
 * OpenSSH's put_host_port() writes it.
 */
export function knownHostsName(host: string, port: number = SSH_DEFAULT_PORT): string {
  const h = host.toLowerCase();
  return port === SSH_DEFAULT_PORT ? h : `[${h}]:${port}`;
}

/**
 * Does the host field of `entry` match `name` (the output of {@link knownHostsName})?
 * Hashed fields compare HMAC-SHA1(salt, name). Pattern lists follow OpenSSH match_hostname(): a matching
 * negated pattern (`!pat`) vetoes the whole line, otherwise any matching positive pattern matches.
 */
export function hostFieldMatches(hostField: string, name: string): boolean {
  const lname = name.toLowerCase();
  if (hostField.startsWith('|')) {
    const h = parseHashed(hostField);
    if (!h) return false;
    return createHmac('sha1', h.salt).update(lname).digest().equals(h.hash);
  }
  let positive = false;
  for (const pat of hostField.split(',')) {
    if (pat === '') continue;
    const negated = pat.startsWith('!');
    const p = negated ? pat.slice(1) : pat;
    if (wildcardMatch(p.toLowerCase(), lname)) {
      if (negated) return false;
      positive = true;
    }
  }
  return positive;
}

/**
 * Check the key a host offered against known_hosts entries.
 *
 * - `revoked`: some `@revoked` line holds this key. Applied whatever that line's host patterns are (sshd(8):
 *   a revoked key "must not ever be accepted"; stricter than OpenSSH, which only consults lines matching
 *   the host), and it wins over any matching plain line.
 * - `match`: a plain line for this host holds exactly this key blob.
 * - `mismatch`: plain lines exist for this host, none holds this key. This is stricter than OpenSSH, which
 *   treats a key of a type not yet recorded as new: we call any unrecorded key for a known host a change.
 * - `unknown`: no plain line matches the host.
 * `@cert-authority` lines are ignored (we verify plain host keys, not certificates).
 * @param host the name or address connected to (or HostKeyAlias); matched case-insensitively.
 * @param port TCP port; non-22 ports are looked up as `[host]:port`.
 * @param keyBlob the raw public key blob the server sent in the key exchange.
 */
export function verifyHostKey(entries: KnownHostEntry[], host: string, port: number, keyBlob: Buffer): HostKeyVerdict {
  const revoked = entries.find((e) => e.marker === 'revoked' && e.keyBlob.equals(keyBlob));
  if (revoked) return { status: 'revoked', entry: revoked };
  const name = knownHostsName(host, port);
  const plain = entries.filter((e) => e.marker === undefined && hostFieldMatches(e.hostField, name));
  const hit = plain.find((e) => e.keyBlob.equals(keyBlob));
  if (hit) return { status: 'match', entry: hit };
  if (plain.length === 0) return { status: 'unknown' };
  const type = blobKeyType(keyBlob);
  const sameType = plain.filter((e) => e.keyType === type);
  return { status: 'mismatch', known: [...sameType, ...plain.filter((e) => e.keyType !== type)] };
}

/** Key types recorded (plain lines) for `host:port`: used to prefer those host key algorithms, as OpenSSH does. */
export function knownKeyTypes(entries: KnownHostEntry[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  const types: string[] = [];
  for (const e of entries) {
    if (e.marker === undefined && hostFieldMatches(e.hostField, name) && !types.includes(e.keyType)) types.push(e.keyType);
  }
  return types;
}

/**
 * SHA-256 fingerprint of a public key blob, exactly as `ssh-keygen -lf` prints it:
 * `SHA256:` + base64 (standard alphabet) of SHA-256(blob) without `=` padding (43 characters).
 */
export function sha256Fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Normalise a fingerprint written by a person (inventory `hostKey`): accepts `SHA256:xxx` (any case of the
 * prefix) with or without `=` padding. Returns undefined when it is not a SHA-256 fingerprint.
 */
export function normaliseFingerprint(fp: string): string | undefined {
  const m = /^sha256:([A-Za-z0-9+/]{43})=?$/i.exec(fp.trim());
  return m ? `SHA256:${m[1]}` : undefined;
}

/** Display name of a key type the way ssh-keygen -l shows it: `ED25519`, `RSA`, `ECDSA`, `DSA`. */
export function keyTypeLabel(keyType: string): string {
  if (keyType === 'ssh-ed25519') return 'ED25519';
  if (keyType === 'ssh-rsa') return 'RSA';
  if (keyType.startsWith('ecdsa-sha2-')) return 'ECDSA';
  if (keyType === 'ssh-dss') return 'DSA';
  return keyType;
}

/** The key type string at the start of a public key blob (`ssh-ed25519`, …), or undefined if malformed. */
export function blobKeyType(keyBlob: Buffer): string | undefined {
  if (keyBlob.length < 4) return undefined;
  const len = keyBlob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > keyBlob.length) return undefined;
  const t = keyBlob.subarray(4, 4 + len).toString('latin1');
  return /^[\x21-\x7e]+$/.test(t) ? t : undefined;
}

/**
 * Format one known_hosts line for `host:port` (no trailing newline). With `hash`, the host field is
 * `|1|salt|hash` (random 20-byte salt), as `HashKnownHosts yes` writes it.
 */
export function formatKnownHostLine(host: string, port: number, keyType: string, keyBlob: Buffer, opts: { hash?: boolean } = {}): string {
  const name = knownHostsName(host, port);
  let field = name;
  if (opts.hash) {
    const salt = randomBytes(20);
    field = `${HASH_MAGIC}${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
  }
  return `${field} ${keyType} ${keyBlob.toString('base64')}`;
}

/**
 * Append `host:port keyType key` to a known_hosts file (what `--accept-new` does for a host seen for the
 * first time). Creates the file's directory (mode 0o700) and the file (mode 0o644, like ssh) when missing,
 * and adds a newline first if the file does not end with one. Never call it for a changed or revoked key.
 * @param opts.hash write a hashed `|1|` host field (ssh_config `HashKnownHosts yes`).
 */
export async function appendKnownHost(file: string, host: string, port: number, keyType: string, keyBlob: Buffer, opts: { hash?: boolean } = {}): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  let prefix = '';
  try {
    const cur = await readFile(file);
    if (cur.length > 0 && cur[cur.length - 1] !== 0x0a) prefix = '\n';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await appendFile(file, `${prefix}${formatKnownHostLine(host, port, keyType, keyBlob, opts)}\n`, { mode: 0o644 });
}

function parseHashed(field: string): { salt: Buffer; hash: Buffer } | undefined {
  if (!field.startsWith(HASH_MAGIC)) return undefined;
  const parts = field.slice(HASH_MAGIC.length).split('|');
  if (parts.length !== 2) return undefined;
  const salt = decodeBase64Strict(parts[0]!);
  const hash = decodeBase64Strict(parts[1]!);
  if (!salt || !hash || hash.length !== 20 || salt.length !== 20) return undefined;
  return { salt, hash };
}

function decodeBase64Strict(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.length === 0 ? undefined : b;
}

/** OpenSSH match_pattern(): `*` any run of characters (also none), `?` exactly one. */
function wildcardMatch(pattern: string, s: string): boolean {
  if (!pattern.includes('*') && !pattern.includes('?')) return pattern === s;
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 's');
  return re.test(s);
}
