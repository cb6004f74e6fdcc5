import type { Secret } from '../core/secret.ts';
import type { VaultApi, WrappedSecretId } from '../model/store.ts';

export type { WrappedSecretId };

/** A KV v2 secret as read: its version and its fields, every value held as a Secret. */
export interface KvSecret {
  version: number;
  data: Record<string, Secret>;
}

/**
 * The Vault/OpenBao operations krypton-secrets needs (HTTP API v1; KV v2 at `<mount>/data/…` and
 * `<mount>/metadata/…`). Implemented by `backends/vault.ts`. Every method throws KryptonError with code
 * E_VAULT_DENIED (403), E_VAULT_CONFIG (address/token missing or unreachable), E_VAULT_WRAP (wrapping checks)
 * or E_VAULT (anything else); no error or log ever contains a token or a secret value.
 */
export interface VaultBackend extends VaultApi {
  /** KV v2 read of the current (or given) version; undefined when absent or deleted/destroyed. */
  kvRead(mount: string, path: string, version?: number): Promise<KvSecret | undefined>;
  /** KV v2 metadata: current version and per-version state; undefined when the path has never been written. */
  kvMetadata(mount: string, path: string): Promise<{ currentVersion: number; versions: Record<string, { createdTime: string; deleted: boolean; destroyed: boolean }> } | undefined>;
  /** KV v2 write. `cas` = check-and-set version (0: only if absent). Returns the new version. */
  kvWrite(mount: string, path: string, data: Record<string, Secret | string>, opts?: { cas?: number }): Promise<{ version: number }>;
  /**
   * `sys/wrapping/unwrap` with the wrapping token itself: the wrapped response's `data`, every top-level string
   * value held as a Secret. Consumes the token (single use). Mostly for tests: hosts unwrap through their agent.
   */
  unwrap(token: Secret): Promise<Record<string, unknown>>;
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
