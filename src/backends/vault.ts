/**
 * The Vault/OpenBao backend: {@link resolveVaultSettings} finds address, token, namespace and CA the way the
 * `bao`/`vault` CLIs do, and {@link createVaultBackend} implements {@link VaultBackend} on node-vault's generic
 * `request` (one code path for every call, so every error is translated in one place).
 *
 * API sources (Vault HTTP API docs; OpenBao is API-compatible): secret/kv/kv-v2 (`<mount>/data/<path>`,
 * `<mount>/metadata/<path>`, `options.cas`), auth/approle (`role/<role>/role-id`, `role/<role>/secret-id`),
 * concepts/response-wrapping (`X-Vault-Wrap-TTL` request header, `wrap_info` in the response),
 * system/wrapping-lookup and system/wrapping-unwrap, system/policies (`sys/policies/acl/<name>`),
 * system/capabilities, auth/token (`create-orphan`, `lookup-self`).
 *
 * What node-vault 0.12 does that matters here (read from its source):
 * - HTTP errors reject with `ApiResponseError { message: errors[0], response: { statusCode, body } }`; network and
 *   TLS errors reject with the raw AxiosError, whose `config.headers['X-Vault-Token']` and `request._header` hold
 *   the token. Neither object ever leaves this file: {@link translateVaultError} builds a KryptonError from
 *   status, Vault's `errors` text (scrubbed) and the error code only.
 * - `request()` writes `X-Vault-Token` into the `headers` object it is given (we pass a fresh one per call;
 *   a caller-supplied `X-Vault-Token` wins, which is how unwrap/lookup-self use another token) and adds
 *   `X-Vault-Namespace` when `client.namespace` is set.
 * - Its `tokenCreate*`, `tokenRenew*` and `*Login` helpers REPLACE the client's token with the new one
 *   (`tokenSource`), and its `debug` logger prints request bodies (secrets) when `DEBUG=node-vault`: we use
 *   neither (raw requests; a no-op logger).
 * - It reads `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_NAMESPACE`, `VAULT_PREFIX` and `VAULT_SKIP_VERIFY` from the
 *   environment behind our back: every one is pinned from {@link VaultSettings} instead (TLS is always verified).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import nodeVault from 'node-vault';
import { KryptonError, scrubText } from '../core/errors.ts';
import { Secret, isSecret } from '../core/secret.ts';
import type { KvSecret, VaultBackend, VaultTokenInfo, WrappedSecretId } from './backend.ts';
import { assertSegment as assertVaultSegment, kvDataPath, kvMetadataPath, normaliseVaultPath } from '../model/layout.ts';

// ---------------------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------------------

/** Where requests go and with which token. */
export interface VaultSettings {
  /** Base URL without trailing slash, e.g. `https://vault.example:8200`. */
  address: string;
  /** The client token (sent as `X-Vault-Token`). */
  token: Secret;
  /** Enterprise/OpenBao namespace (sent as `X-Vault-Namespace`), if any. */
  namespace?: string;
  /** Path of a PEM CA bundle to verify an https address with (like `VAULT_CACERT`). */
  caCert?: string;
  /** Where each value came from (`BAO_ADDR`, `VAULT_TOKEN`, `inventory`, `~/.vault-token`…), for messages. */
  sources?: { address?: string; token?: string; namespace?: string; caCert?: string };
}

/** The Vault part of an inventory (all optional; the environment wins, as with the CLI). */
export interface VaultInventorySettings {
  address?: string;
  namespace?: string;
  caCert?: string;
}

function fromEnv(env: NodeJS.ProcessEnv, name: string): { value: string; source: string } | undefined {
  for (const prefix of ['BAO_', 'VAULT_']) {
    const value = env[prefix + name]?.trim();
    if (value) return { value, source: prefix + name };
  }
  return undefined;
}

/**
 * Normalises and checks a Vault address: `http:` or `https:`, no credentials, query or fragment; trailing `/`
 * removed. @throws KryptonError E_VAULT_CONFIG naming `source`.
 */
export function normaliseVaultAddress(address: string, source = 'the Vault address'): string {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new KryptonError('E_VAULT_CONFIG', `${source} ${JSON.stringify(scrubText(address))} is not a URL`, {
      hint: 'use a URL such as https://vault.example.com:8200',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new KryptonError('E_VAULT_CONFIG', `${source} must be an http:// or https:// URL, not ${url.protocol}`, {
      hint: 'use a URL such as https://vault.example.com:8200',
    });
  if (url.username || url.password || url.search || url.hash)
    throw new KryptonError('E_VAULT_CONFIG', `${source} must not contain credentials, a query or a fragment`, {
      hint: 'give the token in BAO_TOKEN/VAULT_TOKEN, and the address as scheme://host:port only',
    });
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/**
 * Resolves Vault/OpenBao client settings the way the `bao` and `vault` CLIs do.
 *
 * - address: `BAO_ADDR`, else `VAULT_ADDR`, else `inventory.address`. The environment wins over the inventory,
 *   as an environment variable wins over a config file for the CLI; unlike the CLI there is no
 *   `https://127.0.0.1:8200` default: a missing address is an error.
 * - token: `BAO_TOKEN`, else `VAULT_TOKEN`, else the CLI's token file `~/.vault-token` (`$HOME`; OpenBao 2.x's
 *   built-in token helper still uses `~/.vault-token`, there is no `~/.bao-token`). External token helpers
 *   configured in `~/.vault`/`~/.bao` are not run.
 * - namespace: `BAO_NAMESPACE`, else `VAULT_NAMESPACE`, else `inventory.namespace`.
 * - caCert (a PEM file path): `BAO_CACERT`, else `VAULT_CACERT`, else `inventory.caCert`.
 * A `BAO_*` variable that is set but empty counts as unset (OpenBao's `ReadBaoVariable` rule). Not honoured:
 * `*_SKIP_VERIFY` (TLS is always verified), `*_CAPATH`, `*_CLIENT_CERT`/`*_CLIENT_KEY`.
 *
 * @param env usually `process.env`.
 * @param inventory the inventory's Vault settings, used where the environment has none.
 * @param opts.homeDir where `.vault-token` is looked for (default `$HOME`, else `os.homedir()`).
 * @throws KryptonError E_VAULT_CONFIG when the address or token is missing, the address is not an http(s)
 *   URL, or `~/.vault-token` exists but cannot be read.
 */
export function resolveVaultSettings(
  env: NodeJS.ProcessEnv = process.env,
  inventory?: VaultInventorySettings,
  opts: { homeDir?: string } = {},
): VaultSettings {
  const sources: NonNullable<VaultSettings['sources']> = {};

  const addr = fromEnv(env, 'ADDR') ?? (inventory?.address?.trim() ? { value: inventory.address.trim(), source: 'inventory' } : undefined);
  if (!addr)
    throw new KryptonError('E_VAULT_CONFIG', 'no Vault address: BAO_ADDR and VAULT_ADDR are unset and the inventory names none', {
      hint: 'export BAO_ADDR=https://<vault-host>:8200 (or VAULT_ADDR), or set the Vault address in the inventory',
    });
  const address = normaliseVaultAddress(addr.value, addr.source === 'inventory' ? "the inventory's Vault address" : addr.source);
  sources.address = addr.source;

  let token: Secret | undefined;
  const envToken = fromEnv(env, 'TOKEN');
  if (envToken) {
    token = new Secret(envToken.value);
    sources.token = envToken.source;
  } else {
    const home = opts.homeDir ?? env.HOME ?? homedir();
    const file = join(home, '.vault-token');
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR')
        throw new KryptonError('E_VAULT_CONFIG', `cannot read the Vault token file ${file} (${String(code ?? 'error')})`, {
          hint: 'fix its permissions, or export BAO_TOKEN / VAULT_TOKEN',
        });
    }
    if (text) {
      token = new Secret(text);
      sources.token = '~/.vault-token';
    }
  }
  if (!token)
    throw new KryptonError('E_VAULT_CONFIG', `no Vault token for ${address}: BAO_TOKEN and VAULT_TOKEN are unset and ~/.vault-token is absent or empty`, {
      hint: 'log in with `bao login` (or `vault login`), or export BAO_TOKEN / VAULT_TOKEN',
    });

  const settings: VaultSettings = { address, token, sources };
  const ns = fromEnv(env, 'NAMESPACE') ?? (inventory?.namespace?.trim() ? { value: inventory.namespace.trim(), source: 'inventory' } : undefined);
  if (ns) {
    settings.namespace = ns.value;
    sources.namespace = ns.source;
  }
  const ca = fromEnv(env, 'CACERT') ?? (inventory?.caCert?.trim() ? { value: inventory.caCert.trim(), source: 'inventory' } : undefined);
  if (ca) {
    settings.caCert = ca.value;
    sources.caCert = ca.source;
  }
  return settings;
}

// ---------------------------------------------------------------------------------------------------------
// Error translation (pure)
// ---------------------------------------------------------------------------------------------------------

/** What a call was doing, for messages. */
export interface VaultOpContext {
  /** The operation in the operator's words, completing "Vault refused to …": `create a secret_id for role X`. */
  op: string;
  /** The API path (no `/v1/`), as it appears in ACL policies: the hint names it. */
  path: string;
  /** ACL capability the token needs on `path`: `read`, `update`, `create and update`, `sudo and update`… */
  capability: string;
  /** The Vault address (for connection errors). */
  address: string;
  /** Where the address came from (`BAO_ADDR`, `inventory`…), for the hint. */
  addressSource?: string;
}

/** A library error reduced to the facts we use. Never holds headers, config or the request. */
export type VaultFailure =
  | { kind: 'http'; status: number; errors: string[] }
  | { kind: 'network'; code: string; message: string }
  | { kind: 'other'; message: string };

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
}

function stringCode(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/**
 * Classifies what node-vault threw: `ApiResponseError` (`response.statusCode`, `response.body.errors`), an
 * AxiosError without a response (`code` such as `ECONNREFUSED`, also looked for on `cause` and on the first of
 * an AggregateError's `errors`), or anything else. Reads only status, `errors` strings, code and message.
 */
export function classifyVaultError(err: unknown): VaultFailure {
  const e = asRecord(err);
  const response = asRecord(e?.response);
  const status = typeof response?.statusCode === 'number' ? response.statusCode : typeof response?.status === 'number' ? response.status : undefined;
  if (status !== undefined) {
    const body = asRecord(response?.body) ?? asRecord(response?.data);
    const errors = Array.isArray(body?.errors) ? body.errors.filter((x): x is string => typeof x === 'string') : [];
    return { kind: 'http', status, errors };
  }
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const firstAggregated = Array.isArray(e?.errors) ? asRecord(e.errors[0]) : undefined;
  const code = stringCode(e?.code) ?? stringCode(asRecord(e?.cause)?.code) ?? stringCode(firstAggregated?.code);
  if (code) return { kind: 'network', code, message };
  return { kind: 'other', message };
}

/**
 * Vault's `errors` array as one line: drops the multierror wrapping (`1 error occurred:\n\t* permission denied`),
 * de-duplicates, joins with `; `, and scrubs anything token-like.
 */
export function vaultErrorText(errors: readonly string[]): string {
  const parts: string[] = [];
  for (const raw of errors) {
    const body = raw.replace(/^\s*\d+ errors? occurred:\s*/, '');
    for (const p of body.split(/\n\s*\*\s*/)) {
      const t = p.replace(/\s+/g, ' ').replace(/^\*\s*/, '').trim();
      if (t && !parts.includes(t)) parts.push(t);
    }
  }
  return scrubText(parts.join('; '));
}

const TLS_CODE = /CERT|SELF_SIGNED|^ERR_TLS|^ERR_SSL|^EPROTO$|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/;

function networkReason(code: string, message: string): { reason: string; tls: boolean } {
  switch (code) {
    case 'ECONNREFUSED':
      return { reason: 'connection refused', tls: false };
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { reason: `host name not found (${code})`, tls: false };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return { reason: `no route to host (${code})`, tls: false };
    case 'ETIMEDOUT':
    case 'ECONNABORTED':
    case 'ESOCKETTIMEDOUT':
      return { reason: `no answer in time (${code})`, tls: false };
    case 'ECONNRESET':
    case 'EPIPE':
      return { reason: `connection reset (${code})`, tls: false };
    case 'EPROTO':
      return {
        reason: /wrong version number|packet length too long|http request/i.test(message)
          ? 'TLS handshake failed: the server does not speak https on this port (EPROTO)'
          : 'TLS handshake failed (EPROTO)',
        tls: true,
      };
    default:
      if (TLS_CODE.test(code)) return { reason: `TLS certificate not trusted (${code})`, tls: true };
      return { reason: code, tls: false };
  }
}

function cleanCause(name: string, message: string, extra: { code?: string; statusCode?: number } = {}): Error {
  const e = new Error(scrubText(message));
  e.name = name;
  Object.assign(e, extra);
  return e;
}

/**
 * Turns anything node-vault (or this backend) threw into a KryptonError, without the token:
 * - HTTP 403 → E_VAULT_DENIED `Vault refused to <op> (403 permission denied).`, hint
 *   `the token needs <capability> on <path>`;
 * - HTTP 404 "namespace not found" → E_VAULT_CONFIG; other HTTP statuses → E_VAULT with Vault's `errors` text
 *   (scrubbed) and a hint where one helps (503 sealed, 404 no such route, 429, 5xx);
 * - connection refused, DNS, unreachable, timeout, reset, TLS → E_VAULT_CONFIG naming the address;
 * - anything else → E_VAULT with a scrubbed message.
 * The `cause` is a fresh Error holding only name, scrubbed message and status/code.
 */
export function translateVaultError(err: unknown, ctx: VaultOpContext): KryptonError {
  if (err instanceof KryptonError) return err;
  const f = classifyVaultError(err);
  if (f.kind === 'http') {
    const text = vaultErrorText(f.errors);
    const cause = cleanCause('VaultHttpError', text || `HTTP ${f.status}`, { statusCode: f.status });
    if (f.status === 403)
      return new KryptonError('E_VAULT_DENIED', `Vault refused to ${ctx.op} (403 ${text || 'permission denied'}).`, {
        hint: `the token needs ${ctx.capability} on ${ctx.path} (if it has, check it has not expired: bao token lookup)`,
        cause,
      });
    if (f.status === 404 && /namespace not found/i.test(text))
      return new KryptonError('E_VAULT_CONFIG', `Vault at ${ctx.address} has no such namespace (while trying to ${ctx.op}).`, {
        hint: 'check BAO_NAMESPACE / VAULT_NAMESPACE or the inventory\'s Vault namespace',
        cause,
      });
    let hint: string | undefined;
    if (f.status === 404 && /no handler for route/i.test(text)) hint = `nothing is mounted at ${ctx.path.split('/')[0]}/: check bao secrets list / bao auth list`;
    else if (f.status === 503) hint = `Vault at ${ctx.address} is sealed or not ready: check bao status`;
    else if (f.status === 429) hint = 'Vault is rate-limiting requests: retry later or lower --concurrency';
    else if (f.status >= 500) hint = 'see the Vault server log';
    return new KryptonError('E_VAULT', `Vault could not ${ctx.op}: ${text || 'no error text'} (HTTP ${f.status}).`, {
      ...(hint ? { hint } : {}),
      cause,
    });
  }
  if (f.kind === 'network') {
    const { reason, tls } = networkReason(f.code, f.message);
    const from = ctx.addressSource ? ` (from ${ctx.addressSource})` : '';
    const plainHttp = /server does not speak https/.test(reason);
    const message = tls && !plainHttp
      ? `cannot connect securely to Vault at ${ctx.address}${from} to ${ctx.op}: ${reason}.`
      : `cannot reach Vault at ${ctx.address}${from} to ${ctx.op}: ${reason}.`;
    return new KryptonError('E_VAULT_CONFIG', message, {
      hint: !tls
        ? 'check the address (BAO_ADDR / VAULT_ADDR or the inventory) and that Vault is running and reachable from here'
        : plainHttp
          ? 'the address says https:// but the server answers plain http: fix the scheme (dev servers listen on http://)'
          : "set BAO_CACERT (or VAULT_CACERT) to the PEM of the CA that signed Vault's certificate, and use a host name the certificate names",
      cause: cleanCause('VaultConnectError', f.message, { code: f.code }),
    });
  }
  return new KryptonError('E_VAULT', `Vault request failed while trying to ${ctx.op}: ${scrubText(f.message)}`, {
    cause: cleanCause('VaultClientError', f.message),
  });
}

// ---------------------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------------------

/** What node-vault's request layer is handed (its `request-promise` seam); exported for unit tests. */
export interface VaultRawRequest {
  method: string;
  uri: string;
  headers: Record<string, string>;
  json?: unknown;
}

/** What a fake HTTP layer must resolve with: status and parsed JSON body (`''` for 204). */
export interface VaultRawResponse {
  statusCode: number;
  body: unknown;
}

export interface CreateVaultBackendOptions {
  /** Per-request timeout in milliseconds (default 30000). */
  timeoutMs?: number;
  /**
   * @internal Tests only: replaces node-vault's HTTP layer (axios) with this function. node-vault's own
   * request building and response handling (`ApiResponseError`) still run.
   */
  fakeHttp?: (req: VaultRawRequest) => Promise<VaultRawResponse>;
}

type Json = Record<string, unknown>;

interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** API path without `/v1/`, not yet URL-encoded. */
  path: string;
  query?: Record<string, string>;
  body?: Json;
  headers?: Record<string, string>;
  /** Use this token instead of the backend's. */
  token?: Secret;
  ctx: Omit<VaultOpContext, 'address' | 'addressSource'>;
  /** 404 with no Vault error text (Vault's "absent") resolves undefined instead of throwing. */
  absentOk?: boolean;
  /** Maps an HTTP failure to a specific error before the generic translation; return undefined to fall through. */
  onHttpError?: (f: Extract<VaultFailure, { kind: 'http' }>, text: string) => KryptonError | undefined;
}

/** Checks a raw API path: no empty, `.` or `..` segments, no `?`/`#`/control characters. Returns it without edge slashes. */
function rawApiPath(path: string): string {
  const p = path.replace(/^\/+|\/+$/g, '');
  if (p === '' || p.split('/').some((s) => s === '' || s === '.' || s === '..') || /[?#\u0000-\u001f\u007f]/.test(p))
    throw new KryptonError('E_INPUT', `invalid Vault API path ${JSON.stringify(p)}`, {
      hint: 'give a path such as sys/policies/acl/<name> (no empty, "." or ".." segments, no "?" or "#")',
    });
  return p;
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** Reveals every Secret in a JSON-like value (only for a request body on its way out). */
function revealDeep(v: unknown): unknown {
  if (isSecret(v)) return v.revealText();
  if (Array.isArray(v)) return v.map(revealDeep);
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revealDeep(x)]));
  return v;
}

function toSecret(v: unknown): Secret {
  return new Secret(typeof v === 'string' ? v : JSON.stringify(v));
}

function positiveInt(label: string, n: number, min = 1): number {
  if (!Number.isSafeInteger(n) || n < min)
    throw new KryptonError('E_INPUT', `${label} must be an integer ≥ ${min}, got ${String(n)}`);
  return n;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function shapeFailure(ctx: VaultOpContext, what: string): KryptonError {
  return new KryptonError('E_VAULT', `Vault's answer to ${ctx.op} has no ${what}`, {
    hint: `is ${ctx.address} a Vault/OpenBao server, and ${ctx.path} the right path?`,
  });
}

/**
 * A {@link VaultBackend} talking to `settings.address` with `settings.token` through node-vault's generic
 * `request` (the client and its token live in this closure only: `util.inspect(backend)` shows neither).
 *
 * Every method throws only KryptonError: E_VAULT_DENIED (403), E_VAULT_CONFIG (unreachable, TLS, unknown
 * namespace), E_VAULT_WRAP (wrapping token invalid/used/expired, answer not wrapped, wrong creation path),
 * E_VAULT (any other Vault error, CAS mismatch), E_INPUT (bad arguments, refused before anything is sent).
 * Durations are in seconds (`wrapTtlSeconds`, `ttlSeconds`); `timeoutMs` is per request.
 *
 * @param settings from {@link resolveVaultSettings}; the CA file (if any) is read here.
 * @throws KryptonError E_VAULT_CONFIG when the address is not an http(s) URL or the CA file cannot be read.
 */
export function createVaultBackend(settings: VaultSettings, opts: CreateVaultBackendOptions = {}): VaultBackend {
  const address = normaliseVaultAddress(settings.address, settings.sources?.address ?? 'the Vault address');
  const addressSource = settings.sources?.address;
  const timeoutMs = opts.timeoutMs ?? 30_000;

  const requestOptions: Record<string, unknown> = { strictSSL: true };
  if (settings.caCert) {
    try {
      requestOptions.ca = readFileSync(settings.caCert);
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? 'error');
      throw new KryptonError('E_VAULT_CONFIG', `cannot read the Vault CA certificate ${settings.caCert}${settings.sources?.caCert ? ` (from ${settings.sources.caCert})` : ''}: ${code}`, {
        hint: 'point BAO_CACERT / VAULT_CACERT (or the inventory) at a readable PEM file',
      });
    }
  }

  const fakeHttp = opts.fakeHttp;
  const client = nodeVault({
    endpoint: address,
    token: settings.token.revealText(),
    apiVersion: 'v1',
    requestOptions,
    debug: () => undefined, // node-vault's debug logger would print request bodies
    ...(fakeHttp
      ? {
          'request-promise': {
            defaults: () => async (o: VaultRawRequest) => {
              const r = await fakeHttp({ method: o.method, uri: o.uri, headers: { ...o.headers }, ...(o.json === undefined ? {} : { json: o.json }) });
              return { ...r, request: { path: new URL(o.uri).pathname } };
            },
          },
        }
      : {}),
  });
  // node-vault falls back to VAULT_NAMESPACE / VAULT_PREFIX from the environment: pin both.
  (client as unknown as { namespace: string | undefined }).namespace = settings.namespace || undefined;
  (client as unknown as { pathPrefix: string }).pathPrefix = '';

  async function call(c: Call): Promise<Json | undefined> {
    const ctx: VaultOpContext = { ...c.ctx, address, ...(addressSource ? { addressSource } : {}) };
    const headers: Record<string, string> = { ...c.headers };
    if (c.token) headers['X-Vault-Token'] = c.token.revealText();
    const qs = c.query ? `?${new URLSearchParams(c.query).toString()}` : '';
    const req: Record<string, unknown> = {
      ...requestOptions,
      timeout: timeoutMs,
      method: c.method,
      path: `/${encodePath(c.path)}${qs}`,
      headers,
    };
    if (c.body !== undefined) req.json = revealDeep(c.body);
    let res: unknown;
    try {
      res = await client.request(req as { path: string; method: string });
    } catch (err) {
      const f = classifyVaultError(err);
      if (f.kind === 'http') {
        if (c.absentOk && f.status === 404 && vaultErrorText(f.errors) === '') return undefined;
        const specific = c.onHttpError?.(f, vaultErrorText(f.errors));
        if (specific) throw specific;
      }
      throw translateVaultError(err, ctx);
    }
    return asRecord(res);
  }

  const ctxOf = (c: Call['ctx']): VaultOpContext => ({ ...c, address, ...(addressSource ? { addressSource } : {}) });

  function wrapError(text: string, op: string, always = false): KryptonError | undefined {
    if (always || /wrapping token is not valid|does not exist|invalid token/i.test(text))
      return new KryptonError('E_VAULT_WRAP', `Vault rejected the wrapping token while trying to ${op}: ${text}.`, {
        hint: 'a wrapping token works once and only within its TTL: it was already unwrapped (by whom? check the audit log), expired, or never issued — generate a new one',
      });
    return undefined;
  }

  const backend: VaultBackend = {
    address,

    // KV v2 "Read secret version": GET /v1/<mount>/data/<path>?version=<n> (Vault API docs secret/kv/kv-v2)
    async kvRead(mount: string, path: string, version?: number): Promise<KvSecret | undefined> {
      const api = kvDataPath(mount, path);
      if (version !== undefined) positiveInt('KV version', version);
      const where = `${normaliseVaultPath('KV mount', mount)}/${normaliseVaultPath('secret path', path)}`;
      const body = await call({
        method: 'GET',
        path: api,
        ...(version !== undefined ? { query: { version: String(version) } } : {}),
        ctx: { op: `read KV secret ${where}${version !== undefined ? ` version ${version}` : ''}`, path: api, capability: 'read' },
        absentOk: true,
      });
      const data = asRecord(body?.data);
      if (!data) return undefined;
      const values = asRecord(data.data);
      const meta = asRecord(data.metadata);
      if (!values || meta?.destroyed === true) return undefined;
      const deletion = str(meta?.deletion_time);
      if (deletion && Date.parse(deletion) <= Date.now()) return undefined;
      return {
        version: num(meta?.version),
        data: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, toSecret(v)])),
      };
    },

    // KV v2 "Read secret metadata": GET /v1/<mount>/metadata/<path>
    async kvMetadata(mount: string, path: string) {
      const api = kvMetadataPath(mount, path);
      const where = `${normaliseVaultPath('KV mount', mount)}/${normaliseVaultPath('secret path', path)}`;
      const body = await call({
        method: 'GET',
        path: api,
        ctx: { op: `read the metadata of KV secret ${where}`, path: api, capability: 'read' },
        absentOk: true,
      });
      const data = asRecord(body?.data);
      if (!data) return undefined;
      const now = Date.now();
      const versions: Record<string, { createdTime: string; deleted: boolean; destroyed: boolean }> = {};
      for (const [v, raw] of Object.entries(asRecord(data.versions) ?? {})) {
        const r = asRecord(raw) ?? {};
        const deletion = str(r.deletion_time);
        versions[v] = {
          createdTime: str(r.created_time),
          deleted: deletion !== '' && Date.parse(deletion) <= now,
          destroyed: r.destroyed === true,
        };
      }
      return { currentVersion: num(data.current_version), versions };
    },

    // KV v2 "Create/Update secret": POST /v1/<mount>/data/<path> {data, options: {cas}}
    async kvWrite(mount: string, path: string, data: Record<string, Secret | string>, o: { cas?: number } = {}) {
      const api = kvDataPath(mount, path);
      const where = `${normaliseVaultPath('KV mount', mount)}/${normaliseVaultPath('secret path', path)}`;
      if (o.cas !== undefined) positiveInt('check-and-set version (cas)', o.cas, 0);
      const ctx = { op: `write KV secret ${where}`, path: api, capability: 'create and update' };
      const body = await call({
        method: 'POST',
        path: api,
        body: { data, ...(o.cas !== undefined ? { options: { cas: o.cas } } : {}) },
        ctx,
        onHttpError: (f, text) => {
          if (f.status !== 400 || !/check-and-set parameter did not match/i.test(text)) return undefined;
          return o.cas === 0
            ? new KryptonError('E_VAULT', `KV secret ${where} already exists: the write was only allowed if it was absent (check-and-set 0), so Vault refused it.`, {
                hint: 'it was created by someone else or concurrently: read it (plan) and re-run, or import it deliberately',
              })
            : new KryptonError('E_VAULT', `KV secret ${where} changed concurrently: the write expected version ${o.cas}, Vault holds another, so it refused the write (check-and-set).`, {
                hint: 'another writer updated it since it was read: re-run to plan against the current version',
              });
        },
      });
      const version = asRecord(body?.data)?.version;
      if (typeof version !== 'number') throw shapeFailure(ctxOf(ctx), 'data.version');
      return { version };
    },

    async read(path: string) {
      const p = rawApiPath(path);
      const body = await call({ method: 'GET', path: p, ctx: { op: `read ${p}`, path: p, capability: 'read' }, absentOk: true });
      if (!body) return undefined;
      return asRecord(body.data) ?? undefined;
    },

    async write(path: string, reqBody: Record<string, unknown>) {
      const p = rawApiPath(path);
      const body = await call({ method: 'PUT', path: p, body: reqBody, ctx: { op: `write ${p}`, path: p, capability: 'create or update' } });
      return asRecord(body?.data) ?? undefined;
    },

    // system/policies "Read ACL policy": GET /v1/sys/policies/acl/<name>
    async policyRead(name: string) {
      const p = `sys/policies/acl/${assertVaultSegment('policy name', name)}`;
      const body = await call({ method: 'GET', path: p, ctx: { op: `read ACL policy ${name}`, path: p, capability: 'read' }, absentOk: true });
      const policy = asRecord(body?.data)?.policy;
      return typeof policy === 'string' ? policy : undefined;
    },

    // auth/approle "Read AppRole role ID": GET /v1/auth/<mount>/role/<role>/role-id
    async roleId(approleMount: string, role: string) {
      const mount = normaliseVaultPath('AppRole mount', approleMount);
      const p = `auth/${mount}/role/${assertVaultSegment('AppRole role', role)}/role-id`;
      const ctx = { op: `read the role_id of AppRole role ${role}`, path: p, capability: 'read' };
      const body = await call({ method: 'GET', path: p, ctx, absentOk: true });
      if (!body)
        throw new KryptonError('E_VAULT', `AppRole role ${role} does not exist at auth/${mount}/.`, {
          hint: `create the role first (auth/${mount}/role/${role}), then re-run`,
        });
      const roleIdValue = asRecord(body.data)?.role_id;
      if (typeof roleIdValue !== 'string' || roleIdValue === '') throw shapeFailure(ctxOf(ctx), 'data.role_id');
      return new Secret(roleIdValue);
    },

    // auth/approle "Generate new secret ID": POST /v1/auth/<mount>/role/<role>/secret-id, wrapped per
    // concepts/response-wrapping (request header X-Vault-Wrap-TTL; response wrap_info {token, accessor, ttl, creation_path})
    async wrappedSecretId(approleMount: string, role: string, wrapTtlSeconds: number): Promise<WrappedSecretId> {
      const mount = normaliseVaultPath('AppRole mount', approleMount);
      const p = `auth/${mount}/role/${assertVaultSegment('AppRole role', role)}/secret-id`;
      positiveInt('wrap TTL (seconds)', wrapTtlSeconds); // "0s" would make Vault answer UNwrapped
      const ctx = { op: `create a secret_id for role ${role}`, path: p, capability: 'update' };
      const body = await call({ method: 'POST', path: p, body: {}, headers: { 'X-Vault-Wrap-TTL': `${wrapTtlSeconds}s` }, ctx });
      const wrap = asRecord(body?.wrap_info);
      if (!wrap) {
        // Vault answered with the secret_id in clear (a proxy dropped X-Vault-Wrap-TTL?): destroy it, keep nothing.
        const accessor = asRecord(body?.data)?.secret_id_accessor;
        let destroyed = false;
        if (typeof accessor === 'string')
          destroyed = await call({
            method: 'POST',
            path: `auth/${mount}/role/${role}/secret-id-accessor/destroy`,
            body: { secret_id_accessor: accessor },
            ctx: { op: `destroy an unwrapped secret_id of role ${role}`, path: `auth/${mount}/role/${role}/secret-id-accessor/destroy`, capability: 'update' },
          }).then(() => true, () => false);
        throw new KryptonError('E_VAULT_WRAP', `Vault returned the secret_id for role ${role} without response-wrapping it (no wrap_info).`, {
          hint: `something between here and ${address} drops the X-Vault-Wrap-TTL header; ${destroyed ? 'the unwrapped secret_id was destroyed' : `destroy the unwrapped secret_id (accessor ${typeof accessor === 'string' ? accessor : 'unknown'})`}`,
        });
      }
      const token = wrap.token;
      const creationPath = str(wrap.creation_path);
      if (typeof token !== 'string' || token === '') throw shapeFailure(ctxOf(ctx), 'wrap_info.token');
      if (creationPath !== p)
        throw new KryptonError('E_VAULT_WRAP', `the wrapped secret_id for role ${role} was created at ${JSON.stringify(creationPath)}, expected ${p}.`, {
          hint: 'do not deliver it: something other than Vault answered, or the request was redirected',
        });
      return { wrappingToken: new Secret(token), accessor: str(wrap.accessor), creationPath, ttlSeconds: num(wrap.ttl) };
    },

    // system/wrapping-lookup: POST /v1/sys/wrapping/lookup {token} (token in the body, never the URL)
    async wrapLookup(token: Secret) {
      const p = 'sys/wrapping/lookup';
      const op = 'look up a wrapping token';
      const ctx = { op, path: p, capability: 'update' };
      const body = await call({ method: 'POST', path: p, body: { token }, ctx, onHttpError: (f, text) => (f.status === 400 ? wrapError(text, op) : undefined) });
      const data = asRecord(body?.data);
      if (!data || typeof data.creation_path !== 'string') throw shapeFailure(ctxOf(ctx), 'data.creation_path');
      return { creationPath: data.creation_path, creationTtl: num(data.creation_ttl), creationTime: str(data.creation_time) };
    },

    // system/wrapping-unwrap: POST /v1/sys/wrapping/unwrap with X-Vault-Token = the wrapping token
    async unwrap(token: Secret) {
      const p = 'sys/wrapping/unwrap';
      const op = 'unwrap a wrapping token';
      const body = await call({
        method: 'POST',
        path: p,
        body: {},
        token,
        ctx: { op, path: p, capability: 'update' },
        // the wrapping token is the request's own token here, so a 403 means it is not (or no longer) valid
        onHttpError: (f, text) => (f.status === 400 || f.status === 403 ? wrapError(text || 'invalid token', op, f.status === 403) : undefined),
      });
      const data = asRecord(body?.data) ?? {};
      return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, typeof v === 'string' ? new Secret(v) : v]));
    },

    // auth/token "Create token": POST /v1/auth/token/create-orphan (needs sudo); never node-vault's tokenCreateOrphan,
    // which would replace this client's token with the new one
    async createToken(o: { policies: string[]; ttlSeconds: number; displayName?: string }) {
      if (!Array.isArray(o.policies) || o.policies.length === 0)
        throw new KryptonError('E_INPUT', 'a token needs at least one policy', { hint: 'name the policies it should carry' });
      for (const pol of o.policies) assertVaultSegment('policy name', pol);
      positiveInt('token TTL (seconds)', o.ttlSeconds);
      const p = 'auth/token/create-orphan';
      const ctx = { op: `create a token with policies ${o.policies.join(', ')}`, path: p, capability: 'sudo and update' };
      const body = await call({
        method: 'POST',
        path: p,
        body: { policies: o.policies, ttl: `${o.ttlSeconds}s`, no_default_policy: true, display_name: o.displayName ?? 'krypton-secrets' },
        ctx,
      });
      const t = asRecord(body?.auth)?.client_token;
      if (typeof t !== 'string' || t === '') throw shapeFailure(ctxOf(ctx), 'auth.client_token');
      return new Secret(t);
    },

    // system/capabilities: POST /v1/sys/capabilities {token, paths}
    async capabilities(token: Secret, paths: string[]) {
      if (paths.length === 0) return {};
      const clean = paths.map(rawApiPath);
      const p = 'sys/capabilities';
      const ctx = { op: `look up a token's capabilities on ${clean.join(', ')}`, path: p, capability: 'update' };
      const body = await call({ method: 'POST', path: p, body: { token, paths: clean }, ctx });
      const data = asRecord(body?.data) ?? body ?? {};
      const out: Record<string, string[]> = {};
      for (const path of clean) {
        const caps = data[path];
        out[path] = Array.isArray(caps) ? caps.filter((c): c is string => typeof c === 'string') : [];
      }
      return out;
    },

    // auth/token "Lookup a token (self)": GET /v1/auth/token/lookup-self (the `id` field, the token itself, is dropped)
    async tokenLookupSelf(token?: Secret): Promise<VaultTokenInfo> {
      const p = 'auth/token/lookup-self';
      const ctx = { op: 'look up the token', path: p, capability: 'read' };
      const body = await call({ method: 'GET', path: p, ctx, ...(token ? { token } : {}) });
      const d = asRecord(body?.data);
      if (!d) throw shapeFailure(ctxOf(ctx), 'data');
      const meta: Record<string, string> = {};
      for (const [k, v] of Object.entries(asRecord(d.meta) ?? {})) if (typeof v === 'string') meta[k] = v;
      return {
        accessor: str(d.accessor),
        policies: Array.isArray(d.policies) ? d.policies.filter((x): x is string => typeof x === 'string') : [],
        ttlSeconds: num(d.ttl),
        periodSeconds: num(d.period),
        renewable: d.renewable === true,
        orphan: d.orphan === true,
        displayName: str(d.display_name),
        path: str(d.path),
        type: str(d.type),
        expireTime: str(d.expire_time) || undefined,
        numUses: num(d.num_uses),
        meta,
      };
    },
  };
  return backend;
}
