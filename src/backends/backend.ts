import type { Secret } from '../core/secret.ts';

/** A KV v2 secret as read: its version and its fields, every value held as a Secret. */
export interface KvSecret {
  version: number;
  data: Record<string, Secret>;
}

/** A response-wrapped secret_id, as the laptop holds it before delivery. */
export interface WrappedSecretId {
  /** The single-use wrapping token (the thing delivered to the host). */
  wrappingToken: Secret;
  /** Wrapping token accessor (not secret; safe to log). */
  accessor: string;
  /** The path that created the wrapped response, as Vault reports it (`auth/approle/role/<role>/secret-id`). */
  creationPath: string;
  /** Wrap TTL in seconds. */
  ttlSeconds: number;
}

/**
 * The Vault/OpenBao operations krypton-secrets needs (HTTP API v1; KV v2 at `<mount>/data/…` and
 * `<mount>/metadata/…`). Implemented by `backends/vault.ts`. Every method throws KryptonError with code
 * E_VAULT_DENIED (403), E_VAULT_CONFIG (address/token missing or unreachable), E_VAULT_WRAP (wrapping checks)
 * or E_VAULT (anything else); no error or log ever contains a token or a secret value.
 */
export interface VaultBackend {
  /** Where requests go, e.g. `http://127.0.0.1:8200` (for messages). */
  readonly address: string;
  /** KV v2 read of the current (or given) version; undefined when absent or deleted/destroyed. */
  kvRead(mount: string, path: string, version?: number): Promise<KvSecret | undefined>;
  /** KV v2 metadata: current version and per-version state; undefined when the path has never been written. */
  kvMetadata(mount: string, path: string): Promise<{ currentVersion: number; versions: Record<string, { createdTime: string; deleted: boolean; destroyed: boolean }> } | undefined>;
  /** KV v2 write. `cas` = check-and-set version (0: only if absent). Returns the new version. */
  kvWrite(mount: string, path: string, data: Record<string, Secret | string>, opts?: { cas?: number }): Promise<{ version: number }>;
  /** Raw `GET /v1/<path>`; returns the response's `data` or undefined on 404. */
  read(path: string): Promise<Record<string, unknown> | undefined>;
  /** Raw `PUT /v1/<path>` with a JSON body (Secret values in `body` are revealed only here). */
  write(path: string, body: Record<string, unknown>): Promise<Record<string, unknown> | undefined>;
  /** ACL policy text, or undefined. */
  policyRead(name: string): Promise<string | undefined>;
  /** The role's role_id (treated as a secret). */
  roleId(approleMount: string, role: string): Promise<Secret>;
  /** A new secret_id for the role, response-wrapped with `X-Vault-Wrap-TTL: <wrapTtlSeconds>s`. */
  wrappedSecretId(approleMount: string, role: string, wrapTtlSeconds: number): Promise<WrappedSecretId>;
  /** `sys/wrapping/lookup` of a wrapping token: its creation path and TTL (seconds). */
  wrapLookup(token: Secret): Promise<{ creationPath: string; creationTtl: number; creationTime: string }>;
  /**
   * `sys/wrapping/unwrap` with the wrapping token itself: the wrapped response's `data`, every top-level string
   * value held as a Secret. Consumes the token (single use). Mostly for tests: hosts unwrap through their agent.
   */
  unwrap(token: Secret): Promise<Record<string, unknown>>;
  /** An orphan token with exactly `policies` (no `default` policy), TTL `ttlSeconds`. */
  createToken(opts: { policies: string[]; ttlSeconds: number; displayName?: string }): Promise<Secret>;
  /** `sys/capabilities`: what `token` may do on each of `paths` (e.g. `{ "secret/data/x": ["read"] }`; `["deny"]` when nothing). */
  capabilities(token: Secret, paths: string[]): Promise<Record<string, string[]>>;
  /** `auth/token/lookup-self` of the backend's token (or of `token`), without the token itself. */
  tokenLookupSelf(token?: Secret): Promise<VaultTokenInfo>;
}

/** What `auth/token/lookup-self` says about a token; the token's own id is deliberately left out. */
export interface VaultTokenInfo {
  /** Token accessor (not secret; safe to log). */
  accessor: string;
  policies: string[];
  /** Remaining TTL in seconds (0: no expiry, e.g. root). */
  ttlSeconds: number;
  /** Period in seconds for periodic tokens, else 0. */
  periodSeconds: number;
  renewable: boolean;
  orphan: boolean;
  displayName: string;
  /** The auth path that created it, e.g. `auth/approle/login`, `auth/token/create-orphan`. */
  path: string;
  /** `service` or `batch`. */
  type: string;
  /** RFC 3339 expiry, or undefined when the token does not expire. */
  expireTime: string | undefined;
  /** Remaining uses (0: unlimited). */
  numUses: number;
  meta: Record<string, string>;
}
