'use strict';
/**
 * Shared by the sandbox's EL and CL stand-ins (copied into each node host's tools dir, /usr/local/sbin).
 * Node builtins only. Implements the Engine-API authentication of ethereum/execution-apis
 * (src/engine/authentication.md): an HS256 JWT whose key is the 32 bytes hex-encoded in the JWT file,
 * sent as `Authorization: Bearer <token>`, with a required `iat` within ±60 s of the server's clock.
 *
 * The JWT file is read strictly: exactly 64 lowercase hex characters, no `0x`, no newline. Real clients
 * disagree on those (ARCHITECTURE.md section 4), so the stand-ins reject anything the tool should never
 * write. A missing file is a refusal to start (geth would silently generate a new secret instead).
 */
const fs = require('node:fs');
const crypto = require('node:crypto');

/** Compose env file of the node's deploy dir; KRYPTON_ENV_FILE overrides it (for local tests only). */
const ENV_FILE = process.env.KRYPTON_ENV_FILE || '/opt/krypton/.env';
/** Witness/diagnostic log dir; KRYPTON_LOG_DIR overrides it. */
const LOG_DIR = process.env.KRYPTON_LOG_DIR || '/var/log/krypton';
/** Maximum |now - iat| in seconds, per the spec. */
const IAT_WINDOW_S = 60;

/** Parses KEY=VALUE lines (compose env-file style: `#` comments, optional surrounding quotes). */
function readEnvFile(path = ENV_FILE) {
  const out = {};
  for (const raw of fs.readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim().replace(/^export\s+/, '');
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) value = value.slice(1, -1);
    out[key] = value;
  }
  return out;
}

/** Prints `<who>: refusing to start: <why>` on stderr and exits with `code`. */
function refuse(who, why, code = 1) {
  process.stderr.write(`${new Date().toISOString()} ${who}: refusing to start: ${why}\n`);
  process.exit(code);
}

/**
 * Loads the Engine-API secret the way the node's services do at start: JWT_PATH from the env file,
 * then that file. Exits the process (code 1: missing, code 2: malformed) instead of returning on error.
 * @returns {{ path: string, key: Buffer, fingerprint: string, env: Record<string,string> }}
 *   key = the 32 decoded bytes; fingerprint = "sha256:" + first 12 hex of SHA-256 over the file's bytes.
 */
function loadEngineSecret(who) {
  let env;
  try {
    env = readEnvFile();
  } catch (e) {
    refuse(who, `cannot read env file ${ENV_FILE}: ${e.code || e.message}`);
  }
  const path = env.JWT_PATH;
  if (!path) refuse(who, `JWT_PATH is not set in ${ENV_FILE}`);
  let bytes;
  try {
    bytes = fs.readFileSync(path);
  } catch (e) {
    refuse(who, `cannot read JWT file ${path}: ${e.code || e.message}`);
  }
  const text = bytes.toString('latin1');
  if (!/^[0-9a-f]{64}$/.test(text)) {
    refuse(who, `JWT file ${path} must hold exactly 64 lowercase hex characters (no 0x, no newline); it holds ${bytes.length} bytes`, 2);
  }
  const fingerprint = 'sha256:' + crypto.createHash('sha256').update(bytes).digest('hex').slice(0, 12);
  return { path, key: Buffer.from(text, 'hex'), fingerprint, env };
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

/** Returns a compact HS256 JWT over `claims` (default: {iat: now}). */
function signToken(key, claims = { iat: Math.floor(Date.now() / 1000) }) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = crypto.createHmac('sha256', key).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(sig)}`;
}

/**
 * Checks an Authorization header value against `key`.
 * @returns {{ok: true} | {ok: false, reason: string}} reason never contains the token.
 */
function verifyAuthorization(key, header, nowS = Math.floor(Date.now() / 1000)) {
  if (!header) return { ok: false, reason: 'missing Authorization header' };
  const m = /^Bearer\s+(\S+)$/.exec(header);
  if (!m) return { ok: false, reason: 'Authorization is not a Bearer token' };
  const parts = m[1].split('.');
  if (parts.length !== 3) return { ok: false, reason: 'malformed JWT' };
  let head, claims;
  try {
    head = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed JWT' };
  }
  if (!head || head.alg !== 'HS256') return { ok: false, reason: `unsupported alg ${head && head.alg}` };
  const want = crypto.createHmac('sha256', key).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return { ok: false, reason: 'signature invalid' };
  if (!claims || typeof claims.iat !== 'number') return { ok: false, reason: 'iat claim missing' };
  if (Math.abs(nowS - claims.iat) > IAT_WINDOW_S) return { ok: false, reason: `iat ${claims.iat} not within ±${IAT_WINDOW_S}s of ${nowS}` };
  return { ok: true };
}

/** Tells a waiting `nodectl` that this service is up (writes READY on fd KRYPTON_NOTIFY_FD, then closes it). */
function notifyReady() {
  const fd = Number(process.env.KRYPTON_NOTIFY_FD);
  if (!Number.isInteger(fd) || fd < 3) return;
  try {
    fs.writeSync(fd, 'READY\n');
    fs.closeSync(fd);
  } catch {
    /* nobody is waiting */
  }
}

function log(who, line) {
  process.stdout.write(`${new Date().toISOString()} ${who}: ${line}\n`);
}

module.exports = { ENV_FILE, LOG_DIR, IAT_WINDOW_S, readEnvFile, loadEngineSecret, signToken, verifyAuthorization, notifyReady, log };
